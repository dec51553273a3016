"""The only module that builds pyinfra's Inventory and State and runs deploys against hosts.

A run has three phases in a fixed order: switches, then storage targets, then nodes. Hosts of a phase
run in parallel; a host that fails or cannot be reached does not stop the others. Each phase reports,
per host, how many operations changed something and which step failed with its stderr.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback

from deploy.plan import NodePlan, Plan, SshPlan, SwitchPlan, TargetPlan

EventSink = Callable[[str, str, str], None]  # (host, kind, text): kind in start/ok/changed/error/info


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

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "status": self.status,
            "changed_operations": self.changed_ops,
            "commands": self.commands,
            "changes": self.changes,
            "failed_step": self.failed_step,
            "stderr": self.stderr[-20:],
            "note": self.note,
        }


@dataclass
class RunReport:
    hosts: list[HostResult]
    seconds: float
    run_dir: Path | None
    dry: bool

    @property
    def ok(self) -> bool:
        return all(h.status not in ("failed", "unreachable") for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed_ops for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry": self.dry,
            "seconds": round(self.seconds, 1),
            "changed_operations": self.changed,
            "hosts": {h.name: h.as_json() for h in self.hosts},
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


class _Progress(BaseStateCallback):
    """Forwards pyinfra's per-host operation events to the caller's sink (the CLI's live view)."""

    def __init__(self, sink: EventSink | None):
        self.sink = sink

    def _emit(self, host, kind: str, text: str) -> None:
        if self.sink:
            self.sink(host.name, kind, text)

    def operation_host_start(self, state, host, op_hash):
        self._emit(host, "start", ", ".join(state.get_op_meta(op_hash).names))

    def operation_end(self, state, op_hash):
        names = ", ".join(state.get_op_meta(op_hash).names)
        for host, ops in state.ops.items():
            data = ops.get(op_hash)
            if data is not None and data.operation_meta.is_complete() and data.operation_meta.did_change():
                self._emit(host, "changed", names)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        self._emit(host, "error", ", ".join(state.get_op_meta(op_hash).names))

    def host_connect_error(self, state, host, error):
        self._emit(host, "error", f"cannot connect: {error}")


def _log_to(run_dir: Path | None) -> logging.Handler | None:
    if run_dir is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "pyinfra.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def run_phase(
    role: str,
    hosts: list[tuple[str, dict[str, Any]]],
    deploy_func: Callable[..., Any],
    *,
    dry: bool,
    sink: EventSink | None = None,
    run_dir: Path | None = None,
    connect_timeout: int = 20,
) -> list[HostResult]:
    """Run one ``@deploy`` on ``hosts`` in parallel; never raises for a host's failure."""
    if not hosts:
        return []
    logger = logging.getLogger("pyinfra")
    handler = _log_to(run_dir)
    if handler:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        return _run_phase(role, hosts, deploy_func, dry=dry, sink=sink, connect_timeout=connect_timeout)
    finally:
        if handler:
            logger.removeHandler(handler)
            handler.close()


def _run_phase(role, hosts, deploy_func, *, dry, sink, connect_timeout) -> list[HostResult]:
    inventory = Inventory((hosts, {}))
    config = Config(CONNECT_TIMEOUT=connect_timeout, FAIL_PERCENT=None)
    # For a real run operations read live facts when they execute; for --dry they are evaluated now.
    state = State(inventory, config, check_for_changes=dry)
    state.add_callback_handler(_Progress(sink))
    results = {h.name: HostResult(h.name, role) for h in inventory}
    with contextlib.suppress(PyinfraError):  # every host unreachable: reported below
        connect_all(state)
    for h in inventory:
        if h not in state.active_hosts:
            results[h.name].status = "unreachable"
            results[h.name].note = "SSH connection failed (see the run log)"
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
    try:
        if prepared and not dry:
            run_ops(state)
    except PyinfraError as exc:
        for h in prepared:
            if h in state.failed_hosts and results[h.name].note is None:
                results[h.name].note = str(exc)
    finally:
        with contextlib.suppress(Exception):  # a failing disconnect must not hide the run's results
            disconnect_all(state)
    for h in active:
        _collect(state, h, results[h.name], dry)
    return list(results.values())


def _collect(state: State, host, result: HostResult, dry: bool) -> None:
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
        if meta.did_error():
            result.status = "failed"
            result.failed_step = result.failed_step or name
            result.stderr = meta.stderr_lines[-20:] or meta.stdout_lines[-20:]
        elif meta.did_change():
            result.changed_ops += 1
            result.commands += len(meta._commands or [])
            result.changes.append(name)
    if host in state.failed_hosts and result.status != "failed":
        result.status = "failed"
        result.failed_step = result.failed_step or "unknown step"
    if result.status != "failed":
        result.status = ("would-change" if dry else "changed") if result.changed_ops else "unchanged"


