"""The rolling vLLM restart after the nodes phase, and the restarts a stopped rollout leaves due for the next run."""

from __future__ import annotations

from deploy.engine import EventSink, HostResult, RunStats, run_phase
from deploy.host_status import HostStatus
from deploy.hosts import node_hosts
from deploy.names import RESTART_ENGINES_KEY
from deploy.pipeline.jobs import UpOptions
from deploy.plan import Plan
from deploy.rollout import EngineFailure, Rollout, node_engines, parse_max_unavailable, restart_batches
from deploy.statedir import load_pending_restarts, save_pending_restarts

DOWN = (HostStatus.FAILED, HostStatus.UNREACHABLE)
ROLLED_OUT = "vLLM restarted (rolling)"  # the change a node's result lists once its engines restarted healthy


def mark_left_pending(plan: Plan, opts: UpOptions, results: list[HostResult]) -> set[str]:
    """Nodes of this run whose restart a stopped rollout left due: their results get ``restart_pending``."""
    left = load_pending_restarts(plan.pod) & {n.name for n in plan.nodes if not opts.limit or n.name in opts.limit}
    for r in results:
        if r.role == "node" and r.name in left and r.status not in DOWN:
            r.restart_pending = True
    return left


def remember_pending(plan: Plan, results: list[HostResult], rollout: Rollout | None) -> None:
    """Keep, for the next run, every restart still due: not rolled out, or not healthy (a node that restarted
    healthy, or left the plan, is forgotten; one this run did not reach is kept)."""
    nodes = [r for r in results if r.role == "node"]
    rolled_out = rollout.rolled_out if rollout else set()
    done = {r.name for r in nodes if not r.restart_pending and r.name in rolled_out}
    due = {r.name for r in nodes if r.restart_pending}
    current = {n.name for n in plan.nodes}
    save_pending_restarts(plan.pod, ((load_pending_restarts(plan.pod) - done) | due) & current)


def rolling_restarts(
    plan: Plan, results: list[HostResult], opts: UpOptions, sink: EventSink | None, stats: RunStats
) -> Rollout | None:
    """Restart vLLM where its unit, env or LMCache config changed, batch by batch (at most ``--max-unavailable``
    engines down at once), each batch's engines serving their model before the next batch starts.

    A batch that does not become healthy stops the rollout: later batches are not restarted. Updates the node
    results in place; returns what the rollout did (None when nothing was due)."""
    from roles.vllm_restart import vllm_restart

    pending = [r for r in results if r.role == "node" and r.restart_pending and r.status not in DOWN]
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
            if d.status in DOWN:
                _failed_batch(node, d, engines_of[d.name], rollout)
            else:
                rollout.rolled_out.add(d.name)
                if ROLLED_OUT not in node.changes:
                    node.changes.append(ROLLED_OUT)
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


def _failed_batch(node: HostResult, done: HostResult, engines: list, rollout: Rollout) -> None:
    """A node of the batch went away or did not become healthy: its result says so, the rollout names its engines."""
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
