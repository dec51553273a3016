"""Role ``kv drill``: the steps of ``kvpod drill`` on the nodes and the linux-nvmet targets.

Reads ``host.data.kvpod_drill`` (:class:`deploy.drill_run.DrillStep`: a name, a script, a timeout, and on a node
its :class:`deploy.drill.DrillJob`) and, on a node, ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`).

- ``kv_drill_start``: refuses an unmounted path or a file that does not fit beside LMCache's disk budget (as
  ``kvpod bench`` does, before anything is installed), installs fio when missing, then starts the drill's fio.
- ``kv_drill_step``: one step, its script printed back to the runner.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploy.bench import lmcache_dir
from deploy.hostdata import host_data
from deploy.names import DRILL_KEY, GIB
from deploy.operations import bench, drill, host_error


def _step():
    step = host.data.get(DRILL_KEY)
    if step is None:
        raise host_error(f"host {host.name} has no {DRILL_KEY} step in its data (kvpod drill sets it)")
    return step


@deploy("kv drill start")
def kv_drill_start() -> None:
    """Room checked, fio installed, the drill's fio started."""
    step = _step()
    plan = host_data().node
    bench.bench_room(
        name=f"room on {step.job.mount}",
        job=step.job,
        budget_bytes=int(plan.mount.disk_budget_gb * GIB),
        lmcache_dir=lmcache_dir(plan),
    )
    bench.fio_installed(name="fio installed")
    drill.drill_step(name=step.name, script=step.script, _timeout=step.timeout_s)


@deploy("kv drill step")
def kv_drill_step() -> None:
    """One step of the drill."""
    step = _step()
    drill.drill_step(name=step.name, script=step.script, _timeout=step.timeout_s)
