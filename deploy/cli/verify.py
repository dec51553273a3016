"""``kvpod verify``: run the testinfra suite, print a host-by-role-area table and every failed check.

Exit codes: 0 every check held; 1 a check failed, or ``--limit`` named an unknown node; 2 a host was
unreachable or the suite could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli import options
from deploy.cli.shared import EXIT_FAILED, EXIT_INVALID, EXIT_OK, LimitOpt, SpecPath, app, check_limit, load, out
from deploy.errors import KvpodError
from deploy.plan import Plan
from deploy.statedir import new_run_dir
from deploy.verify_runner import POD_ROW, Cell, VerifyReport, run_verify
from deploy.wording import plural

_AREA_TITLES = {
    "fabric": "fabric",
    "nvme_initiator": "nvme initiator",
    "namespace": "namespace",
    "kv_mount": "kv mount",
    "lmcache": "lmcache",
    "vllm": "vllm",
    "target": "target",
    "enclosure": "enclosure",
}


def cell_text(cell: Cell) -> str:
    """``✓ 12``, ``✗ 2/12`` (failed of total), ``unreachable``, or ``·`` when no check ran there."""
    if cell.status == "unreachable":
        return "[red]unreachable[/red]"
    if cell.status == "failed":
        return f"[red]✗ {cell.failed}/{cell.total}[/red]"
    if cell.status == "ok":
        return f"[green]✓ {cell.passed}[/green]"
    return "[dim]·[/dim]"


def summary_table(report: VerifyReport, title: str) -> Table:
    """Rows: nodes, the pod, targets; columns: role areas; last column: checks held of checks run."""
    areas = [a for a in report.areas if any(c.area == a for c in report.checks)] or report.areas
    table = Table(title=title)
    table.add_column("host")
    for area in areas:
        table.add_column(_AREA_TITLES.get(area, area), justify="center")
    table.add_column("held", justify="right")
    for row in report.rows:
        cells = [report.cell(row, area) for area in areas]
        if row == POD_ROW and not any(c.total for c in cells):
            continue
        total = report.row_cells(row)
        style = "green" if total.status == "ok" else ("dim" if total.status == "none" else "red")
        table.add_row(row, *(cell_text(c) for c in cells), f"[{style}]{total.passed}/{total.total}[/{style}]")
    return table


def print_reported(report: VerifyReport) -> None:
    """What passing checks reported, one line per host (the vllm and lmcache versions vLLM runs with)."""
    for host, values in sorted(report.reported.items()):
        text = ", ".join(f"{k} {v}" for k, v in values.items() if k != "interpreter")
        where = f" ({values['interpreter']})" if "interpreter" in values else ""
        out.print(f"  {host}: {text}{where}", markup=False, highlight=False)


def print_failures(report: VerifyReport) -> None:
    """Each failed check: its test id, then what was expected and what was found (or the error)."""
    if report.unreachable_hosts:
        out.print(f"[red]unreachable:[/red] {', '.join(report.unreachable_hosts)}", highlight=False)
        for host in report.unreachable_hosts:
            first = next(c for c in report.checks if c.host == host and c.outcome == "unreachable")
            out.print(f"  {host}: {first.message}", markup=False, highlight=False)
    failures = report.failures
    if failures:
        out.print(f"[red]{plural(len(failures), 'check')} failed[/red]")
    for c in failures:
        out.print(f"[bold]✗ {escape(f'{c.host} · {c.area} · {c.name}')}[/bold]", highlight=False)
        out.print(f"    {c.test_id}", markup=False, highlight=False, style="dim")
        if c.expected is not None:
            out.print(f"    {c.message}", markup=False, highlight=False)
            out.print(f"    expected: {c.expected}", markup=False, highlight=False)
            out.print(f"    found:    {c.found}", markup=False, highlight=False)
        else:
            out.print(f"    {c.message or c.outcome}", markup=False, highlight=False)


def run_verify_command(plan: Plan, limit: list[str] | None = None, junit: Path | None = None) -> int:
    """Verify the live pod against ``plan`` (``limit`` already checked); print the summary; return the exit code."""
    run_dir = new_run_dir(plan.pod, "verify")
    scope = f" ({', '.join(limit)})" if limit else ""
    try:
        with out.status(f"kvpod verify {plan.pod}{scope}: checking nodes and targets against the plan"):
            report = run_verify(plan, run_dir, limit=limit, junit_copy=junit)
    except KvpodError as exc:
        out.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_FAILED
    checks = [c for c in report.checks if c.outcome != "skipped"]
    held = sum(c.outcome == "passed" for c in checks)
    if report.checks:
        out.print(summary_table(report, f"kvpod verify of {plan.pod}: {held}/{len(checks)} checks held"))
    print_reported(report)
    print_failures(report)
    if report.suite_error:
        out.print(f"[red]suite error:[/red] {report.suite_error}", highlight=False)
    code = {"held": EXIT_OK, "differs": EXIT_INVALID}.get(report.verdict, EXIT_FAILED)
    verdict = {
        EXIT_OK: "[green]the pod matches its plan[/green]",
        EXIT_INVALID: "[red]the pod differs from its plan[/red]",
    }
    out.print(verdict.get(code, "[red]verification incomplete[/red]"))
    out.print(f"logs: {run_dir}" + (f"  junit: {junit}" if junit else ""), highlight=False)
    return code


@app.command("verify")
def verify(
    spec: SpecPath,
    limit: LimitOpt = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="also write the JUnit XML here")] = None,
) -> None:
    """Check the live pod against its plan (testinfra over SSH): one ✓/✗ per host and role area."""
    options.output_file("--junit", junit)
    _, plan = load(spec)
    check_limit(plan, limit)
    raise typer.Exit(run_verify_command(plan, limit=limit, junit=junit))
