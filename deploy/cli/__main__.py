"""``python -m deploy.cli``: the kvpod command line."""

from deploy.cli import main

main()
