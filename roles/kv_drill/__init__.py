"""Role ``kv drill``: the steps of ``kvpod drill`` on the nodes and the linux-nvmet targets.

Reads ``host.data.kvpod_drill`` (:class:`deploy.drill_run.DrillStep`: a name, a script, a timeout, and on a node
its :class:`deploy.drill.DrillJob`) and, on a node, ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`).

- ``kv_drill_start``: refuses an unmounted path or a file that does not fit beside LMCache's disk budget (as
  ``kvpod bench`` does, before anything is installed), installs fio when missing, then starts the drill's fio.
- ``kv_drill_step``: one step, its script printed back to the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import deploy

from deploy.hostdata import host_data
from deploy.names import DRILL_KEY
from deploy.operations import drill, host_error
from deploy.operations.reads import Reads
from deploy.operations.steps import Step, Steps, reads_of, run_steps, step
from deploy.plan import NodePlan
from roles.kv_bench import room_and_fio_steps

if TYPE_CHECKING:
    from deploy.drill_run import DrillStep


def _step():
    step = host.data.get(DRILL_KEY)
    if step is None:
        raise host_error(f"host {host.name} has no {DRILL_KEY} step in its data (kvpod drill sets it)")
    return step


def drill_step_step(step_: DrillStep) -> Step:
    """One step of the drill: its script, printed back to the runner (reads nothing)."""
    return step(drill.drill_step, [], name=step_.name, script=step_.script, _timeout=step_.timeout_s)


def start_steps(plan: NodePlan, step_: DrillStep) -> Steps:
    """Room checked, fio installed, the drill's fio started."""
    return [*room_and_fio_steps(plan, step_.job), drill_step_step(step_)]


def reads(plan: NodePlan, step_: DrillStep) -> Reads:
    """What the drill's start compares against: the reads of its steps."""
    return reads_of(start_steps(plan, step_))


@deploy("kv drill start")
def kv_drill_start() -> None:
    """Room checked, fio installed, the drill's fio started."""
    run_steps(start_steps(host_data().node, _step()))


@deploy("kv drill step")
def kv_drill_step() -> None:
    """One step of the drill."""
    run_steps([drill_step_step(_step())])
