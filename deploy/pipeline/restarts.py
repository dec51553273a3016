"""The rolling vLLM restart after the nodes phase, and the restarts a stopped rollout leaves due for the next run."""

from __future__ import annotations

from deploy.engine import EventSink, HostResult, RunStats, run_phase
from deploy.host_status import HostStatus
from deploy.hosts import node_hosts
from deploy.names import RESTART_ENGINES_KEY
from deploy.pipeline.jobs import UpOptions
from deploy.plan import NodePlan, Plan
from deploy.rollout import Engine, EngineFailure, Rollout, node_engines, parse_max_unavailable, restart_batches
from deploy.statedir import load_pending_units, save_pending_units

DOWN = (HostStatus.FAILED, HostStatus.UNREACHABLE)
ROLLED_OUT = "vLLM restarted (rolling)"  # the change a node's result lists once its engines restarted healthy


def due_units(node: NodePlan, *units: list[str] | None) -> list[str]:
    """The node's engine units named in any of ``units`` (None: all of its engines), in restart order."""
    named = {u for group in units if group is not None for u in group}
    every = any(group is None for group in units)
    return [e.unit for e in node_engines(node) if every or e.unit in named]


def due_engines(node: NodePlan, units: list[str]) -> list[Engine]:
    """The engines of the node whose restart is due: those of ``units``, in restart order; all of them when
    ``units`` names none of the node's (a restart recorded without its units, or of engines no longer planned)."""
    engines = node_engines(node)
    return [e for e in engines if e.unit in units] or engines


def mark_left_pending(plan: Plan, opts: UpOptions, results: list[HostResult]) -> set[str]:
    """Nodes of this run whose restart a stopped rollout left due: their results get ``restart_pending``, and the
    engines left due join ``restart_units``."""
    scope = {n.name for n in plan.nodes if not opts.limit or n.name in opts.limit}
    left = {name: units for name, units in load_pending_units(plan.pod).items() if name in scope}
    for r in results:
        if r.role == "node" and r.name in left and r.status not in DOWN:
            mine = (r.restart_units or None) if r.restart_pending else []
            r.restart_units = due_units(plan.node(r.name), mine, left[r.name])
            r.restart_pending = True
    return set(left)


def remember_pending(plan: Plan, results: list[HostResult], rollout: Rollout | None) -> None:
    """Keep, for the next run, every restart still due with its engines: not rolled out, or not healthy (a node
    that restarted healthy, or left the plan, is forgotten; one this run did not reach is kept)."""
    rolled_out = rollout.rolled_out if rollout else set()
    kept = load_pending_units(plan.pod)
    for r in results:
        if r.role != "node":
            continue
        if r.restart_pending:
            kept[r.name] = list(r.restart_units) or None
        elif r.name in rolled_out:
            kept.pop(r.name, None)
    current = {n.name for n in plan.nodes}
    save_pending_units(plan.pod, {name: units for name, units in kept.items() if name in current})


def rolling_restarts(
    plan: Plan, results: list[HostResult], opts: UpOptions, sink: EventSink | None, stats: RunStats
) -> Rollout | None:
    """Restart the vLLM engines whose unit, env or LMCache config changed (each node's ``restart_units``; its
    other engines keep running), batch by batch (at most ``--max-unavailable`` engines down at once), each
    batch's engines serving their model before the next batch starts.

    A batch that does not become healthy stops the rollout: later batches are not restarted. Updates the node
    results in place; returns what the rollout did (None when nothing was due)."""
    from roles.vllm_restart import vllm_restart

    pending = [r for r in results if r.role == "node" and r.restart_pending and r.status not in DOWN]
    if not pending:
        return None
    due = {r.name: due_engines(plan.node(r.name), r.restart_units) for r in pending}
    limit = parse_max_unavailable(opts.max_unavailable).of(sum(len(node_engines(n)) for n in plan.nodes))
    batches = restart_batches([(r.name, due[r.name]) for r in pending], limit)
    rollout = Rollout(limit, [[e.label for _, engines in batch for e in engines] for batch in batches])
    by_name = {r.name: r for r in results}
    for r in pending:
        r.restart_units = [e.unit for e in due[r.name]]
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
            if d.status in DOWN:  # its engines of the batch that did not come back healthy stay due
                restarted = _failed_batch(node, d, engines_of[d.name], rollout)
            else:
                restarted = {e.unit for e in engines_of[d.name]}
                rollout.rolled_out.add(d.name)
                if ROLLED_OUT not in node.changes:
                    node.changes.append(ROLLED_OUT)
            node.restart_units = [u for u in node.restart_units if u not in restarted]
        later = {n for b in batches[number:] for n, _ in b}
        for d in done:  # still due: more of its engines restart in a later batch, or it did not become healthy
            by_name[d.name].restart_pending = d.name in later or d.status in DOWN
        if rollout.failed or any(d.status in DOWN for d in done):
            rollout.stopped_after = number
            note = f"restart not rolled out: the rollout stopped after batch {number} of {len(batches)}"
            for name in sorted(later - {d.name for d in done}):
                by_name[name].note = note
            break
        rollout.completed = number
    return rollout


def _failed_batch(node: HostResult, done: HostResult, engines: list, rollout: Rollout) -> set[str]:
    """A node of the batch went away or did not become healthy: its result says so, the rollout names its engines.
    Returns the units of the batch that the probe saw serving again (restarted into their new configuration)."""
    from roles.vllm_restart import engine_results

    node.status = done.status  # a node that went away is unreachable, not unhealthy
    node.failed_step = "vLLM restart" if done.status == HostStatus.UNREACHABLE else "vLLM restart: not healthy"
    node.stderr, node.note = done.stderr, done.note or node.note
    verdicts = engine_results([line for lines in done.output.values() for line in lines])
    for e in engines:
        verdict = verdicts.get(e.unit)
        if verdict is None or not verdict.get("healthy"):
            detail = (verdict or {}).get("detail") or done.note or (done.stderr[-1] if done.stderr else done.status)
            journal = [str(line) for line in (verdict or {}).get("journal", [])]
            rollout.failed.append(EngineFailure(done.name, e.unit, str(detail), journal))
    return {e.unit for e in engines if (verdicts.get(e.unit) or {}).get("healthy")}