def node_hosts(plan: Plan, limit: Iterable[str] | None, extra: dict[str, dict] | None = None) -> list[tuple[str, dict]]:
    """pyinfra hosts for the plan's nodes (optionally limited by name), with their NodePlan attached."""
    wanted = set(limit or [])
    out = []
    for n in plan.nodes:
        if wanted and n.name not in wanted:
            continue
        data = ssh_host_data(n.ssh) | {"kvpod_node": n, "kvpod_plan": plan}
        data.update((extra or {}).get(n.name, {}))
        out.append((n.name, data))
    return out


def target_hosts(plan: Plan) -> list[tuple[str, dict]]:
    return [
        (t.name, ssh_host_data(t.ssh) | {"kvpod_target": t, "kvpod_plan": plan})
        for t in plan.targets
        if t.kind == "linux-nvmet" and t.ssh is not None
    ]


def switch_hosts(plan: Plan) -> list[tuple[str, dict]]:
    out = []
    for sw in plan.switches:
        if sw.kind == "none":
            continue
        if sw.ssh is not None:
            out.append((sw.name, ssh_host_data(sw.ssh) | {"kvpod_switch": sw, "kvpod_plan": plan}))
        else:  # a Linux bridge on the machine running kvpod
            out.append(("@local", {"kvpod_switch": sw, "kvpod_plan": plan, "kvpod_name": sw.name}))
    return out


@dataclass
class UpOptions:
    limit: list[str] | None = None
    dry: bool = False
    wipe: set[str] = field(default_factory=set)  # "enclosure/slot" drives the user asked to reformat
    defer_restart: bool = False
    run_dir: Path | None = None
    skip_fabric: bool = False  # only nodes (used by --limit runs that should not touch shared parts)


def run_up(plan: Plan, opts: UpOptions, sink: EventSink | None = None) -> RunReport:
    """Switches, then targets, then nodes. Nodes are skipped when the fabric phases failed."""
    from roles.node import node as node_deploy

    start = time.monotonic()
    results: list[HostResult] = []
    if not opts.skip_fabric:
        results += _switch_phase(plan, opts, sink)
        results += _target_phase(plan, opts, sink)
    fabric_failed = [r for r in results if r.status in ("failed", "unreachable")]
    extra = {
        n.name: {
            "kvpod_wipe": f"{n.namespace.enclosure}/{n.namespace.drive}" in opts.wipe,
            "kvpod_defer_restart": opts.defer_restart,
        }
        for n in plan.nodes
    }
    hosts = node_hosts(plan, opts.limit, extra)
    if fabric_failed and not opts.dry:
        for name, _ in hosts:
            results.append(
                HostResult(
                    name,
                    "node",
                    status="failed",
                    failed_step="fabric",
                    note=f"not started: {', '.join(r.name for r in fabric_failed)} failed",
                )
            )
    else:
        results += run_phase("node", hosts, node_deploy, dry=opts.dry, sink=sink, run_dir=opts.run_dir)
    return RunReport(results, time.monotonic() - start, opts.run_dir, opts.dry)


def _switch_phase(plan: Plan, opts: UpOptions, sink: EventSink | None) -> list[HostResult]:
    from deploy.switches import driver_for

    results: list[HostResult] = []
    for name, data in switch_hosts(plan):
        sw: SwitchPlan = data["kvpod_switch"]
        res = run_phase(
            "switch", [(name, data)], driver_for(sw.kind).deploy, dry=opts.dry, sink=sink, run_dir=opts.run_dir
        )
        for r in res:
            r.name = sw.name
        results += res
    return results


def _target_phase(plan: Plan, opts: UpOptions, sink: EventSink | None) -> list[HostResult]:
    from roles.nvmet_target import nvmet_target

    results = run_phase("target", target_hosts(plan), nvmet_target, dry=opts.dry, sink=sink, run_dir=opts.run_dir)
    for t in plan.targets:
        if t.kind == "data24":
            results.append(
                HostResult(
                    t.name,
                    "target",
                    status="manual",
                    note="no provisioning API: configure it from `kvpod target sheet`",
                )
            )
    return results


def node_plan_of(host) -> NodePlan:
    """The NodePlan the runner attached to a pyinfra host (for roles)."""
    return host.data.kvpod_node


def target_plan_of(host) -> TargetPlan:
    return host.data.kvpod_target
