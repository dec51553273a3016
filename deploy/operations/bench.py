"""Benchmark operations: room on the KV-cache mount, fio present, fio run, a benchmark stopped and removed.

The scripts themselves are built in :mod:`deploy.bench` (pure, tested with ``sh``); these operations add
the facts and the refusals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.server import Which

from deploy.bench import BenchJob, bench_script, cleanup_script, format_bytes, install_fio_script, size_refusal

if TYPE_CHECKING:
    from deploy.drill import DrillJob
from deploy.facts.bench import KvcacheSpace
from deploy.operations import refuse


@operation()
def fio_installed():
    """
    fio on the node: ``apt-get install -y fio`` when ``command -v fio`` finds none (with ``apt-get update``
    when the package index does not know it); fails with a clear message when it cannot be installed.
    """
    if host.get_fact(Which, command="fio"):
        host.noop("fio is installed")
        return
    yield StringCommand("sh", "-c", QuoteString(install_fio_script()))


@operation()
def bench_room(job: BenchJob | DrillJob, budget_bytes: int, lmcache_dir: str):
    """
    Refuses (changes nothing) when the mount is not mounted, or when the benchmark file would eat into the
    part of LMCache's disk budget that LMCache has not used yet; a noop otherwise.

    + job: the mount, its directory and the file's bytes (:class:`deploy.bench.BenchJob`, or ``kvpod drill``'s
      :class:`deploy.drill.DrillJob`)
    + budget_bytes: LMCache's disk budget on this node
    + lmcache_dir: LMCache's directory on the mount (what it already holds counts against its budget)
    """
    space = host.get_fact(KvcacheSpace, path=job.mount, lmcache_dir=lmcache_dir, bench_dir=job.directory)
    if space is None:
        yield from refuse(f"cannot read the free space on {job.mount}")
        return
    if not space["mounted"]:
        yield from refuse(f"{job.mount} is not mounted: refusing to benchmark the filesystem below it")
        return
    why = size_refusal(job, space, budget_bytes)
    if why:
        yield from refuse(why)
        return
    host.noop(f"{format_bytes(job.file_bytes)} fits on {job.mount} beside LMCache's disk budget")


@operation(is_idempotent=False)
def fio_benchmark(job: BenchJob):
    """
    fio's sequential write then read on a file in ``<mount>/.kvpod-bench/``; prints fio's JSON (not
    idempotent: it measures every time it runs). The script refuses a path that is not a mountpoint and
    removes its directory however it ends (:func:`deploy.bench.bench_script`).

    + job: the mount, size, runtime (:class:`deploy.bench.BenchJob`)
    """
    yield StringCommand("sh", "-c", QuoteString(bench_script(job)))


@operation(is_idempotent=False)
def bench_removed(directory: str):
    """
    Stop a benchmark still running in ``directory`` (the script and fio recorded there) and remove it.

    + directory: the benchmark directory (``<mount>/.kvpod-bench``)
    """
    yield StringCommand("sh", "-c", QuoteString(cleanup_script(directory)))
