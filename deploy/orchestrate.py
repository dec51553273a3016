"""A bring-up: read the pod once (the survey), then, unless it is converged, apply the pipeline's phases in order
(:data:`deploy.pipeline.phases.PHASES`: switches, handover of moved drives, targets, nodes), then roll out the
vLLM restarts.

Everything here is decided from the plan and from facts read through :mod:`deploy.engine` (the only module that
talks to pyinfra). Every step compares the live pod with the plan, so a run that was interrupted anywhere is
finished by running it again. The handover and its safety rules: :mod:`deploy.pipeline.handover`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deploy.engine import EventSink, HostResult, RunReport, RunStats, Survey, run_phase
from deploy.host_status import HostStatus
from deploy.pipeline import phases
from deploy.pipeline.handover import Handover, check_handover, handover_reads, survey
from deploy.pipeline.jobs import Scope, UpOptions
from deploy.pipeline.phases import Phase, evaluations, reads_for, runs, survey_hosts
from deploy.pipeline.restarts import mark_left_pending, remember_pending, rolling_restarts
from deploy.plan import Plan
from deploy.rollout import Rollout
from deploy.statedir import crash_point, load_applied_plan, save_applied_plan

Checkpoint = Callable[[str], None]


def read_pod(plan: Plan, opts: UpOptions, stats: RunStats) -> tuple[Scope, list[HostResult]]:
    """Read every host once, in parallel, and evaluate every phase's jobs against what was read.

    Returns the run's scope (its handover decided) and, per host, what its deploys would change (a dry run of the
    whole bring-up). Refuses an unsafe handover before returning, as :func:`bring_up` would.
    """
    applied = load_applied_plan(plan.pod)
    lock = None if opts.dry else opts.lock
    reach = Scope(plan, opts, applied).whole_pod()
    hosts = survey_hosts(reach, handover_reads(plan, applied))
    evaluated: dict[int, HostResult] = {}
    with Survey(lock.with_acquire(hosts) if lock else hosts, stats=stats, run_dir=opts.run_dir) as pod:
        if lock:
            lock.confirm(pod)  # refuses (PodLocked) before anything is evaluated or changed
        handover = survey(plan, opts, pod, reach)
        check_handover(plan, handover, opts)
        scope = reach.decided(opts, handover)
        walk = evaluations(scope)
        for _, items in walk:
            for e in items:
                if not e.apart:
                    evaluated[id(e)] = pod.evaluate(e.job.name, e.phase.name, [*e.deploys], e.payload, opts.dry)
    results: list[HostResult] = []
    for phase, items in walk:
        found = []
        for e in items:
            if e.apart:  # after the pod's survey closed: a survey of its own for each such job
                with Survey([(e.job.name, e.job.connection, [*e.job.reads])], stats=stats, run_dir=opts.run_dir) as one:
                    evaluated[id(e)] = one.evaluate(e.job.name, phase.name, [*e.deploys], e.payload, opts.dry)
            evaluated[id(e)].name = e.job.display
            found.append(evaluated[id(e)])
        results += phase.shape(plan, found) if phase.shape else found
    return scope, results


def converged(handover: Handover, results: list[HostResult]) -> bool:
    """Nothing to hand over and nothing any host would change."""
    return not handover.releases and all(r.status in (HostStatus.UNCHANGED, HostStatus.MANUAL) for r in results)


def bring_up(
    plan: Plan,
    opts: UpOptions,
    sink: EventSink | None = None,
    checkpoint: Checkpoint | None = None,
    stats: RunStats | None = None,
) -> RunReport:
    """Read the pod; unless it is converged: each phase of the pipeline, then the rolling restarts.

    A dry run is the read alone. A real run stops before a phase whose inputs failed.
    """
    stats = stats if stats is not None else RunStats()
    mark = checkpoint or (lambda step: None)
    start = time.monotonic()
    scope, surveyed = read_pod(plan, opts, stats)
    left = mark_left_pending(plan, opts, surveyed)
    if opts.dry or (converged(scope.handover, surveyed) and not left):
        return _report(plan, opts, surveyed, start, stats)
    if converged(scope.handover, surveyed):  # only the restarts a stopped rollout left: roll them out
        rollout = rolling_restarts(plan, surveyed, opts, sink, stats)
        remember_pending(plan, surveyed, rollout)
        return _report(plan, opts, surveyed, start, stats, rollout)

    results: list[HostResult] = []
    for phase in phases.PHASES:  # the one list the survey walked too
        results += run_jobs(phase, scope, sink, stats)
        if phase.stops and _failed(results):
            return _stop(results, plan, opts, start, phase.name)
        if phase.checkpoint:
            mark(phase.checkpoint)
            crash_point(phase.checkpoint)
    mark_left_pending(plan, opts, results)
    rollout = None if opts.dry else rolling_restarts(plan, results, opts, sink, stats)
    if not opts.dry:
        remember_pending(plan, results, rollout)
    return _report(plan, opts, results, start, stats, rollout)


def run_jobs(phase: Phase, scope: Scope, sink: EventSink | None, stats: RunStats) -> list[HostResult]:
    """One phase for real: its jobs in runs (hosts of a run in parallel), each result under its display name."""
    opts = scope.opts
    results: list[HostResult] = []
    for run in runs(phase, phase.jobs(scope)):
        done = run_phase(
            phase.name,
            [(j.name, j.host_data) for j in run],
            run[0].deploy,
            dry=opts.dry,
            sink=sink,
            run_dir=opts.run_dir,
            reads_for=reads_for(run),
            stats=stats,
        )
        display = {j.name: j.display for j in run}
        for r in done:
            r.name = display.get(r.name, r.name)
        results += done
    return phase.shape(scope.plan, results) if phase.shape else results


def _report(
    plan: Plan,
    opts: UpOptions,
    results: list[HostResult],
    start: float,
    stats: RunStats,
    rollout: Rollout | None = None,
) -> RunReport:
    """The run's report; a complete, healthy, unlimited real run records its plan as applied."""
    report = RunReport(results, time.monotonic() - start, opts.run_dir, opts.dry, rollout=rollout)
    _count(report.hosts, stats)
    if report.ok and not opts.dry and not opts.limit:
        save_applied_plan(plan)
    return report


def _count(results: list[HostResult], stats: RunStats) -> None:
    """Each host's remote commands over the whole run (survey and phases; a switch by its name)."""
    for r in results:
        r.remote_commands = stats.commands.get(r.name, stats.commands.get("@local", 0) if r.role == "switch" else 0)


def _failed(results: list[HostResult]) -> list[HostResult]:
    return [r for r in results if r.status in (HostStatus.FAILED, HostStatus.UNREACHABLE)]


def _stop(results: list[HostResult], plan: Plan, opts: UpOptions, start: float, phase: str) -> RunReport:
    names = ", ".join(r.name for r in _failed(results))
    for n in plan.nodes:
        if opts.limit and n.name not in opts.limit:
            continue
        if not any(r.name == n.name for r in results):
            results.append(
                HostResult(
                    n.name,
                    "node",
                    status=HostStatus.FAILED,
                    failed_step=f"{phase} phase",
                    note=f"not started: {names} failed",
                )
            )
    return RunReport(results, time.monotonic() - start, opts.run_dir, opts.dry)
