"""The handover: which drives move, decided from the survey before anything changes.

The namespace invariant: **a drive is never mounted on two nodes**. A node that still holds a drive the plan
gives to another node releases it (stop vLLM, unmount, disconnect, forget the boot-time connection) before the
target revokes its host NQN and admits the new holder, and before the new holder connects; ext4 multi-mount
protection is the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy.engine import Survey
from deploy.errors import KvpodError
from deploy.hosts import ssh_host_data
from deploy.pipeline.jobs import Scope, UpOptions, removed_nodes
from deploy.pipeline.phases import TARGET, surveyed_apart
from deploy.plan import Plan
from deploy.release import admitted_elsewhere, fabrics_subsystems, release_requests
from deploy.statedir import load_applied_plan
from deploy.wording import name_list, plural


@dataclass
class Handover:
    """What the live pod says must move before targets and nodes are configured."""

    releases: dict[str, object]  # node -> ReleaseRequest
    live: dict[str, set[str] | None]  # node -> connected pod subsystems (None: unreachable)
    removed: list[str]  # nodes of the applied plan that left the spec
    unreachable_holders: list[str]


def handover_reads(plan: Plan, applied: Plan | None) -> list[tuple[str, dict[str, Any], list]]:
    """What the survey reads for the handover beyond the jobs' own reads: which subsystems removed nodes hold."""
    from deploy.facts.nvme import NvmeSubsystems
    from deploy.facts.snapshot import Read

    return [(n.name, ssh_host_data(n.ssh), [Read.of(NvmeSubsystems)]) for n in removed_nodes(plan, applied)]


def survey(plan: Plan, opts: UpOptions, pod: Survey, reach: Scope | None = None) -> Handover:
    """Which subsystems each node holds now (from the survey's snapshots) and the releases (changes nothing).

    ``reach``: the scope whose jobs the survey read (default: the plan's)."""
    from deploy.facts.nvme import NvmeSubsystems

    reach = reach or Scope(plan, opts)
    applied = load_applied_plan(plan.pod)
    gone = removed_nodes(plan, applied)
    names = [n.name for n in plan.nodes] + [n.name for n in gone]
    live = {
        name: (fabrics_subsystems(pod.read(name, NvmeSubsystems)) if pod.reachable(name) else None) for name in names
    }
    reachable = {k: v for k, v in live.items() if v is not None}
    removed = [n.name for n in gone]
    prune = [n for n in removed if opts.prune and n in reachable]
    releases = release_requests(plan, reachable, prune=prune, applied=applied)
    moved = _moved_from(applied, plan) | _admitted_elsewhere(plan, applied, pod, reach)
    unreachable_holders = sorted(n for n, v in live.items() if v is None and n in moved)
    return Handover(releases, live, removed, unreachable_holders)


def _admitted_elsewhere(plan: Plan, applied: Plan | None, pod: Survey, reach: Scope) -> set[str]:
    """Nodes the targets admit now to a drive that moves away from them (from the survey's target reads)."""
    from deploy.facts.nvmet import NvmetConfig

    admitted: dict[str, set[str]] = {}
    for job in TARGET.jobs(reach):
        if not surveyed_apart(job) and pod.reachable(job.name):
            for nqn, sub in pod.read(job.name, NvmetConfig).get("subsystems", {}).items():
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
