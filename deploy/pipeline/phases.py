"""The phases of a bring-up, in order, and how the survey and the apply walk them.

:data:`PHASES` is the only place that orders switches, releases, targets and nodes. The survey (nothing changes)
reads every host of the pod once and evaluates each phase's jobs (:func:`survey_hosts`, :func:`evaluations`); the
apply runs each phase's jobs for real (:func:`runs`), stopping before a phase whose inputs failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploy.engine import HostResult
from deploy.host_status import HostStatus
from deploy.operations.reads import unique
from deploy.pipeline.jobs import HostJob, Scope, node_jobs, release_jobs, switch_jobs, target_jobs
from deploy.plan import Plan

Shape = Callable[[Plan, list[HostResult]], list[HostResult]]


@dataclass(frozen=True)
class Phase:
    name: str  # the role of its results and of its runs
    build: Callable[[Scope], list[HostJob]]
    checkpoint: str | None = None  # the crash point and checkpoint once it is done (the interruption tests)
    stops: bool = True  # a failure in it stops the run before the next phase
    serial: bool = False  # one run per job (switches: one at a time); else one run per deploy, hosts in parallel
    shape: Shape | None = None  # its results as reported (targets: one per enclosure)

    def jobs(self, scope: Scope) -> list[HostJob]:
        return scope.jobs(self.name, self.build)


def enclosure_results(plan: Plan, results: list[HostResult]) -> list[HostResult]:
    """One result per enclosure: co-hosted enclosures share their host's result; unmanaged ones are manual."""
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
            t.name,
            "target",
            status=HostStatus.MANUAL,
            note="no provisioning API: configure it from `kvpod target sheet`",
        )
        for t in manual_targets(plan)
    ]


SWITCH = Phase("switch", switch_jobs, serial=True)
RELEASE = Phase("release", release_jobs, checkpoint="release")
TARGET = Phase("target", target_jobs, checkpoint="target", shape=enclosure_results)
NODE = Phase("node", node_jobs, checkpoint="nodes", stops=False)

PHASES: tuple[Phase, ...] = (
    SWITCH,
    RELEASE,
    TARGET,
    NODE,
)


# -- the survey ---------------------------------------------------------------------------------------------


def surveyed_apart(job: HostJob) -> bool:
    """Whether the survey reads and evaluates ``job`` in a survey of its own, outside the pod's: a job on the
    machine running kvpod (``@local`` carries several jobs, each with its own host data, and takes no pod lock)."""
    return job.local


def survey_hosts(reach: Scope, extra: list[tuple[str, dict[str, Any], list]]) -> list[tuple[str, dict, list]]:
    """The hosts the pod's survey reads, each once, with what every job there reads (and ``extra``); ``reach``
    is the whole pod (:meth:`Scope.whole_pod`: every node, ``--limit`` or not, for the handover)."""
    hosts: dict[str, tuple[dict, list]] = {}
    remote = [(j.name, j.connection, list(j.reads)) for p in PHASES for j in p.jobs(reach) if not surveyed_apart(j)]
    for name, data, reads in remote + extra:
        known = hosts.setdefault(name, (data, []))
        known[1].extend(reads)
    return [(name, data, unique(reads)) for name, (data, reads) in hosts.items()]


@dataclass(frozen=True)
class Evaluation:
    """One host's evaluation in the survey: at its first job, with the deploys of all its jobs in phase order."""

    phase: Phase
    job: HostJob  # the first job: host, connection, the name its result is reported under
    deploys: tuple[Callable[..., Any], ...]
    payload: dict[str, Any]

    @property
    def apart(self) -> bool:
        return surveyed_apart(self.job)


def evaluations(scope: Scope) -> list[tuple[Phase, list[Evaluation]]]:
    """Per phase, the evaluations the survey makes (a host one survey reads is prepared once, so a node that
    releases a drive and then deploys is evaluated in the release phase with both deploys)."""
    first: dict[str, tuple[Phase, HostJob, list, dict]] = {}
    order: list[tuple[Phase, str]] = []
    for phase in PHASES:
        for i, job in enumerate(phase.jobs(scope)):
            key = f"{job.name}#{phase.name}{i}" if surveyed_apart(job) else job.name
            if key in first:
                _, _, deploys, payload = first[key]
                deploys.append(job.deploy)
                payload.update(job.payload)
            else:
                first[key] = (phase, job, [job.deploy], dict(job.payload))
                order.append((phase, key))
    return [
        (phase, [Evaluation(phase, first[k][1], tuple(first[k][2]), first[k][3]) for p, k in order if p is phase])
        for phase in PHASES
    ]


# -- the apply ----------------------------------------------------------------------------------------------


def runs(phase: Phase, jobs: list[HostJob]) -> list[list[HostJob]]:
    """The runs of a phase: each job alone (``serial``), else one per deploy with a host at most once."""
    out: list[list[HostJob]] = []
    for job in jobs:
        run = None
        if not phase.serial:
            run = next((r for r in out if r[0].deploy == job.deploy and all(j.name != job.name for j in r)), None)
        if run is None:
            out.append([job])
        else:
            run.append(job)
    return out


def reads_for(run: list[HostJob]) -> Callable[[dict[str, Any]], list] | None:
    """The reads of the run's host whose host data these are (None: the run's deploy reads live)."""
    if not any(j.reads for j in run):
        return None

    def reads(data: dict[str, Any]) -> list:
        for job in run:  # the plan's own objects travel in the host data as they are
            if all(data.get(k) is v for k, v in job.host_data.items()):
                return list(job.reads)
        return []

    return reads
