"""The order of a bring-up: switches, handover of moved drives, targets, nodes, rolling vLLM restarts.

Everything here is decided from the plan and from facts read through :mod:`deploy.runner` (the only
module that talks to pyinfra). Every step compares the live pod with the plan, so a run that was
interrupted anywhere is finished by running it again.

The namespace invariant: **a drive is never mounted on two nodes**. A node that still holds a drive the
plan gives to another node releases it (stop vLLM, unmount, disconnect, forget the boot-time connection)
before the target revokes its host NQN and admits the new holder, and before the new holder connects;
ext4 multi-mount protection is the last line of defence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.engine import EventSink, HostResult, RunReport, RunStats, Survey, run_phase
from deploy.errors import KvpodError
from deploy.hosts import node_hosts, ssh_host_data, switch_hosts, target_hosts
from deploy.names import (
    DEFER_RESTART_KEY,
    NAME_KEY,
    NODE_KEY,
    RELEASE_KEY,
    RESTART_ENGINES_KEY,
    SWITCH_KEY,
    TARGET_KEY,
    WIPE_KEY,
)
from deploy.plan import Plan
from deploy.podlock_run import PodLock
from deploy.release import admitted_elsewhere, fabrics_subsystems, release_requests
from deploy.rollout import EngineFailure, Rollout, node_engines, parse_max_unavailable, restart_batches
from deploy.statedir import (
    crash_point,
    load_applied_plan,
    load_pending_restarts,
    save_applied_plan,
    save_pending_restarts,
)
from deploy.wording import name_list, plural

Checkpoint = Callable[[str], None]


@dataclass
class UpOptions:
    limit: list[str] | None = None
    dry: bool = False
    wipe: set[str] = field(default_factory=set)  # "enclosure/slot" drives the user asked to reformat
    run_dir: Path | None = None
    max_unavailable: str = "1"  # rolling restarts: engines down at once ("2") or a share of the pod's ("25%")
    prune: bool = False  # release nodes that left the spec
    force_unreachable: bool = False  # hand over drives of unreachable holders (target revokes, MMP guards)
    lock: PodLock | None = None  # a changing run takes the pod lock in its survey (deploy.podlock_run)


@dataclass
class Handover:
    """What the live pod says must move before targets and nodes are configured."""

    releases: dict[str, object]  # node -> ReleaseRequest
    live: dict[str, set[str] | None]  # node -> connected pod subsystems (None: unreachable)
    removed: list[str]  # nodes of the applied plan that left the spec
    unreachable_holders: list[str]


def node_extra(plan: Plan, opts: UpOptions) -> dict[str, dict]:
    """Host data of the node phase beyond the plan: the drive to wipe, restarts deferred to the rollout."""
    return {
        n.name: {
            WIPE_KEY: f"{n.namespace.enclosure}/{n.namespace.drive}" in opts.wipe,
            DEFER_RESTART_KEY: True,
        }
        for n in plan.nodes
    }


def _removed_nodes(plan: Plan, applied: Plan | None) -> list:
    current = {n.name for n in plan.nodes}
    return [n for n in (applied.nodes if applied else []) if n.name not in current]


def _remote_hosts(plan: Plan, applied: Plan | None) -> list[tuple[str, dict, list]]:
    """Every host reached over SSH, with the reads of its deploy: switches, targets, nodes, removed nodes."""
    from deploy.facts.nvme import NvmeSubsystems
    from deploy.facts.snapshot import Read
    from deploy.switches import driver_for
    from roles.node import reads as node_reads

    hosts = [
        (name, data, driver_for(data[SWITCH_KEY].kind).reads(data[SWITCH_KEY]))
        for name, data in switch_hosts(plan)
        if name != "@local"
    ]
    hosts += [
        (name, data, _target_driver(data).reads(data[TARGET_KEY]))
        for name, data in target_hosts(plan)
        if name != "@local"
    ]
    hosts += [(name, data, node_reads(data[NODE_KEY])) for name, data in node_hosts(plan, None)]
    hosts += [(n.name, ssh_host_data(n.ssh), [Read.of(NvmeSubsystems)]) for n in _removed_nodes(plan, applied)]
    return hosts


def survey(plan: Plan, opts: UpOptions, pod: Survey) -> Handover:
    """Which subsystems each node holds now (from the survey's snapshots) and the releases (changes nothing)."""
    from deploy.facts.nvme import NvmeSubsystems

    applied = load_applied_plan(plan.pod)
    removed_nodes = _removed_nodes(plan, applied)
    names = [n.name for n in plan.nodes] + [n.name for n in removed_nodes]
    live = {
        name: (fabrics_subsystems(pod.read(name, NvmeSubsystems)) if pod.reachable(name) else None) for name in names
    }
    reachable = {k: v for k, v in live.items() if v is not None}
    removed = [n.name for n in removed_nodes]
    prune = [n for n in removed if opts.prune and n in reachable]
    releases = release_requests(plan, reachable, prune=prune, applied=applied)
    moved = _moved_from(applied, plan) | _admitted_elsewhere(plan, applied, pod)
    unreachable_holders = sorted(n for n, v in live.items() if v is None and n in moved)
    return Handover(releases, live, removed, unreachable_holders)


def _admitted_elsewhere(plan: Plan, applied: Plan | None, pod: Survey) -> set[str]:
    """Nodes the targets admit now to a drive that moves away from them (from the survey's target reads)."""
    from deploy.facts.nvmet import NvmetConfig

    admitted: dict[str, set[str]] = {}
    for name, _ in target_hosts(plan):
        if pod.reachable(name):
            for nqn, sub in pod.read(name, NvmetConfig).get("subsystems", {}).items():
                admitted.setdefault(nqn, set()).update(sub.get("allowed_hosts", []))
    host_nqns = {n.name: n.host_nqn for n in [*(applied.nodes if applied else []), *plan.nodes]}
    return admitted_elsewhere(plan, admitted, host_nqns)


def _moved_from(applied: Plan | None, plan: Plan) -> set[str]:
    """Nodes that held, in the applied plan, a drive the new plan gives to another node (or to nobody)."""
    if applied is None:
        return set()
    new_holder = {n.namespace.subsystem_nqn: n.name for n in plan.nodes}
    return {n.name for n in applied.nodes if new_holder.get(n.namespace.subsystem_nqn) != n.name}


def check_handover(plan: Plan, handover: Handover, opts: UpOptions) -> None:
    """Refuse, before anything changes, a handover that could put a drive on two nodes."""
    held_by_removed = [n for n in handover.removed if handover.live.get(n)]
    if held_by_removed and not opts.prune:
        raise KvpodError(
            f"{plural(len(held_by_removed), 'node')} ({name_list(held_by_removed)}) left the spec but still hold "
            "their drives; "
            "run with --prune to release them (vLLM stopped and disabled, unmounted, disconnected, access revoked)"
        )
    if handover.unreachable_holders and not opts.force_unreachable:
        raise KvpodError(
            f"{name_list(handover.unreachable_holders)} cannot be reached but held a drive that now moves; "
            "refusing the handover (use --force-unreachable to rely on the target revoking access first and on "
            "ext4 multi-mount protection)"
        )


def read_pod(plan: Plan, opts: UpOptions, stats: RunStats) -> tuple[Handover, list[HostResult]]:
    """Read every host once, in parallel, and evaluate every phase's deploy against what was read.

    Returns the handover and, per host, what its deploys would change (a dry run of the whole bring-up).
    Refuses an unsafe handover before returning, as :func:`bring_up` would.
    """
    from deploy.switches import driver_for
    from roles.node import node as node_deploy
    from roles.node_release import node_release

    describe = opts.dry
    results: list[HostResult] = []
    for name, data in switch_hosts(plan):
        if name != "@local":
            continue
        sw = data[SWITCH_KEY]
        driver = driver_for(sw.kind)
        with Survey([(name, data, driver.reads(sw))], stats=stats, run_dir=opts.run_dir) as local:
            result = local.evaluate(name, "switch", [driver.deploy], {}, describe)
        result.name = sw.name
        results.append(result)
    local_targets = []
    for name, data in target_hosts(plan):
        if name == "@local":
            tdriver = _target_driver(data)
            with Survey([(name, data, tdriver.reads(data[TARGET_KEY]))], stats=stats, run_dir=opts.run_dir) as local:
                local_targets.append(local.evaluate(name, "target", [tdriver.deploy], {}, describe))
            local_targets[-1].name = data[NAME_KEY]

    applied = load_applied_plan(plan.pod)
    lock = None if opts.dry else opts.lock
    hosts = _remote_hosts(plan, applied)
    with Survey(lock.with_acquire(hosts) if lock else hosts, stats=stats, run_dir=opts.run_dir) as pod:
        if lock:
            lock.confirm(pod)  # refuses (PodLocked) before anything is evaluated or changed
        handover = survey(plan, opts, pod)
        check_handover(plan, handover, opts)
        for name, data in switch_hosts(plan):
            if name != "@local":
                sw = data[SWITCH_KEY]
                result = pod.evaluate(name, "switch", [driver_for(sw.kind).deploy], {}, describe)
                result.name = sw.name
                results.append(result)
        extra = node_extra(plan, opts)
        wanted = {n for n, _ in node_hosts(plan, opts.limit)}
        for name, request in sorted(handover.releases.items()):
            deploys = [node_release] + ([node_deploy] if name in wanted else [])
            data = {RELEASE_KEY: request, **extra.get(name, {})}
            results.append(pod.evaluate(name, "release", deploys, data, describe))
        released = set(handover.releases)
        targets = list(local_targets)
        for name, data in target_hosts(plan):
            if name != "@local":
                targets.append(pod.evaluate(name, "target", [_target_driver(data).deploy], {}, describe))
        results += _per_enclosure(plan, targets) + _manual_targets(plan)
        for name, _ in node_hosts(plan, opts.limit):
            if name not in released:
                results.append(pod.evaluate(name, "node", [node_deploy], extra.get(name, {}), describe))
    return handover, results


def converged(handover: Handover, results: list[HostResult]) -> bool:
    """Nothing to hand over and nothing any host would change."""
    return not handover.releases and all(r.status in ("unchanged", "manual") for r in results)


def bring_up(
    plan: Plan,
    opts: UpOptions,
    sink: EventSink | None = None,
    checkpoint: Checkpoint | None = None,
    stats: RunStats | None = None,
) -> RunReport:
    """Read the pod; unless it is converged: switches → releases → targets → nodes → rolling restarts.

    A dry run is the read alone. A real run stops before a phase whose inputs failed.
    """
    from roles.node import node as node_deploy
    from roles.node import reads as node_reads
    from roles.node_release import node_release

    stats = stats if stats is not None else RunStats()
    mark = checkpoint or (lambda step: None)
    start = time.monotonic()
    handover, surveyed = read_pod(plan, opts, stats)
    left = _mark_left_pending(plan, opts, surveyed)
    if opts.dry or (converged(handover, surveyed) and not left):
        report = RunReport(surveyed, time.monotonic() - start, opts.run_dir, opts.dry)
        _count(report.hosts, stats)
        if report.ok and not opts.dry and not opts.limit:
            save_applied_plan(plan)
        return report
    if converged(handover, surveyed):  # only the restarts a stopped rollout left: roll them out
        rollout = _rolling_restarts(plan, surveyed, opts, sink, stats)
        _remember_pending(plan, surveyed)
        report = RunReport(surveyed, time.monotonic() - start, opts.run_dir, opts.dry, rollout=rollout)
        _count(report.hosts, stats)
        if report.ok and not opts.limit:
            save_applied_plan(plan)
        return report

    results: list[HostResult] = []
    results += _switch_phase(plan, opts, sink, stats)
    if _failed(results):
        return _stop(results, plan, opts, start, "switch")

    release_hosts = _release_hosts(plan, handover)
    if release_hosts:
        results += run_phase(
            "release", release_hosts, node_release, dry=opts.dry, sink=sink, run_dir=opts.run_dir, stats=stats
        )
        if _failed(results):
            return _stop(results, plan, opts, start, "release")
    mark("release")
    crash_point("release")

    results += _target_phase(plan, opts, sink, stats)
    if _failed(results):
        return _stop(results, plan, opts, start, "target")
    mark("target")
    crash_point("target")

    nodes = run_phase(
        "node",
        node_hosts(plan, opts.limit, node_extra(plan, opts)),
        node_deploy,
        dry=opts.dry,
        sink=sink,
        run_dir=opts.run_dir,
        reads_for=lambda data: node_reads(data[NODE_KEY]),
        stats=stats,
    )
    results += nodes
    mark("nodes")
    crash_point("nodes")
    _mark_left_pending(plan, opts, results)
    rollout = None if opts.dry else _rolling_restarts(plan, results, opts, sink, stats)
    if not opts.dry:
        _remember_pending(plan, results)
    report = RunReport(results, time.monotonic() - start, opts.run_dir, opts.dry, rollout=rollout)
    _count(report.hosts, stats)
    if report.ok and not opts.dry and not opts.limit:
        save_applied_plan(plan)
    return report


def _mark_left_pending(plan: Plan, opts: UpOptions, results: list[HostResult]) -> set[str]:
    """Nodes of this run whose restart a stopped rollout left due: their results get ``restart_pending``."""
    left = load_pending_restarts(plan.pod) & {n.name for n in plan.nodes if not opts.limit or n.name in opts.limit}
    for r in results:
        if r.role == "node" and r.name in left and r.status not in ("failed", "unreachable"):
            r.restart_pending = True
    return left


def _remember_pending(plan: Plan, results: list[HostResult]) -> None:
    """Keep, for the next run, every restart still due: not rolled out, or not healthy (a node that restarted
    healthy, or left the plan, is forgotten; one this run did not reach is kept)."""
    nodes = [r for r in results if r.role == "node"]
    done = {r.name for r in nodes if not r.restart_pending and "vLLM restarted (rolling)" in r.changes}
    due = {r.name for r in nodes if r.restart_pending}
    current = {n.name for n in plan.nodes}
    save_pending_restarts(plan.pod, ((load_pending_restarts(plan.pod) - done) | due) & current)


def _count(results: list[HostResult], stats: RunStats) -> None:
    """Each host's remote commands over the whole run (survey and phases; a switch by its name)."""
    for r in results:
        r.remote_commands = stats.commands.get(r.name, stats.commands.get("@local", 0) if r.role == "switch" else 0)


def _failed(results: list[HostResult]) -> list[HostResult]:
    return [r for r in results if r.status in ("failed", "unreachable")]


def _stop(results: list[HostResult], plan: Plan, opts: UpOptions, start: float, phase: str) -> RunReport:
    names = ", ".join(r.name for r in _failed(results))
    for n in plan.nodes:
        if opts.limit and n.name not in opts.limit:
            continue
        if not any(r.name == n.name for r in results):
            results.append(
                HostResult(
                    n.name, "node", status="failed", failed_step=f"{phase} phase", note=f"not started: {names} failed"
                )
            )
    return RunReport(results, time.monotonic() - start, opts.run_dir, opts.dry)


def _release_hosts(plan: Plan, handover: Handover) -> list[tuple[str, dict]]:
    applied = load_applied_plan(plan.pod)
    ssh = {n.name: n.ssh for n in plan.nodes}
    for n in applied.nodes if applied else []:
        ssh.setdefault(n.name, n.ssh)
    return [
        (name, ssh_host_data(ssh[name]) | {RELEASE_KEY: request})
        for name, request in sorted(handover.releases.items())
        if name in ssh
    ]


def _switch_phase(plan: Plan, opts: UpOptions, sink: EventSink | None, stats: RunStats) -> list[HostResult]:
    from deploy.switches import driver_for

    results: list[HostResult] = []
    for name, data in switch_hosts(plan):
        sw = data[SWITCH_KEY]
        driver = driver_for(sw.kind)
        res = run_phase(
            "switch",
            [(name, data)],
            driver.deploy,
            dry=opts.dry,
            sink=sink,
            run_dir=opts.run_dir,
            reads_for=lambda data, driver=driver: driver.reads(data[SWITCH_KEY]),
            stats=stats,
        )
        for r in res:
            r.name = sw.name
        results += res
    return results


def _target_driver(data: dict):
    """The driver of a target host's enclosures (they share one kind)."""
    from deploy.targets import driver_for

    return driver_for(data[TARGET_KEY][0].kind)


def _target_phase(plan: Plan, opts: UpOptions, sink: EventSink | None, stats: RunStats) -> list[HostResult]:
    """Each managed enclosure through its kind's driver (one run per kind, its hosts in parallel)."""
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for name, data in target_hosts(plan):
        by_kind.setdefault(data[TARGET_KEY][0].kind, []).append((name, data))
    results: list[HostResult] = []
    for hosts in by_kind.values():
        driver = _target_driver(hosts[0][1])
        names = {name: data[NAME_KEY] for name, data in hosts}
        res = run_phase(
            "target",
            hosts,
            driver.deploy,
            dry=opts.dry,
            sink=sink,
            run_dir=opts.run_dir,
            reads_for=lambda data, driver=driver: driver.reads(data[TARGET_KEY]),
            stats=stats,
        )
        for r in res:
            r.name = names.get(r.name, r.name)
        results += res
    return _per_enclosure(plan, results) + _manual_targets(plan)


def _per_enclosure(plan: Plan, results: list[HostResult]) -> list[HostResult]:
    """One result per enclosure: those sharing a host with an earlier one get its status, pointing at it."""
    from deploy.targets import co_hosted

    by_name = {r.name: r for r in results}
    out = list(results)
    for t in plan.targets:
        first = co_hosted(plan, t)[0].name
        if t.name not in by_name and first in by_name:
            host = by_name[first]
            out.append(HostResult(t.name, "target", status=host.status, note=f"configured with {first} (same host)"))
    return out


def _manual_targets(plan: Plan) -> list[HostResult]:
    from deploy.targets import manual_targets

    return [
        HostResult(
            t.name, "target", status="manual", note="no provisioning API: configure it from `kvpod target sheet`"
        )
        for t in manual_targets(plan)
    ]


def _rolling_restarts(
    plan: Plan, results: list[HostResult], opts: UpOptions, sink: EventSink | None, stats: RunStats
) -> Rollout | None:
    """Restart vLLM where its unit, env or LMCache config changed, batch by batch (at most ``--max-unavailable``
    engines down at once), each batch's engines serving their model before the next batch starts.

    A batch that does not become healthy stops the rollout: later batches are not restarted. Updates the node
    results in place; returns what the rollout did (None when nothing was due)."""
    from roles.vllm_restart import engine_results, vllm_restart

    down = ("failed", "unreachable")
    pending = [r for r in results if r.role == "node" and r.restart_pending and r.status not in down]
    if not pending:
        return None
    limit = parse_max_unavailable(opts.max_unavailable).of(sum(len(node_engines(n)) for n in plan.nodes))
    batches = restart_batches([(r.name, node_engines(plan.node(r.name))) for r in pending], limit)
    rollout = Rollout(limit, [[e.label for _, engines in batch for e in engines] for batch in batches])
    by_name = {r.name: r for r in results}
    for number, batch in enumerate(batches, start=1):
        hosts = node_hosts(
            plan,
            [name for name, _ in batch],
            {name: {RESTART_ENGINES_KEY: [e.unit for e in engines]} for name, engines in batch},
        )
        done = run_phase(
            "restart", hosts, vllm_restart, dry=False, sink=sink, run_dir=opts.run_dir, stats=stats, keep_output=True
        )
        engines_of = dict(batch)
        for d in done:
            node = by_name[d.name]
            if d.status in down:
                node.status = d.status  # a node that went away is unreachable, not unhealthy
                node.failed_step = "vLLM restart" if d.status == "unreachable" else "vLLM restart: not healthy"
                node.stderr, node.note = d.stderr, d.note or node.note
                verdicts = engine_results([line for lines in d.output.values() for line in lines])
                for e in engines_of[d.name]:
                    verdict = verdicts.get(e.unit)
                    if verdict is None or not verdict.get("healthy"):
                        detail = (verdict or {}).get("detail") or d.note or (d.stderr[-1] if d.stderr else d.status)
                        journal = [str(line) for line in (verdict or {}).get("journal", [])]
                        rollout.failed.append(EngineFailure(d.name, e.unit, str(detail), journal))
            elif "vLLM restarted (rolling)" not in node.changes:
                node.changes.append("vLLM restarted (rolling)")
        later = {n for b in batches[number:] for n, _ in b}
        for d in done:  # still due: more of its engines restart in a later batch, or it did not become healthy
            by_name[d.name].restart_pending = d.name in later or d.status in down
        if rollout.failed or any(d.status in down for d in done):
            rollout.stopped_after = number
            note = f"restart not rolled out: the rollout stopped after batch {number} of {len(batches)}"
            for name in sorted(later - {d.name for d in done}):
                by_name[name].note = note
            break
        rollout.completed = number
    return rollout
