"""The whole node: ``node()`` runs the five node roles in order.

How to invoke (pyinfra 3.10 API; the runner does this)::

    inventory = Inventory(([(name, {**ssh_data, "kvpod_node": node_plan, ...})], {}))
    state = State(inventory, Config(), check_for_changes=dry)  # real runs: False -- facts are read as ops run
    connect_all(state)
    add_deploy(state, node, host=host)    # prepare; OperationError (a PyinfraError subclass) carries .host
    if not dry:
        run_ops(state)                    # never raises for one host's refusal: that host's step fails

Host data it reads:

- ``kvpod_node`` (required): the host's :class:`deploy.plan.NodePlan`.
- ``kvpod_wipe`` (default False): True only when the user named this node's drive for reformatting.
- ``kvpod_defer_restart`` (default False): do not restart vLLM; the restart is left pending instead.

It sets no host data: whether vLLM needs a restart that was deferred is the result of the vllm role's last step,
read with :func:`deploy.operations.restart.restart_pending` (after ``run_ops``; after a dry prepare: would need
one).

Each role builds its steps from the plan (:mod:`deploy.operations.steps`): its deploy runs them and its ``reads``
are theirs, so :func:`reads` is every read the node's steps declare. The roles' files (and the directories kvpod
manages) are written first, after the vLLM user is made, by one bundle (:mod:`deploy.operations.bundle`: one upload,
one extraction) followed by one ``daemon-reload`` when a unit file of it changed; each role then runs its steps at
its turn, reacting to its own files' changes (a unit enabled, a network reloaded, an engine restarted) as before.

A dry run (``check_for_changes=True``, no ``run_ops``) of a node whose namespace is not connected yet fails in
the kv mount role with a clear message: nothing can tell whether the drive is blank before it is connected.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pyinfra.api import deploy

from deploy.hostdata import host_data
from deploy.names import SYSTEMD_DIR
from deploy.operations import changed, units
from deploy.operations.bundle_steps import (
    MODULES,
    files_of,
    node_modules,
)
from deploy.operations.reads import Reads, unique
from deploy.operations.steps import (
    BUNDLED,
    RELOADED,
    Results,
    Steps,
    bundle_step,
    reads_of,
    run_steps,
)
from deploy.plan import NodePlan
from roles import fabric_network as fabric_role
from roles import kv_mount as kv_mount_role
from roles import lmcache as lmcache_role
from roles import nvme_initiator as nvme_role
from roles import vllm as vllm_role
from roles import vllm_install as install_role
from roles._common import service_user_step
from roles.fabric_network import fabric_network
from roles.kv_mount import kv_mount
from roles.lmcache import lmcache
from roles.nvme_initiator import nvme_initiator
from roles.vllm import vllm
from roles.vllm_install import vllm_install

ROLES = (fabric_role, nvme_role, kv_mount_role, lmcache_role, install_role, vllm_role)
DEPLOYS = (fabric_network, nvme_initiator, kv_mount, lmcache, vllm_install, vllm)  # each role's deploy, as ROLES


def roles_steps(plan: NodePlan) -> list[tuple[Any, Steps]]:
    """Each role's deploy with its steps, built once for the node's bundle, its modules and its reads."""
    return [(run, role.steps(plan)) for role, run in zip(ROLES, DEPLOYS, strict=True)]


def reads(plan: NodePlan) -> Reads:
    """Everything the node roles' steps compare against: the node's snapshot, read in one command."""
    per_role = roles_steps(plan)
    return unique([*(r for _, steps in per_role for r in reads_of(steps)), *bundle_steps(plan, per_role)[-1].reads])


def bundle_steps(plan: NodePlan, per_role: list[tuple[Any, Steps]]) -> Steps:
    """The vLLM user (files are owned by its group), then one bundle of every file of the node's roles."""
    labelled = [
        replace(f, name=f"{run.deploy_name} | {f.name}")  # reported as its role's: "lmcache | LMCache env file ..."
        for run, steps in per_role
        for f in files_of(steps)
    ]
    return [service_user_step(plan.vllm.user), bundle_step(files_of(labelled), name="kvpod node files")]


def node_files(plan: NodePlan) -> Results:
    """:func:`bundle_steps`, run, then one ``daemon-reload`` when a unit file of the bundle changed; returns the
    results the roles continue from (each file's change, the reload done, the node's kernel modules: loaded in one
    ``modprobe`` at the first role's modules step)."""
    per_role = roles_steps(plan)
    results = run_steps(bundle_steps(plan, per_role))
    done = results[BUNDLED][0]
    unit_files = [change for path, change in done.items() if path.startswith(f"{SYSTEMD_DIR}/")]
    units.daemon_reload(name="systemd daemon-reload (node files)", when=changed(*unit_files))
    modules = node_modules([s for _, steps in per_role for s in steps])
    return {BUNDLED: results[BUNDLED], RELOADED: [True], MODULES: [modules]}


@deploy("kvpod node")
def node() -> None:
    """The node's files in one bundle, then fabric network, NVMe initiator, KV mount, LMCache, vLLM's environment
    (optional), vLLM -- in that order (no unit is enabled, started or mounted before its role's turn)."""
    results = node_files(host_data().node)
    fabric_network(results=results)
    nvme_initiator(results=results)
    kv_mount(results=results)
    engine_restart_on = lmcache(results=results)
    restart_on = vllm_install(results=results)
    vllm(restart_on=restart_on, engine_restart_on=engine_restart_on, results=results)
