"""The only module that builds pyinfra's Inventory and State and runs deploys against hosts.

A run has three phases in a fixed order: switches, then storage targets, then nodes. Hosts of a phase
run in parallel; a host that fails or cannot be reached does not stop the others. Each phase reports,
per host, how many operations changed something and which step failed with its stderr.

Round trips: before a deploy runs, every fact it compares against (``reads``, listed by the role from the
plan) is read in one remote command per host (:class:`deploy.facts.snapshot.HostSnapshot`), and the
operations' fact reads are served from that snapshot until a command the host runs may change them
(:mod:`deploy.facts.effects`): those are read live again, so a step that depends on an earlier change sees
the host as it is; a value read live is served again until a command may change it. :class:`Survey`
reads many hosts at once and evaluates their deploys without changing anything: a converged pod costs
one command per host. Every command is counted at the connector (``HostResult.remote_commands``).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.command import FileUploadCommand
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback

from deploy import pyinfra_speed
from deploy.facts.copies import deep_copy
from deploy.facts.effects import ReadInvalidation, effect_of_call
from deploy.facts.read_keys import read_key_of
from deploy.facts.snapshot import HostSnapshot
from deploy.names import NAME_KEY, NODE_KEY, RESTART_PENDING_KEY, SWITCH_KEY, TARGET_KEY
from deploy.plan import Plan, SshPlan
from deploy.rollout import Rollout
from deploy.secrets import RedactingFilter, redact, redact_assignments
from deploy.unreachable import LOST, connect_cause, natural_key, unreachable_note

pyinfra_speed.install()  # pyinfra's per-operation argument handling done once; full collections rare

EventSink = Callable[[str, str, str], None]  # (host, kind, text): kind in start/ok/changed/error/info
ReadsFor = Callable[[dict[str, Any]], list]  # host data -> the reads of its deploy


@dataclass
class RunStats:
    """What a run cost, per host name: remote commands at the connector, fact reads served live."""

    commands: Counter = field(default_factory=Counter)
    live_reads: dict[str, list[str]] = field(default_factory=dict)
    snapshot_hits: Counter = field(default_factory=Counter)


class SnapshotReader:
    """Serves ``host.get_fact`` from the host's snapshot while it is fresh; counts the host's commands.

    A command the host runs while executing (not a fact read) stales the values it may change
    (:mod:`deploy.facts.effects`; an unknown command every value): those are read live again, and kept.
    """

    def __init__(self, state: State, host, stats: RunStats):
        self.state, self.host, self.stats = state, host, stats
        self.live = host.get_fact
        self.values: dict[str, Any] = {}
        self.fresh = False
        self.reading = False
        self.effects, self.inside = ReadInvalidation(), False  # effects: reads go stale by what commands change
        host.get_fact = self.get_fact
        conn = host.connector
        for name in ("run_shell_command", "put_file", "get_file"):
            setattr(conn, name, self._counted(getattr(conn, name), name))

    def _counted(self, call: Callable, name: str = "run_shell_command") -> Callable:
        def counted(*args, **kwargs):
            self.stats.commands[self.host.name] += 1
            if self.reading or self.inside or not self.state.is_executing:
                return call(*args, **kwargs)
            self.effects.ran(self.values, effect_of_call(name, args, kwargs))  # effects: what it may change
            self.inside = True  # effects: an upload's own commands (a sudo move) are the upload's
            try:
                return call(*args, **kwargs)
            finally:
                self.inside = False

        return counted

    def load(self, reads: list) -> None:
        """Read ``reads`` in one command; nothing to read (or a failure) leaves every read live."""
        if not reads:
            return
        try:
            self.values = self._live(HostSnapshot, reads=tuple(reads))
        except Exception:  # an unreachable host or a broken shell: the deploy reads live and reports it
            self.values = {}
        self.fresh = bool(self.values)

    def seed(self, values: dict[str, Any]) -> None:
        """Serve ``values`` (a snapshot read by an earlier state of this run) without reading again."""
        self.values, self.fresh = values, bool(values)

    def _live(self, cls, *args, **kwargs):
        self.reading = True
        try:
            return self.live(cls, *args, **kwargs)
        finally:
            self.reading = False

    def get_fact(self, cls, *args, **kwargs):
        key = None
        if not args:
            with contextlib.suppress(TypeError):
                key = read_key_of(cls, kwargs)  # read_key, kept per class and arguments
        if self.fresh and key in self.values:
            self.stats.snapshot_hits[self.host.name] += 1
            return deep_copy(self.values[key])  # copy.deepcopy, quicker for JSON-like values
        self.stats.live_reads.setdefault(self.host.name, []).append(key or cls.__name__)
        value = self._live(cls, *args, **kwargs)
        if self.fresh and self.effects.keep(key):  # effects: served again until a command stales it
            self.values[key] = deep_copy(value)
        return value


def load_snapshots(state: State, readers: dict, reads_of: Callable[[Any], list]) -> None:
    """Read every reachable host's snapshot in parallel (one command each); ``reads_of(host)`` lists its reads."""
    import gevent
    from pyinfra.context import ctx_host, ctx_state

    def load(host) -> None:
        with ctx_state.use(state), ctx_host.use(host):
            try:
                reads = reads_of(host)
            except Exception:  # a plan the deploy will refuse with its own message: read live
                reads = []
            readers[host].load(reads)

    gevent.joinall([state.pool.spawn(load, h) for h in readers if h in state.active_hosts])


