"""``python3 -m deploy.lmcache_keys``: write the key list of the installed LMCache beside this package."""

import sys

from deploy.lmcache_keys import main

sys.exit(main())
