"""``python3 -m tests.mutation [--list] [--only ID ...] [--jobs N]``."""

from tests.mutation.runner import main

raise SystemExit(main())