@dataclass
class HostResult:
    """What one run did on one host."""

    name: str
    role: str  # switch | target | node
    status: str = "unchanged"  # changed | unchanged | failed | unreachable | manual | would-change
    changed_ops: int = 0
    commands: int = 0
    changes: list[str] = field(default_factory=list)
    failed_step: str | None = None
    stderr: list[str] = field(default_factory=list)
    note: str | None = None
    restart_pending: bool = False
    planned: list[tuple[str, list[str]]] = field(default_factory=list)  # dry runs: (operation, commands)
    diffs: dict[str, str] = field(default_factory=dict)  # dry runs: remote path -> unified diff
    remote_commands: int = 0  # every command this host ran for the run, counted at the connector
    output: dict[str, list[str]] = field(default_factory=dict)  # run_output: operation -> its stdout lines
    cause: str | None = None  # unreachable: why, in one phrase (deploy.unreachable); the note adds where

    def as_json(self) -> dict[str, Any]:
        return _redacted(self._as_json())

    def _as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "status": self.status,
            "changed_operations": self.changed_ops,
            "commands": self.commands,
            "changes": self.changes,
            "failed_step": self.failed_step,
            "stderr": self.stderr[-20:],
            "note": self.note,
            "restart_pending": self.restart_pending,
            "planned": [{"operation": op, "commands": cmds} for op, cmds in self.planned],
            "diffs": self.diffs,
            "remote_commands": self.remote_commands,
            "cause": self.cause,
        }


