"""pyinfra's per-operation work that is the same for every operation and every host, done once per process.

Each operation call pops pyinfra's global arguments (``_sudo``, ``_retries``, ...); the list of those arguments
and their types comes from ``typing.get_type_hints`` of pyinfra's argument TypedDicts, evaluated anew for every
operation on every host (about half of the local CPU of a converged fleet's survey). The list never changes:
:func:`install` computes it once and has pyinfra use it. Each of those arguments is then looked up in the host's
data, which searches its layers anew for every name (copying what it finds), and its default evaluated even when
the host's data sets it: :func:`pop_global_arguments` does pyinfra's 3.10.0 loop with the host's global-argument
data gathered in one pass over its layers (first layer wins, each value copied, as ``host.data.<name>`` gives it)
and a default evaluated only when the data does not set it; a plain value (a string, number, bool or None) type-checked
once per argument. Nothing else changes.
"""

from __future__ import annotations

import copy
import gc
import importlib
from typing import Any

_UNSET = object()
_PLAIN = frozenset({str, int, float, bool, type(None)})


def global_data(data: Any, keys: frozenset[str]) -> dict[str, Any]:
    """``{name: host.data.<name>}`` for each of ``keys`` the host's data sets: pyinfra's ``HostData`` read in one
    pass over its layers (a callable layer called once), each value a copy; other data objects name by name."""
    from pyinfra.api.host import HostData, extract_callable_datas

    if type(data) is not HostData:
        return {k: v for k in keys if (v := getattr(data, k, _UNSET)) is not _UNSET}
    found: dict[str, Any] = {}
    for layer in extract_callable_datas(data.datas):
        for key in layer:
            if key in keys and key not in found:
                found[key] = copy.copy(layer[key])
    return found


def argument_popper(arguments: Any) -> Any:
    """pyinfra's ``pop_global_arguments`` (``arguments``: the module ``pyinfra.api.arguments``, its list of
    global arguments already computed once) reading the host's data for them in one pass."""
    from pyinfra.context import ContextObject, ctx_config

    table = tuple((key, type_, arguments.all_argument_meta[key]) for key, type_ in arguments.all_global_arguments())
    keys = frozenset(key for key, _, _ in table)
    check, error = arguments.raise_if_bad_type, arguments.ArgumentTypeError
    passed: set[tuple[str, type, Any]] = set()

    def pop_global_arguments(state: Any, host: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(host, ContextObject):
            host = host._get_module()  # the host itself, not pyinfra's context proxy of it (the same object)
        config = state.config
        if ctx_config.isset():
            config = ctx_config.get()
            assert config is not None
        meta_kwargs = host.current_deploy_kwargs or {}
        from_data = global_data(host.data, keys)
        values: dict[str, Any] = {}
        found_keys: list[str] = []
        for key, type_, meta in table:
            default = from_data[key] if key in from_data else meta.default(config)
            if key in kwargs:
                found_keys.append(key)
                value = kwargs.pop(key)
            else:
                value = meta_kwargs.get(key, default)
            if meta.handler:
                value = meta.handler(config, value)
            if value != default:
                plain = type(value) in _PLAIN  # a plain value that passed its check passes it again
                if not plain or (key, type(value), value) not in passed:
                    check(value, type_, error, f"Invalid argument `{key}`:")
                    if plain:
                        passed.add((key, type(value), value))
            values[key] = value
        return values, found_keys

    return pop_global_arguments


GC_THRESHOLDS = (10_000, 10, 1_000)  # Python's defaults: (700, 10, 10)


def install() -> None:
    """Serve pyinfra's list of global arguments from one computation; raise the collector's thresholds
    (idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)
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
    pop_global_arguments = argument_popper(arguments)
    pop_global_arguments.__doc__ = original.__doc__
    pop_global_arguments.__wrapped__ = original  # type: ignore[attr-defined]
    for module in (arguments, operation, deploy, facts):
        module.pop_global_arguments = pop_global_arguments
