"""Role ``kv bench``: fio on the node's KV-cache mount (``kvpod bench``), and its removal.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``mount`` (``path``, ``disk_budget_gb``)
and ``lmcache.local_disk``; and ``host.data.kvpod_bench`` (:class:`deploy.bench.BenchJob`).

- ``kv_bench``: refuses an unmounted path or a file that does not fit beside LMCache's budget (before
  anything is installed), installs fio when missing, then runs the benchmark; its operation prints fio's
  JSON, which the runner keeps (:func:`deploy.engine.run_output`).
- ``kv_bench_removed``: stops a benchmark still running and removes its directory (after an interrupt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.facts.server import Which

from deploy.bench import BenchJob, lmcache_dir
from deploy.facts.bench import KvcacheSpace
from deploy.facts.snapshot import Read
from deploy.hostdata import host_data
from deploy.names import GIB
from deploy.operations import bench
from deploy.operations.reads import Reads
from deploy.operations.steps import Effect, Steps, path_effect, reads_of, run_steps, step
from deploy.plan import NodePlan

if TYPE_CHECKING:
    from deploy.drill import DrillJob

FIO_STEP = "fio on"  # the fio operation is named "fio on <mount>"


def room_and_fio_steps(plan: NodePlan, job: BenchJob | DrillJob) -> Steps:
    """Room for ``job`` checked beside LMCache's budget, then fio installed when missing."""
    lmcache = lmcache_dir(plan)
    return [
        step(
            bench.bench_room,
            [Read.of(KvcacheSpace, path=job.mount, lmcache_dir=lmcache, bench_dir=job.directory)],
            name=f"room on {job.mount}",
            job=job,
            budget_bytes=int(plan.mount.disk_budget_gb * GIB),
            lmcache_dir=lmcache,
        ),
        step(
            bench.fio_installed,
            [Read.of(Which, command="fio")],
            effects=[Effect("package", "fio")],
            name="fio installed",
        ),
    ]


def steps(plan: NodePlan, job: BenchJob) -> Steps:
    """Room checked, fio installed, then its sequential write and read on the KV-cache mount."""
    fio = step(
        bench.fio_benchmark,
        [],
        effects=[path_effect(job.directory)],
        name=f"{FIO_STEP} {job.mount}",
        job=job,
        _timeout=job.timeout_s,
    )
    return [*room_and_fio_steps(plan, job), fio]


def reads(plan: NodePlan, job: BenchJob) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan, job))


@deploy("kv bench")
def kv_bench() -> None:
    """Room checked, fio installed, then its sequential write and read on the KV-cache mount."""
    data = host_data()
    run_steps(steps(data.node, data.bench))


@deploy("kv bench removed")
def kv_bench_removed() -> None:
    """A benchmark still running on the node stopped; its directory removed."""
    job = host_data().bench
    run_steps(
        [
            step(
                bench.bench_removed,
                [],
                effects=[path_effect(job.directory)],
                name=f"{job.directory} removed",
                directory=job.directory,
            )
        ]
    )