def _redacted(value: Any) -> Any:
    """``value`` (JSON-like) with every known secret redacted in its strings (:mod:`deploy.secrets`)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


@dataclass
class RunReport:
    hosts: list[HostResult]
    seconds: float
    run_dir: Path | None
    dry: bool
    outcome: str = "completed"  # completed | refused (lock busy, unsafe step) | interrupted
    reason: str | None = None  # why a run was refused or interrupted
    rollout: Rollout | None = None  # the rolling restart of a real run, when one was due

    @property
    def ok(self) -> bool:
        return self.outcome == "completed" and all(h.status not in ("failed", "unreachable") for h in self.hosts)

    @property
    def unreachable(self) -> list[HostResult]:
        """The unreachable hosts, numerically sorted by name."""
        return sorted((h for h in self.hosts if h.status == "unreachable"), key=lambda h: natural_key(h.name))

    @property
    def changed(self) -> int:
        return sum(h.changed_ops for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "reason": self.reason,
            "dry": self.dry,
            "seconds": round(self.seconds, 1),
            "changed_operations": self.changed,
            "hosts": {h.name: h.as_json() for h in self.hosts},
            "rollout": _redacted(self.rollout.as_json()) if self.rollout else None,
        }


def ssh_host_data(ssh: SshPlan) -> dict[str, Any]:
    """pyinfra host data for an SSH host of the plan."""
    data: dict[str, Any] = {
        "ssh_hostname": ssh.host,
        "ssh_port": ssh.port,
        "ssh_user": ssh.user,
        "ssh_strict_host_key_checking": ssh.strict_host_key_checking,
        "ssh_connect_retries": 2,
    }
    if ssh.key:
        data["ssh_key"] = ssh.key
    if ssh.known_hosts_file:
        data["ssh_known_hosts_file"] = ssh.known_hosts_file
    if ssh.sudo:
        data["_sudo"] = True
    return data


KILL_ENV = "KVPOD_KILL_AT"


def kill_selected(spec: str | None, moment: str, host: str, names: Iterable[str]) -> bool:
    """Fault injection for the interruption tests: whether ``KVPOD_KILL_AT`` selects ``moment`` ("before" or
    "after") of an operation named ``names`` on ``host``. The value is ``before:TEXT`` or ``after:TEXT``, or
    ``after@HOST:TEXT`` for one host only; TEXT is part of the operation's name. (An operation at the same
    place of a deploy on several hosts is one operation to pyinfra, holding each host's name.)"""
    when, sep, text = (spec or "").partition(":")
    at, _, only = when.partition("@")
    return bool(sep and text) and at == moment and only in ("", host) and any(text in name for name in names)


def _kill_point(moment: str, host, names: Iterable[str]) -> None:
    """SIGKILL this process at the operation ``KVPOD_KILL_AT`` names (as a power cut of the controller would)."""
    if kill_selected(os.environ.get(KILL_ENV), moment, host.name, names):
        os.kill(os.getpid(), signal.SIGKILL)


class _Progress(BaseStateCallback):
    """Forwards pyinfra's per-host operation events to the caller's sink (the CLI's live view)."""

    def __init__(self, sink: EventSink | None):
        self.sink = sink

    def _emit(self, host, kind: str, text: str) -> None:
        if self.sink:
            self.sink(host.name, kind, text)

    def operation_host_start(self, state, host, op_hash):
        names = state.get_op_meta(op_hash).names
        _kill_point("before", host, names)
        self._emit(host, "start", ", ".join(names))

    def operation_host_success(self, state, host, op_hash, retry_count=0):
        _kill_point("after", host, state.get_op_meta(op_hash).names)

    def operation_end(self, state, op_hash):
        names = ", ".join(state.get_op_meta(op_hash).names)
        for host, ops in state.ops.items():
            data = ops.get(op_hash)
            if data is not None and data.operation_meta.is_complete() and data.operation_meta.did_change():
                self._emit(host, "changed", names)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        self._emit(host, "error", ", ".join(state.get_op_meta(op_hash).names))


class ConnectErrors(BaseStateCallback):
    """Records, per host, why its SSH connection failed (:func:`deploy.unreachable.connect_cause`)."""

    def __init__(self) -> None:
        self.causes: dict[str, str] = {}

    def host_connect_error(self, state, host, error):
        self.causes[host.name] = connect_cause(error)

    def mark(self, host, result: HostResult) -> None:
        """``result`` is unreachable: where the host is and why it did not answer."""
        result.status = "unreachable"
        result.cause = self.causes.get(host.name, "no SSH connection")
        result.note = unreachable_note(*where(host), result.cause)


def where(host) -> tuple[str, int | None]:
    """The address and port kvpod connects ``host`` at."""
    return str(host.data.get("ssh_hostname") or host.name), host.data.get("ssh_port")


