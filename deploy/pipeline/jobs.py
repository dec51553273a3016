"""Host jobs: what one phase does on one host, built from the plan (and, for releases, from the handover).

A job's ``connection`` is the pyinfra host data of its host (how to reach it and the plan part its deploy reads);
its ``payload`` is what the run adds for this phase (a release request, the drive to wipe). The builders here are
the only place that says which hosts a phase reaches and which driver configures them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.hosts import node_hosts, ssh_host_data, switch_hosts, target_hosts
from deploy.names import DEFER_RESTART_KEY, NAME_KEY, NODE_KEY, RELEASE_KEY, SWITCH_KEY, TARGET_KEY, WIPE_KEY
from deploy.plan import NodePlan, Plan
from deploy.podlock_run import PodLock

if TYPE_CHECKING:
    from deploy.pipeline.handover import Handover

LOCAL = "@local"  # pyinfra's name of the machine running kvpod


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


@dataclass(frozen=True)
class HostJob:
    """One phase's work on one host."""

    name: str  # the pyinfra host name (``@local`` for the machine running kvpod)
    connection: dict[str, Any]  # pyinfra host data: SSH settings and the plan part the deploy reads
    payload: dict[str, Any]  # host data this phase adds for its deploy
    deploy: Callable[..., Any]
    reads: tuple  # what the deploy compares against, read in one command (deploy.facts.snapshot.Read)
    display: str  # the name its result is reported under (a switch's name, a target host's first enclosure)

    @property
    def local(self) -> bool:
        return self.name == LOCAL

    @property
    def host_data(self) -> dict[str, Any]:
        return self.connection | self.payload


@dataclass(frozen=True)
class Scope:
    """What a walk of the pipeline builds its jobs from; each phase's jobs are built once per scope."""

    plan: Plan
    opts: UpOptions
    applied: Plan | None = None  # the plan of the last complete run (deploy.statedir)
    handover: Handover | None = None  # None: before the survey decided it (no release jobs yet)
    _built: dict[str, list[HostJob]] = field(default_factory=dict, compare=False, repr=False)
    _reads: dict[int, tuple[Any, tuple]] = field(default_factory=dict, compare=False, repr=False)

    def whole_pod(self) -> Scope:
        """Every host of the pod, whatever ``--limit`` says: what the survey reads."""
        return Scope(self.plan, replace(self.opts, limit=None), self.applied, _reads=self._reads)

    def decided(self, opts: UpOptions, handover: Handover) -> Scope:
        """The plan with ``opts`` and the handover the survey decided (the reads worked out so far kept)."""
        return Scope(self.plan, opts, self.applied, handover, _reads=self._reads)

    def reads(self, part: Any, reads_of: Callable[[Any], Any]) -> tuple:
        """``reads_of(part)`` of a part of this scope's plan, worked out once for the scopes sharing it."""
        kept = self._reads.get(id(part))
        if kept is None or kept[0] is not part:
            kept = self._reads[id(part)] = (part, tuple(reads_of(part)))
        return kept[1]

    def jobs(self, phase: str, build: Callable[[Scope], list[HostJob]]) -> list[HostJob]:
        if phase not in self._built:
            self._built[phase] = build(self)
        return self._built[phase]


def node_extra(plan: Plan, opts: UpOptions) -> dict[str, dict]:
    """Host data of the node phase beyond the plan: the drive to wipe, restarts deferred to the rollout."""
    return {
        n.name: {
            WIPE_KEY: f"{n.namespace.enclosure}/{n.namespace.drive}" in opts.wipe,
            DEFER_RESTART_KEY: True,
        }
        for n in plan.nodes
    }


def removed_nodes(plan: Plan, applied: Plan | None) -> list[NodePlan]:
    """Nodes of the applied plan that left the spec."""
    current = {n.name for n in plan.nodes}
    return [n for n in (applied.nodes if applied else []) if n.name not in current]


def switch_jobs(scope: Scope) -> list[HostJob]:
    """Each switch kvpod configures, through its kind's driver (a Linux bridge on ``@local``)."""
    from deploy.switches import driver_for

    jobs = []
    for name, data in switch_hosts(scope.plan):
        sw = data[SWITCH_KEY]
        driver = driver_for(sw.kind)
        jobs.append(HostJob(name, data, {}, driver.deploy, tuple(driver.reads(sw)), sw.name))
    return jobs


def release_jobs(scope: Scope) -> list[HostJob]:
    """Each node the handover releases, reached as the plan says (as the applied plan said, for a removed node)."""
    from roles.node_release import node_release, reads

    if scope.handover is None:
        return []
    ssh = {n.name: n.ssh for n in scope.plan.nodes}
    for n in scope.applied.nodes if scope.applied else []:
        ssh.setdefault(n.name, n.ssh)
    return [
        HostJob(name, ssh_host_data(ssh[name]), {RELEASE_KEY: request}, node_release, tuple(reads(request)), name)
        for name, request in sorted(scope.handover.releases.items())
        if name in ssh
    ]


def target_driver(group: list) -> Any:
    """The driver of a target host's enclosures (they share one kind)."""
    from deploy.targets import driver_for

    return driver_for(group[0].kind)


def target_jobs(scope: Scope) -> list[HostJob]:
    """Each host of the managed enclosures (one per SSH endpoint; those without SSH on ``@local``)."""
    jobs = []
    for name, data in target_hosts(scope.plan):
        driver = target_driver(data[TARGET_KEY])
        jobs.append(HostJob(name, data, {}, driver.deploy, tuple(driver.reads(data[TARGET_KEY])), data[NAME_KEY]))
    return jobs


def node_jobs(scope: Scope) -> list[HostJob]:
    """Each node of the plan (those ``--limit`` names), with the drive to wipe and its restart deferred."""
    from roles.node import node, reads

    extra = node_extra(scope.plan, scope.opts)
    return [
        HostJob(name, data, extra[name], node, scope.reads(data[NODE_KEY], reads), name)
        for name, data in node_hosts(scope.plan, scope.opts.limit)
    ]
