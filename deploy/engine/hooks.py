"""Extra pyinfra state callbacks for tests (fault injection), loaded only when the environment names a module.

``KVPOD_ENGINE_HOOKS=package.module`` makes every run that executes operations add the callbacks that
module's ``state_callbacks()`` returns, before kvpod's own; unset (as outside the test suite), nothing is
imported and nothing added. The interruption tests' SIGKILL at a named operation lives in
``tests/fault_hooks.py``.
"""

from __future__ import annotations

import importlib
import os

from pyinfra.api.state import BaseStateCallback

HOOKS_ENV = "KVPOD_ENGINE_HOOKS"


def hook_callbacks() -> list[BaseStateCallback]:
    """The callbacks of the module ``KVPOD_ENGINE_HOOKS`` names; none when it is unset."""
    name = os.environ.get(HOOKS_ENV)
    if not name:
        return []
    return list(importlib.import_module(name).state_callbacks())