class Survey:
    """Many hosts read at once (one command each) and their deploys evaluated without changing anything.

    ``hosts`` are ``(name, host data, reads)``. Use as a context manager; :meth:`values` gives a host's
    snapshot (None when unreachable), :meth:`evaluate` prepares deploys on one host as a dry run would and
    reports what they would change.
    """

    def __init__(
        self,
        hosts: list[tuple[str, dict[str, Any], list]],
        *,
        stats: RunStats,
        run_dir: Path | None = None,
        connect_timeout: int = 20,
    ):
        self.hosts, self.stats, self.run_dir, self.connect_timeout = hosts, stats, run_dir, connect_timeout
        self._reads = {name: reads for name, _, reads in hosts}

    def __enter__(self) -> Survey:
        self._log = _pyinfra_log(self.run_dir)
        self._log.__enter__()
        inventory = Inventory(([(name, data) for name, data, _ in self.hosts], {}))
        config = Config(CONNECT_TIMEOUT=self.connect_timeout, FAIL_PERCENT=None)
        self.state = State(inventory, config, check_for_changes=True)  # evaluate deploys, change nothing
        self.errors = ConnectErrors()
        self.state.add_callback_handler(self.errors)
        self.readers = {h: SnapshotReader(self.state, h, self.stats) for h in inventory}
        self._by_name = {h.name: h for h in inventory}
        if self.hosts:
            with contextlib.suppress(PyinfraError):
                connect_all(self.state)
            load_snapshots(self.state, self.readers, lambda h: self._reads.get(h.name) or [])
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            disconnect_all(self.state)
        self._log.__exit__(None, None, None)

    def reachable(self, name: str) -> bool:
        return self._by_name[name] in self.state.active_hosts

    def cause(self, name: str) -> str:
        """Where an unreachable host is and why it did not answer (``127.0.0.1:2203: connection refused``)."""
        result = HostResult(name, "")
        self.errors.mark(self._by_name[name], result)
        return result.note or ""

    def values(self, name: str) -> dict[str, Any] | None:
        """The host's snapshot (``{read_key: value}``), None when it could not be reached."""
        if not self.reachable(name):
            return None
        return self.readers[self._by_name[name]].values

    def read(self, name: str, fact: type, **kwargs: Any) -> Any:
        """One fact of a reachable host: from its snapshot, else read now."""
        host = self._by_name[name]
        from pyinfra.context import ctx_host, ctx_state

        with ctx_state.use(self.state), ctx_host.use(host):
            return host.get_fact(fact, **kwargs)

    def evaluate(
        self, name: str, role: str, deploys: list[Callable[..., Any]], data: dict[str, Any], describe: bool
    ) -> HostResult:
        """Prepare ``deploys`` on host ``name`` (with ``data`` added to its host data) as a dry run."""
        host = self._by_name[name]
        result = HostResult(name, role)
        before = self.stats.commands[name]
        if not self.reachable(name):
            self.errors.mark(host, result)
            return result
        for key, value in data.items():
            setattr(host.data, key, value)
        try:
            for d in deploys:
                add_deploy(self.state, d, host=[host])
        except Exception as exc:
            result.status, result.failed_step = "failed", "prepare"
            result.stderr = [str(exc) if isinstance(exc, OperationError) else f"{type(exc).__name__}: {exc}"]
        else:
            if describe:
                _describe(self.state, host, result)
            _collect(self.state, host, result, dry=True)
        result.remote_commands = self.stats.commands[name] - before
        return result


def run_output(
    role: str,
    hosts: list[tuple[str, dict[str, Any]]],
    deploy_func: Callable[..., Any],
    *,
    sink: EventSink | None = None,
    run_dir: Path | None = None,
    connect_timeout: int = 20,
    stats: RunStats | None = None,
) -> list[HostResult]:
    """Run ``deploy_func`` on ``hosts`` in parallel (a real run) and keep each operation's stdout.

    For deploys that measure or report rather than converge: ``HostResult.output`` maps each executed
    operation's name to the lines it printed; a host's failure is reported as by :func:`run_phase`.
    """
    return run_phase(
        role,
        hosts,
        deploy_func,
        dry=False,
        sink=sink,
        run_dir=run_dir,
        connect_timeout=connect_timeout,
        stats=stats,
        keep_output=True,
    )


