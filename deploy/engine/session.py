"""The one pyinfra session kvpod runs deploys in: connect, read snapshots, prepare, execute, collect.

The survey (:mod:`deploy.engine.survey`: evaluate deploys, change nothing) and the phases
(:mod:`deploy.engine.phase`: a dry or real run) build the same :class:`Session`; only whether operations
execute differs. Hosts run in parallel; a host that fails or cannot be reached does not stop the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback

from deploy.engine import pyinfra_speed
from deploy.engine.pyinfra_adapter import commands_run, connection_lost, would_change
from deploy.engine.reachability import ConnectErrors, mark_lost
from deploy.engine.results import HostResult, HostStatus, RunStats
from deploy.engine.snapshot_reader import SnapshotReader, load_snapshots
from deploy.operations.bundle import written_by
from deploy.operations.restart import pending_units, restart_pending
from deploy.secrets import redact

pyinfra_speed.install()  # pyinfra's per-operation argument handling done once; full collections rare


class Session:
    """pyinfra's ``Inventory`` and ``State`` for ``hosts`` (``(name, host data)``), each host's commands counted
    in ``stats`` and its fact reads served by a :class:`SnapshotReader`.

    ``check_for_changes``: operations are evaluated as they are prepared (a survey or a dry run); otherwise
    they read their facts when they execute. ``callbacks`` are added before the record of connect errors.
    """

    def __init__(
        self,
        hosts: list[tuple[str, dict[str, Any]]],
        *,
        check_for_changes: bool,
        stats: RunStats,
        connect_timeout: int = 20,
        callbacks: Iterable[BaseStateCallback] = (),
    ):
        self.inventory = Inventory((hosts, {}))
        config = Config(CONNECT_TIMEOUT=connect_timeout, FAIL_PERCENT=None)
        self.state = State(self.inventory, config, check_for_changes=check_for_changes)
        for callback in callbacks:
            self.state.add_callback_handler(callback)
        self.errors = ConnectErrors()
        self.state.add_callback_handler(self.errors)
        self.stats = stats
        self.readers = {h: SnapshotReader(self.state, h, stats) for h in self.inventory}
        self.by_name = {h.name: h for h in self.inventory}
        self.lost: set[str] = set()  # hosts whose SSH session died while operations executed

    def connect(self, reads_of: Callable[[Any], list] | None) -> None:
        """Connect every host, then read each reachable host's snapshot of ``reads_of(host)`` (one command)."""
        with contextlib.suppress(PyinfraError):  # every host unreachable: each is reported as such
            connect_all(self.state)
        if reads_of is not None:
            load_snapshots(self.state, self.readers, reads_of)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a failing disconnect must not hide the run's results
            disconnect_all(self.state)

    def reachable(self, host) -> bool:
        return host in self.state.active_hosts

    def commands(self, host) -> int:
        """The commands ``host`` ran so far."""
        return self.stats.commands[host.name]

    def prepare(self, host, deploys: list[Callable[..., Any]], result: HostResult, *, isolate: bool) -> bool:
        """Add ``deploys`` for ``host``; a refusal fails ``result`` (and, with ``isolate``, keeps the host's
        partly prepared operations from running) without stopping other hosts. Whether all were added."""
        try:
            for deploy in deploys:
                add_deploy(self.state, deploy, host=[host])
        except Exception as exc:  # an operation refused (OperationError) or broke while being prepared
            result.fail("prepare", [str(exc) if isinstance(exc, OperationError) else f"{type(exc).__name__}: {exc}"])
            if isolate:
                with contextlib.suppress(PyinfraError):
                    self.state.fail_hosts({host})
            return False
        return True

    def execute(self, prepared: list, results: dict[str, HostResult]) -> None:
        """Run the prepared operations of every host; a host whose connection was lost becomes unreachable
        once collected (:meth:`collect`)."""
        try:
            if prepared:
                run_ops(self.state)
        except PyinfraError as exc:
            for h in prepared:
                if h in self.state.failed_hosts and results[h.name].note is None:
                    results[h.name].note = str(exc)
        finally:
            self.lost = {h.name for h in prepared if h in self.state.failed_hosts and connection_lost(h)}

    def collect(self, host, result: HostResult, dry: bool, keep_output: bool = False) -> None:
        """What ``host``'s operations did (or, ``dry``, would do) into ``result``."""
        _collect(self.state, host, result, dry, keep_output)
        if host.name in self.lost:
            mark_lost(host, result)


def _changes(name: str, meta) -> list[str]:
    """What a changed operation reports: its name; a bundle of files, each file it wrote in place of its own name
    (``kvpod node | lmcache | LMCache env file of engine 0``, not ``kvpod node | kvpod node files``)."""
    written = written_by(meta)
    if written is None or not written.paths:
        return [name]
    deploy_path = name.rpartition(" | ")[0]
    return [f"{deploy_path} | {label}" if deploy_path else label for label in written.written_labels()]


def _collect(state: State, host, result: HostResult, dry: bool, keep_output: bool) -> None:
    if result.status == HostStatus.FAILED:
        return
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        name = ", ".join(state.get_op_meta(op_hash).names) or op_hash
        if dry:
            if would_change(meta):
                result.changed_ops += 1
                result.changes += _changes(name, meta)
            continue
        if not meta.is_complete():
            continue
        if keep_output:
            result.output[name] = list(meta.stdout_lines)
        if meta.did_error():
            result.fail(name, [redact(line) for line in meta.stderr_lines[-20:] or meta.stdout_lines[-20:]])
        elif meta.did_change():
            result.changed_ops += 1
            result.commands += commands_run(meta)
            result.changes += _changes(name, meta)
    if host in state.failed_hosts and result.status != HostStatus.FAILED:
        result.status = HostStatus.FAILED
        result.failed_step = result.failed_step or "unknown step"
    if result.status != HostStatus.FAILED:
        changed = HostStatus.WOULD_CHANGE if dry else HostStatus.CHANGED
        result.status = changed if result.changed_ops else HostStatus.UNCHANGED
    result.restart_pending = restart_pending(state, host)
    result.restart_units = pending_units(state, host)
