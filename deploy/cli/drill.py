"""``kvpod drill SPEC failover``: a portal taken away while every node writes and verifies; a table per node and
portal, the JSON file.

Exit codes: 0 every node passed every round; 1 the input is wrong (an unknown scenario or portal, a duration
shorter than the stall threshold or longer than the kernel keeps a lost path); 2 a node failed (I/O errors, a
verification error, a stall above the threshold, a path that did not come back, ext4 no longer read-write), could
not be reached or refused (not mounted, no room beside LMCache's budget), or another run holds the pod lock.

The drill writes onto every node's KV-cache mount and takes a portal away: it holds the pod lock while it runs
(``--break-lock`` takes over a stale one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli import shared
from deploy.cli.hosts import use_hosts
from deploy.cli.run import BreakLockOpt
from deploy.cli.shared import SpecPath, out
from deploy.drill import (
    DEFAULT_DURATION,
    DEFAULT_MAX_STALL,
    SCENARIOS,
    DrillReport,
    NodeDrill,
    check_timing,
    plan_rounds,
)
from deploy.errors import InputError
from deploy.names import MIB
from deploy.plan import Plan
from deploy.statedir import new_run_dir


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _flag(ok: bool | None, yes: str, no: str) -> str:
    if ok is None:
        return "-"
    return f"[green]{yes}[/green]" if ok else f"[red]{no}[/red]"


def _stall(n: NodeDrill, threshold: float) -> str:
    if n.max_stall_s is None:
        return "-"
    text = f"{n.max_stall_s:.2f}"
    return f"[red]{text}[/red]" if n.max_stall_s > threshold else text


def drill_table(report: DrillReport) -> Table:
    """One row per node and portal."""
    table = Table(
        title=(
            f"kvpod drill {report.scenario} of {report.pod}: each portal down {report.duration_s} s, stall threshold "
            f"{report.max_stall_s:g} s"
        ),
        caption=(
            "stall: the longest latency of one I/O (fio, submission to completion); down: from taking the portal "
            "away; back: from its return"
        ),
    )
    for col, justify in (
        ("portal", "left"),
        ("node", "left"),
        ("I/O errors", "right"),
        ("verify", "left"),
        ("longest stall s", "right"),
        ("paths before", "left"),
        ("down after s", "right"),
        ("paths back", "left"),
        ("back after s", "right"),
        ("ext4", "left"),
        ("MiB written / verified", "right"),
        ("result", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for n in report.nodes:
        errors = "-" if n.io_errors is None else (f"[red]{n.io_errors}[/red]" if n.io_errors else "0")
        verify = "-" if n.verify is None else ("[green]clean[/green]" if n.verify == "clean" else "[red]failed[/red]")
        moved = (
            f"{n.written_bytes / MIB:.0f} / {n.verified_bytes / MIB:.0f}"
            if n.written_bytes is not None and n.verified_bytes is not None
            else "-"
        )
        table.add_row(
            escape(n.portal),
            n.node,
            errors,
            verify,
            _stall(n, report.max_stall_s),
            n.paths_before or "-",
            _seconds(n.down_after_s),
            _flag(n.paths_back, "yes", "no"),
            _seconds(n.back_after_s),
            _flag(n.mount_rw, "rw", "not rw"),
            moved,
            "[green]passed[/green]" if n.status == "passed" else f"[red]{n.status}[/red]",
        )
    return table


def print_reasons(report: DrillReport) -> None:
    for n in report.nodes:
        for why in n.reasons:
            out.print(f"[red]{n.node}[/red] ({escape(n.portal)}): {escape(why)}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    out.print(f"[bold]drill[/bold] {escape(message)}", highlight=False, soft_wrap=True)


def run_drill_command(
    plan: Plan,
    scenario: str,
    portal: str | None,
    duration: int,
    max_stall: float | None,
    json_path: Path | None,
    break_lock: bool = False,
) -> int:
    """Check the input, take the pod lock, drill every round, release it, print the table, write the JSON;
    return the exit code."""
    if scenario not in SCENARIOS:
        raise shared.user_error(f"scenario {scenario!r}: unknown (valid: {', '.join(SCENARIOS)})")
    threshold = DEFAULT_MAX_STALL if max_stall is None else max_stall
    try:
        rounds = plan_rounds(plan, portal)
        check_timing(plan, rounds, duration, threshold)
    except InputError as exc:
        raise shared.user_error(str(exc)) from None
    use_hosts()
    from deploy.drill_run import run_drill
    from deploy.podlock_run import PodLock

    run_dir = new_run_dir(plan.pod, "drill")
    lock = PodLock.for_run(plan)
    lock.acquire(break_lock=break_lock)  # refuses (PodLocked, exit 2) before any host is touched
    try:
        report = run_drill(plan, rounds, duration, threshold, _say, run_dir=run_dir)
    finally:
        lock.release()
    out.print(drill_table(report))
    print_reasons(report)
    shared.keep_json(run_dir, "drill.json", report.to_json(), json_path)
    return shared.EXIT_OK if report.ok else shared.EXIT_FAILED


@shared.app.command("drill")
def drill(
    spec: SpecPath,
    scenario: Annotated[str, typer.Argument(help="what to drill: failover (a portal taken away and back)")],
    portal: Annotated[
        str | None,
        typer.Option("--portal", help="ENCLOSURE/IOM/PORT to take away (default: each IOM in turn, all its ports)"),
    ] = None,
    duration: Annotated[int, typer.Option("--duration", help="seconds the portal stays down")] = DEFAULT_DURATION,
    max_stall: Annotated[
        float | None,
        typer.Option(
            "--max-stall",
            help=f"seconds one I/O may take before the node fails (default {DEFAULT_MAX_STALL:g}: twice the kernel's "
            "NVMe-oF keep-alive timeout)",
        ),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the per-node figures as JSON")] = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Take a portal away while fio writes and verifies on every node: I/O errors, stall, paths back, ext4 rw."""
    _, plan = shared.load(spec)
    raise typer.Exit(run_drill_command(plan, scenario, portal, duration, max_stall, json_path, break_lock))