@contextlib.contextmanager
def _pyinfra_log(run_dir: Path | None) -> Iterator[None]:
    """pyinfra's log (INFO and up) into ``run_dir/pyinfra.log`` while the block runs; without a run dir, nowhere
    (not onto stderr: kvpod reports each host's failure itself, once)."""
    logger = logging.getLogger("pyinfra")
    if run_dir is None:
        quiet = logging.NullHandler()
        logger.addHandler(quiet)
        try:
            yield
        finally:
            logger.removeHandler(quiet)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "pyinfra.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())  # no secret in the log
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def run_phase(
    role: str,
    hosts: list[tuple[str, dict[str, Any]]],
    deploy_func: Callable[..., Any],
    *,
    dry: bool,
    sink: EventSink | None = None,
    run_dir: Path | None = None,
    connect_timeout: int = 20,
    reads_for: ReadsFor | None = None,
    stats: RunStats | None = None,
    keep_output: bool = False,
) -> list[HostResult]:
    """Run one ``@deploy`` on ``hosts`` in parallel; never raises for a host's failure.

    ``reads_for(host data)`` lists the reads of the deploy: they are read in one command per host first.
    ``keep_output``: keep what each executed operation printed (``HostResult.output``).
    """
    if not hosts:
        return []
    with _pyinfra_log(run_dir):
        return _run_phase(
            role,
            hosts,
            deploy_func,
            dry=dry,
            sink=sink,
            connect_timeout=connect_timeout,
            reads_for=reads_for,
            stats=stats if stats is not None else RunStats(),
            keep_output=keep_output,
        )


def _run_phase(
    role, hosts, deploy_func, *, dry, sink, connect_timeout, reads_for, stats, keep_output=False
) -> list[HostResult]:
    inventory = Inventory((hosts, {}))
    config = Config(CONNECT_TIMEOUT=connect_timeout, FAIL_PERCENT=None)
    # For a real run operations read facts when they execute; for --dry they are evaluated now.
    state = State(inventory, config, check_for_changes=dry)
    state.add_callback_handler(_Progress(sink))
    errors = ConnectErrors()
    state.add_callback_handler(errors)
    results = {h.name: HostResult(h.name, role) for h in inventory}
    before = {h.name: stats.commands[h.name] for h in inventory}
    readers = {h: SnapshotReader(state, h, stats) for h in inventory}
    with contextlib.suppress(PyinfraError):  # every host unreachable: reported below
        connect_all(state)
    if reads_for is not None:
        load_snapshots(state, readers, lambda h: reads_for(h.data.dict()))
    for h in inventory:
        if h not in state.active_hosts:
            errors.mark(h, results[h.name])
    active = [h for h in inventory if h in state.active_hosts]
    prepared = []
    for h in active:  # one host's refusal while preparing must not stop the others
        try:
            add_deploy(state, deploy_func, host=[h])
            prepared.append(h)
        except Exception as exc:  # an operation refused (OperationError) or broke while being prepared
            results[h.name].status = "failed"
            results[h.name].failed_step = "prepare"
            results[h.name].stderr = [str(exc) if isinstance(exc, OperationError) else f"{type(exc).__name__}: {exc}"]
            with contextlib.suppress(PyinfraError):  # its partly prepared operations must not run
                state.fail_hosts({h})
    if dry:
        for h in prepared:
            _describe(state, h, results[h.name])
    lost: set[str] = set()
    try:
        if prepared and not dry:
            run_ops(state)
    except PyinfraError as exc:
        for h in prepared:
            if h in state.failed_hosts and results[h.name].note is None:
                results[h.name].note = str(exc)
    finally:
        lost = {h.name for h in prepared if h in state.failed_hosts and connection_lost(h)}
        with contextlib.suppress(Exception):  # a failing disconnect must not hide the run's results
            disconnect_all(state)
    for h in active:
        _collect(state, h, results[h.name], dry, keep_output)
        if h.name in lost:  # the machine went away mid-phase: its step did not fail, the host did
            results[h.name].status, results[h.name].cause = "unreachable", LOST
            results[h.name].note = unreachable_note(*where(h), "connection lost (the host went away during this step)")
    for h in inventory:
        results[h.name].remote_commands = stats.commands[h.name] - before[h.name]
    return list(results.values())


def connection_lost(host) -> bool:
    """Whether the host's SSH session died during the run (the machine went away or its sshd was killed)."""
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "get_transport"):
        return False  # not an SSH connection (local, fake): it cannot be lost
    transport = client.get_transport()
    return transport is None or not transport.is_active()


