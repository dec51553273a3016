"""Fault injection for the interruption tests: SIGKILL kvpod at a named operation, as a power cut would.

Loaded by the engine when ``KVPOD_ENGINE_HOOKS=tests.fault_hooks`` (``tests/conftest.py`` sets it for every
test and every ``kvpod`` the tests start; :mod:`deploy.engine.hooks`). It acts only when ``KVPOD_KILL_AT`` is
``before:TEXT`` or ``after:TEXT``, or ``after@HOST:TEXT`` for one host only; TEXT is part of the operation's
name. (An operation at the same place of a deploy on several hosts is one operation to pyinfra, holding each
host's name.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from pyinfra.api.state import BaseStateCallback

KILL_ENV = "KVPOD_KILL_AT"


def kill_selected(spec: str | None, moment: str, host: str, names: Iterable[str]) -> bool:
    """Whether ``spec`` (the value of ``KVPOD_KILL_AT``) selects ``moment`` ("before" or "after") of an
    operation named ``names`` on ``host``."""
    when, sep, text = (spec or "").partition(":")
    at, _, only = when.partition("@")
    return bool(sep and text) and at == moment and only in ("", host) and any(text in name for name in names)


def _kill_point(moment: str, host, names: Iterable[str]) -> None:
    if kill_selected(os.environ.get(KILL_ENV), moment, host.name, names):
        os.kill(os.getpid(), signal.SIGKILL)


class KillAt(BaseStateCallback):
    """SIGKILLs this process before or after the operation ``KVPOD_KILL_AT`` names."""

    def operation_host_start(self, state, host, op_hash):
        _kill_point("before", host, state.get_op_meta(op_hash).names)

    def operation_host_success(self, state, host, op_hash, retry_count=0):
        _kill_point("after", host, state.get_op_meta(op_hash).names)


def state_callbacks() -> list[BaseStateCallback]:
    return [KillAt()]
