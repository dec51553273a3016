"""pyinfra's per-operation work that is the same for every operation and every host, done once per process.

Each operation call pops pyinfra's global arguments (``_sudo``, ``_retries``, ...); the list of those arguments
and their types comes from ``typing.get_type_hints`` of pyinfra's argument TypedDicts, evaluated anew for every
operation on every host (about half of the local CPU of a converged fleet's survey). The list never changes:
:func:`install` computes it once and has pyinfra use it. Each of those arguments is then looked up in the host's
data, which searches its five layers anew for every name: while arguments are popped, the host's data is served
from one merge of its layers (the same values, as ``HostData.dict()`` gives them). Nothing else changes.
"""

from __future__ import annotations

import copy
import gc
import importlib
from typing import Any


class FlatData:
    """A host's data merged once (``HostData.dict()``), read as pyinfra reads ``host.data``: a copy of the value."""

    def __init__(self, data: Any):
        self.__dict__["values"] = data.dict()

    def __getattr__(self, key: str) -> Any:
        try:
            return copy.copy(self.values[key])
        except KeyError:
            raise AttributeError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def dict(self) -> dict[str, Any]:
        return dict(self.values)


GC_THRESHOLDS = (10_000, 10, 1_000)  # Python's defaults: (700, 10, 10)


def install() -> None:
    """Serve pyinfra's list of global arguments from one computation; raise the collector's thresholds
    (idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)
    from pyinfra.context import ContextObject

    arguments, deploy, facts, operation = (
        importlib.import_module(f"pyinfra.api.{name}") for name in ("arguments", "deploy", "facts", "operation")
    )  # the modules (``pyinfra.api`` also names functions ``deploy`` and ``operation``)

    if getattr(arguments.all_global_arguments, "computed_once", False):
        return
    names: tuple[tuple[str, Any], ...] = tuple(arguments.all_global_arguments())

    def all_global_arguments() -> list[tuple[str, Any]]:
        return list(names)  # a list of its own for each caller, as pyinfra's returns

    all_global_arguments.computed_once = True  # type: ignore[attr-defined]
    all_global_arguments.__doc__ = arguments.all_global_arguments.__doc__
    arguments.all_global_arguments = all_global_arguments
    facts.all_global_arguments = all_global_arguments

    original = arguments.pop_global_arguments

    def pop_global_arguments(state: Any, host: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(host, ContextObject):
            host = host._get_module()  # the host itself, not pyinfra's context proxy of it (the same object)
        data = host.data
        host.data = FlatData(data)  # no other greenlet runs until this returns: popping does no I/O
        try:
            return original(state, host, kwargs)
        finally:
            host.data = data

    pop_global_arguments.__doc__ = original.__doc__
    pop_global_arguments.__wrapped__ = original  # type: ignore[attr-defined]
    for module in (arguments, operation, deploy, facts):
        module.pop_global_arguments = pop_global_arguments