def _collect(state: State, host, result: HostResult, dry: bool, keep_output: bool = False) -> None:
    if result.status == "failed":
        return
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        name = ", ".join(state.get_op_meta(op_hash).names) or op_hash
        if dry:
            if meta._maybe_is_change:
                result.changed_ops += 1
                result.changes.append(name)
            continue
        if not meta.is_complete():
            continue
        if keep_output:
            result.output[name] = list(meta.stdout_lines)
        if meta.did_error():
            result.status = "failed"
            result.failed_step = result.failed_step or name
            result.stderr = [redact(line) for line in meta.stderr_lines[-20:] or meta.stdout_lines[-20:]]
        elif meta.did_change():
            result.changed_ops += 1
            result.commands += len(meta._commands or [])
            result.changes.append(name)
    if host in state.failed_hosts and result.status != "failed":
        result.status = "failed"
        result.failed_step = result.failed_step or "unknown step"
    if result.status != "failed":
        result.status = ("would-change" if dry else "changed") if result.changed_ops else "unchanged"
    result.restart_pending = bool(host.data.get(RESTART_PENDING_KEY))


def _describe(state: State, host, result: HostResult) -> None:
    """For a dry run: the commands each operation would run, and a unified diff for each file it would write."""
    from deploy.operations import planned_commands

    try:
        planned = planned_commands(state, host)
    except Exception as exc:  # a refusal: the dry run reports it as this host's failure
        result.status = "failed"
        result.failed_step = result.failed_step or "prepare"
        result.stderr = [str(exc)]
        return
    for op, commands in planned:
        if not commands:
            continue
        lines = []
        for cmd in commands:
            if isinstance(cmd, FileUploadCommand):
                lines.append(f"upload {cmd.dest}")
                result.diffs[cmd.dest] = redact_assignments(_file_diff(host, cmd))
            else:
                lines.append(redact(cmd.get_masked_value() if hasattr(cmd, "get_masked_value") else repr(cmd)))
        result.planned.append((op, lines))


def _file_diff(host, cmd: FileUploadCommand) -> str:
    src = cmd.src
    if hasattr(src, "getvalue"):
        new = src.getvalue()
    else:
        with open(src) as f:
            new = f.read()
    if isinstance(new, bytes):
        new = new.decode(errors="replace")
    buf = io.BytesIO()
    try:
        old = buf.getvalue().decode(errors="replace") if host.get_file(cmd.dest, buf) else ""
    except Exception:  # the file does not exist yet
        old = ""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"{host.name}:{cmd.dest}", "planned"
        )
    )


def node_hosts(plan: Plan, limit: Iterable[str] | None, extra: dict[str, dict] | None = None) -> list[tuple[str, dict]]:
    """pyinfra hosts for the plan's nodes (optionally limited by name), with their NodePlan attached."""
    wanted = set(limit or [])
    out = []
    for n in plan.nodes:
        if wanted and n.name not in wanted:
            continue
        data = ssh_host_data(n.ssh) | {NODE_KEY: n}
        data.update((extra or {}).get(n.name, {}))
        out.append((n.name, data))
    return out


def target_hosts(plan: Plan) -> list[tuple[str, dict]]:
    """pyinfra hosts of the managed enclosures: one per SSH endpoint (named after its first enclosure), with
    the enclosures it serves attached; those without SSH on ``@local`` (see :mod:`deploy.targets`)."""
    from deploy.targets import managed_groups

    out = []
    for group in managed_groups(plan):
        data = {TARGET_KEY: group, NAME_KEY: group[0].name}
        ssh = group[0].ssh
        out.append((group[0].name, ssh_host_data(ssh) | data) if ssh else ("@local", data))
    return out


def switch_hosts(plan: Plan) -> list[tuple[str, dict]]:
    out = []
    for sw in plan.switches:
        if sw.kind == "none":
            continue
        if sw.ssh is not None:
            out.append((sw.name, ssh_host_data(sw.ssh) | {SWITCH_KEY: sw}))
        else:  # a Linux bridge on the machine running kvpod
            out.append(("@local", {SWITCH_KEY: sw}))
    return out
