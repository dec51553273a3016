"""kvpod's pyinfra operations: read facts, compare with the wanted state, yield commands only for differences.

Helpers shared by the operations and the roles:

- :func:`changed` builds an "any of these operations changed" predicate that is right in both phases:
  while preparing (a dry run) it answers from pyinfra's change detection, while executing from the
  operations' results. Pass it as ``_if=``, or as ``when=``/``restart_when=`` of :mod:`.units` operations.
- :func:`refuse` stops an operation with a clear message: an ``OperationError`` while preparing; while
  executing, a step that prints the message to stderr and fails (a raised exception would abort ``run_ops``
  for every host; a failing step fails only this host, and its stderr reaches the run's report).
  :func:`host_error` builds such an error with ``.host`` set, for roles to raise.
- :func:`planned_commands` lists what each operation would run on a host now (for dry runs and tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pyinfra import context
from pyinfra.api import OperationError, QuoteString, StringCommand
from pyinfra.api.command import PyinfraCommand
from pyinfra.context import ctx_host, ctx_state


def _op_changed(meta) -> bool:
    if meta is None:
        return False
    if meta.is_complete():
        return meta.did_change()
    return bool(meta.will_change)


def changed(*metas) -> Callable[[], bool]:
    """A zero-argument predicate: did (executing) / will (preparing) any of these operations change something."""

    def predicate() -> bool:
        return any(_op_changed(m) for m in metas)

    predicate.__name__ = "changed"
    return predicate


def host_error(message: str) -> OperationError:
    """An ``OperationError`` that carries the host it is about (``.host``), so a runner can attribute it."""
    error = OperationError(message)
    error.host = ctx_host.get() if ctx_host.isset() else None  # type: ignore[attr-defined]
    return error


def refuse(message: str) -> Iterator[PyinfraCommand]:
    """Stop the current operation on this host with ``message`` (``yield from refuse(...)``)."""
    if not context.state.is_executing:
        raise host_error(message)
    yield StringCommand("echo", QuoteString(f"kvpod: {message}"), ">&2; exit 1")


def planned_commands(state_, host_) -> list[tuple[str, list[PyinfraCommand]]]:
    """``[(operation name, commands)]`` this host would run now, re-reading facts; honours ``_if`` predicates.

    Use after ``add_deploy`` and instead of ``run_ops`` to show a dry run (``_if`` callables built with
    :func:`changed` are safe to call before execution; pyinfra's own ``did_change`` is not).
    """
    out = []
    with ctx_state.use(state_), ctx_host.use(host_):
        for op_hash in state_.get_op_order():
            op_data = state_.ops.get(host_, {}).get(op_hash)
            if op_data is None:
                continue
            conditions = op_data.global_arguments.get("_if")
            if callable(conditions):
                conditions = [conditions]
            if conditions and not all(c() for c in conditions):
                continue
            names = ", ".join(sorted(state_.get_op_meta(op_hash).names))
            out.append((names, list(op_data.command_generator())))
    return out
