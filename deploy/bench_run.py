"""``kvpod bench`` on the pod: fio on every selected node's KV-cache mount through the runner, in parallel.

The benchmark itself (fio's arguments, the scripts, the parsing, the report) is pure, in :mod:`deploy.bench`.
"""

from __future__ import annotations

from pathlib import Path

from deploy.bench import BenchReport, bench_jobs, build_report, node_result
from deploy.host_status import HostStatus
from deploy.names import BENCH_KEY, NODE_KEY
from deploy.plan import Plan, limited_nodes


def run_bench(
    plan: Plan,
    limit: list[str] | None,
    size_bytes: int,
    runtime_s: int,
    run_dir: Path | None = None,
) -> BenchReport:
    """Benchmark the nodes in parallel.

    On an interrupt, stop the benchmarks and remove their files, then re-raise. A node whose fio step gave
    no answer (timeout, dropped connection) is cleaned up the same way.
    """
    from deploy.engine import run_output, run_phase
    from deploy.hosts import node_hosts
    from roles.kv_bench import FIO_STEP, kv_bench, kv_bench_removed, reads

    nodes = limited_nodes(plan, limit)
    jobs = bench_jobs(nodes, size_bytes, runtime_s)
    hosts = node_hosts(plan, [n.name for n in nodes], {name: {BENCH_KEY: job} for name, job in jobs.items()})
    try:
        results = run_output(
            "bench",
            hosts,
            kv_bench,
            run_dir=run_dir,
            connect_timeout=30,
            reads_for=lambda data: reads(data[NODE_KEY], data[BENCH_KEY]),
        )
    except KeyboardInterrupt:
        run_phase("bench", hosts, kv_bench_removed, dry=False, run_dir=run_dir)
        raise
    by_name = {r.name: r for r in results}
    silent = {
        n.name
        for n in nodes
        if by_name[n.name].status == HostStatus.FAILED
        and not by_name[n.name].stderr
        and (by_name[n.name].failed_step or "").endswith(f"{FIO_STEP} {n.mount.path}")
    }
    if silent:
        run_phase("bench", [h for h in hosts if h[0] in silent], kv_bench_removed, dry=False, run_dir=run_dir)
    out = []
    for n in nodes:
        r = by_name[n.name]
        status = {HostStatus.FAILED: "failed", HostStatus.UNREACHABLE: "unreachable"}.get(r.status, "ok")
        error = None
        if n.name in silent:
            error = (
                f"{r.failed_step}: no answer within {jobs[n.name].timeout_s} s or the connection dropped "
                "(the benchmark was stopped and its directory removed)"
            )
        elif status != "ok":
            error = (r.stderr[-1] if r.stderr else "") or r.note or r.status
            if r.failed_step and status == "failed":
                error = f"{r.failed_step}: {error}"
        stdout = "\n".join(line for lines in r.output.values() for line in lines)
        out.append(node_result(n, jobs[n.name], status, stdout, error))
    return build_report(plan, size_bytes, runtime_s, out, run_dir)
