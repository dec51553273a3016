"""CLI side of runs against hosts: live progress, the per-host summary, the JSON report, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from deploy.plan import Plan
from deploy.runner import RunReport, UpOptions, run_up
from deploy.statedir import new_run_dir

EXIT_OK, EXIT_INVALID, EXIT_FAILED = 0, 1, 2

out = Console(width=None if Console().is_terminal else 160)

_STYLE = {
    "changed": "yellow",
    "would-change": "yellow",
    "unchanged": "green",
    "failed": "red",
    "unreachable": "red",
    "manual": "cyan",
}


def summary_table(report: RunReport, title: str) -> Table:
    t = Table(title=title)
    for col in ("host", "role", "status", "changed ops", "commands", "failing step", "detail"):
        t.add_column(col, overflow="fold")
    for h in report.hosts:
        detail = (h.stderr[-1] if h.stderr else "") or (h.note or "")
        style = _STYLE.get(h.status, "")
        t.add_row(
            h.name,
            h.role,
            f"[{style}]{h.status}[/{style}]",
            str(h.changed_ops),
            str(h.commands),
            h.failed_step or "",
            detail,
        )
    return t


def _sink(host: str, kind: str, text: str) -> None:
    if kind == "changed":
        out.print(f"  [yellow]changed[/yellow] {host}: {text}", highlight=False)
    elif kind == "error":
        out.print(f"  [red]failed[/red]  {host}: {text}", highlight=False)


def _parse_wipe(plan: Plan, wipe: list[str]) -> set[str]:
    known = {f"{s_t.name}/{s.drive}" for s_t in plan.targets for s in s_t.subsystems}
    bad = [w for w in wipe if w not in known]
    if bad:
        raise ValueError(f"--wipe: unknown drive {', '.join(bad)} (valid: ENCLOSURE/SLOT, e.g. {sorted(known)[0]})")
    return set(wipe)


def run_up_command(
    plan: Plan,
    *,
    limit: list[str] | None,
    dry: bool,
    yes: bool,
    wipe: list[str],
    report: Path | None,
    verify: bool,
) -> int:
    known = {n.name for n in plan.nodes}
    unknown = [n for n in (limit or []) if n not in known]
    if unknown:
        out.print(f"--limit: unknown node {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
        return EXIT_INVALID
    try:
        wipe_set = _parse_wipe(plan, wipe)
    except ValueError as exc:
        out.print(str(exc))
        return EXIT_INVALID
    if not dry and not yes and sys.stdin.isatty():
        preview = run_up(plan, UpOptions(limit=limit, dry=True, wipe=wipe_set))
        out.print(summary_table(preview, "what kvpod up would change"))
        if wipe_set:
            out.print(f"[red]--wipe reformats {', '.join(sorted(wipe_set))}: its data is lost[/red]")
        if preview.changed == 0 and preview.ok:
            out.print("nothing to change")
            return EXIT_OK
        if not out.input("apply? [y/N] ").strip().lower().startswith("y"):
            return EXIT_OK
    run_dir = new_run_dir(plan.pod, "up-dry" if dry else "up")
    opts = UpOptions(limit=limit, dry=dry, wipe=wipe_set, run_dir=run_dir)
    with out.status(f"kvpod up {plan.pod}: switches, targets, nodes"):
        result = run_up(plan, opts, sink=_sink)
    verb = "dry run" if dry else "kvpod up"
    title = f"{verb} of {plan.pod}: {result.changed} changed operations in {result.seconds:.1f}s"
    out.print(summary_table(result, title))
    out.print(f"logs: {run_dir}")
    data = result.as_json()
    (run_dir / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    if report:
        report.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    if not result.ok:
        return EXIT_FAILED
    if verify and not dry:
        from deploy.cli_verify import run_verify_command

        return run_verify_command(plan, limit=limit, junit=None)
    return EXIT_OK
