"""Role ``vllm install``: vLLM and LMCache installed into a virtual environment (only with ``vllm.install``).

Reads ``host.data.kvpod_node.vllm.install`` (:class:`deploy.plan.InstallPlan`):

- ``python3-venv`` present (a noop when installed; an offline host must have it already).
- With a ``wheelhouse`` (a directory on the machine running kvpod): every ``*.whl`` in it is copied to
  ``wheelhouse_dest`` on the node (only wheels whose content differs), and pip installs from there alone
  (``--no-index --find-links``): an air-gapped pod needs no index.
- ``venv`` created with ``python -m venv`` when missing; ``pip install`` of the pinned ``requirements`` only
  when one of them is missing or at another version, so a converged node runs no pip at all.

Returns the operation whose change must restart vLLM (pass it to the vllm role with the LMCache ones).
The unit runs ``<venv>/bin/vllm`` (the plan's ``vllm.executable``).
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.api import deploy

from deploy.facts.python import VenvPackages
from deploy.facts.snapshot import Read
from deploy.hostdata import host_data
from deploy.operations import python
from deploy.operations.bundle_steps import (
    bundled_directory,
    bundled_file,
    local_file,
    role_steps,
)
from deploy.operations.reads import Reads
from deploy.operations.steps import (
    Results,
    Steps,
    packages_step,
    path_effect,
    reads_of,
    run_steps,
    step,
)
from deploy.plan import InstallPlan, NodePlan

INSTALL_KEY = "install"  # the step whose change restarts every engine


def wheels(inst: InstallPlan) -> list[Path]:
    """The wheels of the wheelhouse, by name (none without a wheelhouse)."""
    if not inst.wheelhouse:
        return []
    return sorted(Path(inst.wheelhouse).expanduser().glob("*.whl"))


def steps(plan: NodePlan) -> Steps:
    """python3-venv, the wheels, the environment with the pinned vllm and lmcache (kept as :data:`INSTALL_KEY`)."""
    inst = plan.vllm.install
    if inst is None:
        return []
    out: list = [packages_step("python3-venv installed", ["python3-venv"])]
    find_links = None
    if inst.wheelhouse:
        out.append(bundled_directory("wheelhouse directory", inst.wheelhouse_dest))
        for whl in wheels(inst):
            dest = f"{inst.wheelhouse_dest}/{whl.name}"
            out.append(bundled_file(f"wheel {whl.name}", dest, local_file(str(whl)), mode="644"))
        find_links = inst.wheelhouse_dest
    venv = step(
        python.venv_packages,
        [Read.of(VenvPackages, venv=inst.venv)],
        keep=INSTALL_KEY,
        effects=[path_effect(inst.venv)],
        name=f"{inst.venv} holds {', '.join(inst.requirements)}",
        venv=inst.venv,
        requirements=inst.requirements,
        python=inst.python,
        find_links=find_links,
        index_url=inst.index_url,
    )
    return [*out, venv]


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("vllm install")
def vllm_install(results: Results | None = None) -> list:
    """python3-venv, the wheels (in one bundle, unless ``results`` holds the node's bundle already), the
    environment with the pinned vllm and lmcache; returns the restart trigger."""
    return run_steps(*role_steps(steps(host_data().node), results)).get(INSTALL_KEY, [])
