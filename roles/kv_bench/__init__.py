"""Role ``kv bench``: fio on the node's KV-cache mount (``kvpod bench``), and its removal.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``mount`` (``path``, ``disk_budget_gb``)
and ``lmcache.local_disk``; and ``host.data.kvpod_bench`` (:class:`deploy.bench.BenchJob`).

- ``kv_bench``: refuses an unmounted path or a file that does not fit beside LMCache's budget (before
  anything is installed), installs fio when missing, then runs the benchmark; its operation prints fio's
  JSON, which the runner keeps (:func:`deploy.engine.run_output`).
- ``kv_bench_removed``: stops a benchmark still running and removes its directory (after an interrupt).
"""

from __future__ import annotations

from pyinfra.api import deploy

from deploy.bench import lmcache_dir
from deploy.hostdata import host_data
from deploy.names import GIB
from deploy.operations import bench

FIO_STEP = "fio on"  # the fio operation is named "fio on <mount>"


@deploy("kv bench")
def kv_bench() -> None:
    """Room checked, fio installed, then its sequential write and read on the KV-cache mount."""
    data = host_data()
    plan, job = data.node, data.bench
    bench.bench_room(
        name=f"room on {job.mount}",
        job=job,
        budget_bytes=int(plan.mount.disk_budget_gb * GIB),
        lmcache_dir=lmcache_dir(plan),
    )
    bench.fio_installed(name="fio installed")
    bench.fio_benchmark(name=f"{FIO_STEP} {job.mount}", job=job, _timeout=job.timeout_s)


@deploy("kv bench removed")
def kv_bench_removed() -> None:
    """A benchmark still running on the node stopped; its directory removed."""
    job = host_data().bench
    bench.bench_removed(name=f"{job.directory} removed", directory=job.directory)
