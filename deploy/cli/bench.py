"""``kvpod bench``: per-node and aggregate GB/s beside the reference figures; the JSON file.

Exit codes: 0 every node measured; 1 the input is wrong (unknown ``--limit`` node, a bad ``--size`` or
``--runtime``); 2 a node failed, could not be reached, or refused (not mounted, no room beside LMCache's
budget, fio missing and not installable), or another run holds the pod lock.

The benchmark writes onto every measured node's KV-cache mount: it holds the pod lock while it runs (as ``up``
does; ``--break-lock`` takes over a stale one), so it never measures, or fills, a mount that a reassignment
is moving or a bring-up is formatting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploy.bench import (
    DEFAULT_RUNTIME,
    DEFAULT_SIZE,
    NODE_LINK_GBPS,
    OUTLIER_SHARE,
    REFERENCE,
    BenchReport,
    NodeBench,
    format_bytes,
)
from deploy.bench_run import run_bench
from deploy.cli import options, shared
from deploy.cli.hosts import use_hosts
from deploy.cli.run import BreakLockOpt
from deploy.cli.shared import LimitOpt, SpecPath, out
from deploy.plan import Plan
from deploy.statedir import new_run_dir
from deploy.wording import plural


def _shares(write: float, read: float, reference: float) -> str:
    return f"{100 * write / reference:.0f} % / {100 * read / reference:.0f} %"


def _gbps(node: NodeBench, direction: str) -> str:
    phase = getattr(node, direction)
    if phase is None:
        return "-"
    text = f"{phase.gbps:.2f}"
    return f"[red]{text} ▼[/red]" if direction in node.outlier else text


def _p99(node: NodeBench) -> str:
    if not node.write or not node.read:
        return "-"
    w, r = node.write.clat_p99_ms, node.read.clat_p99_ms
    return f"{w if w is not None else '-'} / {r if r is not None else '-'}"


def bench_table(report: BenchReport) -> Table:
    """Rows: nodes, then one aggregate per enclosure (and the pod when it spans several)."""
    table = Table(
        title=(
            f"kvpod bench of {report.pod}: {format_bytes(report.size_bytes)} file, {report.runtime_s} s per phase, "
            "128 KiB O_DIRECT, 4 jobs x iodepth 32"
        ),
        caption=f"reference: {REFERENCE}; ▼ below {OUTLIER_SHARE:.0%} of the median node",
    )
    for col, justify in (
        ("node", "left"),
        ("enclosure", "left"),
        ("write GB/s", "right"),
        ("read GB/s", "right"),
        ("write / read IOPS", "right"),
        ("p99 clat ms (w / r)", "right"),
        ("reference GB/s", "right"),
        ("of reference (w / r)", "right"),
        ("status", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for n in report.nodes:
        ok = n.status == "ok" and n.write and n.read
        status = "[green]ok[/green]" if n.status == "ok" else f"[red]{n.status}[/red]"
        if n.outlier:
            status += f" [red]slow {'/'.join(n.outlier)}[/red]"
        table.add_row(
            n.node,
            n.enclosure,
            _gbps(n, "write"),
            _gbps(n, "read"),
            f"{n.write.iops:,.0f} / {n.read.iops:,.0f}" if ok else "-",  # type: ignore[union-attr]
            _p99(n),
            f"{NODE_LINK_GBPS:g}",
            _shares(n.write.gbps, n.read.gbps, NODE_LINK_GBPS) if ok else "-",  # type: ignore[union-attr]
            status,
        )
    table.add_section()
    for a in report.aggregates:
        label = "pod" if a.name == "pod" else f"Σ {a.name}"
        table.add_row(
            f"[bold]{escape(label)}[/bold]",
            plural(a.nodes, "node"),
            f"[bold]{a.write_gbps:.2f}[/bold]",
            f"[bold]{a.read_gbps:.2f}[/bold]",
            "",
            "",
            f"{a.reference_gbps:g}",
            _shares(a.write_gbps, a.read_gbps, a.reference_gbps),
            "",
        )
    return table


def print_problems(report: BenchReport) -> None:
    for n in report.nodes:
        if n.error:
            out.print(f"[red]{n.node}[/red] {n.status}: {escape(n.error)}", highlight=False, soft_wrap=True)
        for note in n.notes:
            out.print(f"[yellow]{n.node}[/yellow]: {escape(note)}", highlight=False, soft_wrap=True)
    slow = [n for n in report.nodes if n.outlier]
    for n in slow:
        out.print(
            f"[yellow]{n.node}[/yellow] is far below its peers ({' and '.join(n.outlier)} under "
            f"{OUTLIER_SHARE:.0%} of the median node): check its fabric link, MTU and namespace",
            highlight=False,
        )


def run_bench_command(
    plan: Plan,
    limit: list[str] | None,
    size: str,
    runtime: int | str,
    json_path: Path | None,
    break_lock: bool = False,
) -> int:
    """Check the input, take the pod lock, benchmark the nodes, release it, print the table, write the JSON;
    return the exit code."""
    shared.check_limit(plan, limit)
    size_bytes = options.size("--size", size)
    runtime = options.duration("--runtime", str(runtime))
    options.output_file("--json", json_path)
    use_hosts()
    from deploy.podlock_run import PodLock

    run_dir = new_run_dir(plan.pod, "bench")
    scope = f" ({', '.join(limit)})" if limit else ""
    lock = PodLock.for_run(plan)
    lock.acquire(break_lock=break_lock)  # refuses (PodLocked, exit 2) before any node is written to
    try:
        with out.status(
            f"kvpod bench {plan.pod}{scope}: fio write then read, {runtime} s each, on every KV-cache mount"
        ):
            report = run_bench(plan, limit, size_bytes, runtime, run_dir=run_dir)
    finally:
        lock.release()
    out.print(bench_table(report))
    print_problems(report)
    shared.keep_json(run_dir, "bench.json", json.dumps(report.as_json(), indent=2, sort_keys=True) + "\n", json_path)
    return shared.EXIT_OK if report.ok else shared.EXIT_FAILED


@shared.app.command("bench")
def bench(
    spec: SpecPath,
    limit: LimitOpt = None,
    size: Annotated[
        str,
        typer.Option(
            "--size", metavar="SIZE", help="file size per node (64M, 1G; must fit beside LMCache's disk budget)"
        ),
    ] = DEFAULT_SIZE,
    runtime: Annotated[
        str, typer.Option("--runtime", metavar="DURATION", help="duration of each phase, write then read (30, 30s, 5m)")
    ] = str(DEFAULT_RUNTIME),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write per-node results and aggregates as JSON")
    ] = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """fio on every node's KV-cache mount (128 KiB O_DIRECT, 4 jobs, iodepth 32): GB/s beside the reference."""
    options.size("--size", size)
    options.duration("--runtime", runtime)
    options.output_file("--json", json_path)
    _, plan = shared.load(spec)
    raise typer.Exit(run_bench_command(plan, limit, size, runtime, json_path, break_lock=break_lock))
