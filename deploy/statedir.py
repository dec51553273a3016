"""Where kvpod keeps run logs and journals on the operator's machine (``$KVPOD_STATE_DIR``)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def state_dir() -> Path:
    base = os.environ.get("KVPOD_STATE_DIR") or Path.home() / ".local" / "state" / "kvpod"
    return Path(base)


def new_run_dir(pod: str, command: str) -> Path:
    """A fresh directory for one run's logs: ``<state>/runs/<pod>/<UTC time>-<command>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = state_dir() / "runs" / pod / f"{stamp}-{command}"
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{stamp}-{command}-{n}")
    path.mkdir(parents=True)
    return path
