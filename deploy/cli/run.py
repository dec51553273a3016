"""``kvpod up``, ``diff`` and ``check``: live progress, the diff view, the per-host summary, JSON reports."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deploy.cli import options
from deploy.cli.hosts import use_hosts
from deploy.cli.shared import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    LimitOpt,
    SpecPath,
    app,
    check_limit,
    err,
    load,
    out,
    user_error,
)
from deploy.errors import InputError, KvpodError
from deploy.host_status import HostStatus
from deploy.plan import Plan
from deploy.statedir import new_run_dir
from deploy.wording import name_list, plural

if TYPE_CHECKING:
    from deploy.engine import HostResult, RunReport
    from deploy.orchestrate import UpOptions

_STYLE = {
    HostStatus.CHANGED: "yellow",
    HostStatus.WOULD_CHANGE: "yellow",
    HostStatus.UNCHANGED: "green",
    HostStatus.FAILED: "red",
    HostStatus.UNREACHABLE: "red",
    HostStatus.MANUAL: "cyan",
}


def summary_table(report: RunReport, title: str) -> Table:
    t = Table(title=title)
    for col in ("host", "role", "status", "changed ops", "commands", "failing step", "detail"):
        t.add_column(col, overflow="fold")
    for h in report.hosts:
        detail = (h.stderr[-1] if h.stderr else "") or (h.note or "")
        if h.restart_pending:
            detail = (detail + " " if detail else "") + restart_detail(h)
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


def restart_detail(h: HostResult) -> str:
    """A node's restart still due, naming its engines: ``vLLM restart pending (kvpod-vllm@1.service)``."""
    units = f" ({', '.join(h.restart_units)})" if h.restart_units else ""
    return f"vLLM restart pending{units}"


def print_diff(report: RunReport) -> None:
    """Per host: what would change and why — operations with their commands, files as unified diffs."""
    from rich.syntax import Syntax

    for h in report.hosts:
        if not h.planned and not h.restart_units and h.status != HostStatus.FAILED:
            continue  # an unreachable host has its one line in the summary
        out.rule(f"{h.name} ({h.role}): {h.status}")
        if h.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
            out.print(f"[red]{h.failed_step or h.status}[/red]: {(h.stderr or [h.note or ''])[-1]}", highlight=False)
        for op, commands in h.planned:
            out.print(f"[yellow]~[/yellow] {op}", highlight=False)
            for cmd in commands:
                if cmd.startswith("upload "):
                    dest = cmd.removeprefix("upload ")
                    diff = h.diffs.get(dest, "")
                    if diff:
                        out.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
                    else:
                        out.print(f"    upload {dest} (content unchanged; mode or owner differ)", highlight=False)
                else:
                    out.print(f"    $ {cmd}", highlight=False, markup=False)
        if h.restart_units:
            out.print("[yellow]~[/yellow] vLLM restarts (rolling, health-gated)", highlight=False)
            for unit in h.restart_units:
                out.print(f"    restart {unit}", highlight=False, markup=False)


def _sink(host: str, kind: str, text: str) -> None:
    if kind == "changed":
        out.print(f"  [yellow]changed[/yellow] {host}: {text}", highlight=False)
    elif kind == "error":
        out.print(f"  [red]failed[/red]  {host}: {text}", highlight=False)


def check_selection(plan: Plan, wipe: list[str]) -> None:
    """The wheelhouse exists and every ``--wipe`` names a drive of the plan; :class:`InputError` otherwise."""
    from deploy.validate import wheelhouse_problems

    for problem in wheelhouse_problems(plan.nodes[0].vllm.install.wheelhouse if plan.nodes[0].vllm.install else None):
        raise InputError(problem)
    options.wipe(plan, wipe)


def check_rollout_options(max_unavailable: str | None, batch: str | None) -> str:
    """``--max-unavailable`` and its alias ``--batch``, checked before any host; exit 1 naming the option."""
    from deploy.rollout import rollout_share

    try:
        return rollout_share(max_unavailable, batch)
    except InputError as exc:
        raise user_error(str(exc)) from None


def print_rollout(report: RunReport) -> None:
    """A stopped rollout: the batch it stopped after, each engine that did not become healthy, its journal."""
    rollout = report.rollout
    if rollout is None or rollout.stopped_after is None:
        return
    out.print(
        f"[red]rollout stopped after batch {rollout.stopped_after} of {len(rollout.batches)}[/red]: "
        f"{', '.join(f'{f.node}/{f.unit}' for f in rollout.failed)} not healthy; later batches were not restarted",
        highlight=False,
    )
    for f in rollout.failed:
        out.print(f"  {f.node}/{f.unit}: {f.detail}", markup=False, highlight=False)
        for line in f.journal:
            out.print(f"    | {line}", markup=False, highlight=False)


def write_report(result: RunReport, run_dir: Path, report: Path | None) -> None:
    text = json.dumps(result.as_json(), indent=2, sort_keys=True) + "\n"
    (run_dir / "report.json").write_text(text)
    if report:
        report.write_text(text)


def stopped_report(exc: BaseException, run_dir: Path, dry: bool, started: float) -> RunReport:
    """The report of a run that was refused (the lock, an unsafe step) or interrupted: the reason, the hosts
    that were down."""
    from deploy.engine import HostResult, RunReport
    from deploy.podlock import PodLocked

    down = exc.down if isinstance(exc, PodLocked) else {}
    hosts = [HostResult(name, "lock host", status=HostStatus.UNREACHABLE, note=why) for name, why in down.items()]
    interrupted = isinstance(exc, KeyboardInterrupt)
    return RunReport(
        hosts,
        time.monotonic() - started,
        run_dir,
        dry,
        outcome="interrupted" if interrupted else "refused",
        reason="interrupted (Ctrl-C)" if interrupted else str(exc),
    )


def stop_run(exc: BaseException, run_dir: Path, dry: bool, started: float, report: Path | None) -> int:
    """A refused or interrupted run: its report written, the reason and the run directory printed; the exit code.
    An interruption is raised again (the command line exits 130)."""
    write_report(stopped_report(exc, run_dir, dry, started), run_dir, report)
    if isinstance(exc, KeyboardInterrupt):
        out.print(f"logs: {run_dir}", highlight=False, soft_wrap=True)
        raise exc
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
    out.print(f"logs: {run_dir}", highlight=False, soft_wrap=True)
    return EXIT_INVALID if isinstance(exc, InputError) else EXIT_FAILED


def summary_title(report: RunReport, what: str) -> str:
    """``what``, preceded by how many hosts were unreachable when any was."""
    down = len(report.unreachable)
    return f"{plural(down, 'host')} unreachable; {what}" if down else what


def run_diff_command(plan: Plan, opts: UpOptions, *, exit_on_drift: bool, report: Path | None = None) -> int:
    """``kvpod diff`` / ``up --dry`` / ``check``: read the live pod, show what would change, change nothing."""
    from deploy.orchestrate import bring_up

    use_hosts()
    opts.dry = True
    opts.run_dir = new_run_dir(plan.pod, "check" if exit_on_drift else "diff")
    started = time.monotonic()
    try:
        with out.status(f"reading the live state of {plan.pod}"):
            result = bring_up(plan, opts)
    except (KvpodError, KeyboardInterrupt) as exc:
        return stop_run(exc, opts.run_dir, True, started, report)
    print_diff(result)
    drift = [h for h in result.hosts if h.status == HostStatus.WOULD_CHANGE or h.restart_pending]
    others = " of the others" if result.unreachable else ""
    differ = f"{plural(len(drift), 'host')}{others} {'differs' if len(drift) == 1 else 'differ'}"
    what = f"{differ} from the plan ({plural(result.changed, 'operation')})"
    out.print(summary_table(result, f"{plan.pod}: {summary_title(result, what)}"))
    out.print(f"logs: {opts.run_dir}", highlight=False, soft_wrap=True)
    write_report(result, opts.run_dir, report)
    if not result.ok:
        return EXIT_FAILED
    if exit_on_drift and drift:
        out.print(f"[yellow]drift[/yellow] on {name_list((h.name for h in drift), at_most=12)}", highlight=False)
        return EXIT_INVALID
    return EXIT_OK


def run_up_command(
    plan: Plan,
    opts: UpOptions,
    *,
    yes: bool,
    report: Path | None,
    verify: bool,
    checkpoint=None,
    break_lock: bool = False,
) -> int:
    """``kvpod up``: show what will change (unless --yes or not interactive), apply, summarise, verify.

    The run holds the pod lock from its state read to its end (:mod:`deploy.podlock_run`), unless the caller
    took it already (``opts.lock``) and releases it itself.
    """
    from deploy.orchestrate import UpOptions, bring_up

    use_hosts()
    from deploy.engine import RunStats
    from deploy.podlock_run import PodLock

    if opts.dry:
        return run_diff_command(plan, opts, exit_on_drift=False, report=report)
    if not yes and sys.stdin.isatty():
        preview = UpOptions(**{**opts.__dict__, "dry": True})
        code = run_diff_command(plan, preview, exit_on_drift=True)
        if opts.wipe:
            out.print(f"[red]--wipe reformats {', '.join(sorted(opts.wipe))}: its data is lost[/red]")
        if code == EXIT_OK:
            out.print("nothing to change")
            return EXIT_OK
        if not out.input("apply? [y/N] ").strip().lower().startswith("y"):
            return EXIT_OK
    opts.run_dir = new_run_dir(plan.pod, "up")
    stats = RunStats()
    owned = opts.lock is None
    lock = opts.lock = opts.lock or PodLock.for_run(plan)
    started = time.monotonic()
    try:
        if owned and break_lock:
            lock.acquire(break_lock=True, stats=stats)

        def mark(step: str) -> None:
            if checkpoint:
                checkpoint(step)
            lock.renew(stats)

        with out.status(f"kvpod up {plan.pod}: switches, handover, targets, nodes, restarts"):
            result = bring_up(plan, opts, sink=_sink, checkpoint=mark, stats=stats)
    except (KvpodError, KeyboardInterrupt) as exc:
        return stop_run(exc, opts.run_dir, False, started, report)
    finally:
        if owned:
            lock.release(stats)
    for h in result.hosts:  # the release came after the report was counted
        h.remote_commands = stats.commands.get(h.name, h.remote_commands) if h.name in lock.names else h.remote_commands
    what = f"{plural(result.changed, 'changed operation')} in {result.seconds:.1f}s"
    out.print(summary_table(result, f"kvpod up of {plan.pod}: {summary_title(result, what)}"))
    print_rollout(result)
    out.print(f"logs: {opts.run_dir}", highlight=False, soft_wrap=True)
    write_report(result, opts.run_dir, report)
    if not result.ok:
        return EXIT_FAILED
    if verify:
        from deploy.cli.verify import run_verify_command

        return run_verify_command(plan, limit=opts.limit, junit=None)
    return EXIT_OK


WipeOpt = Annotated[
    list[str] | None,
    typer.Option("--wipe", metavar="ENC/SLOT", help="reformat this drive (ENCLOSURE/SLOT): data is lost"),
]
BatchOpt = Annotated[str | None, typer.Option("--batch", metavar="N|P%", help="another name for --max-unavailable")]
MaxUnavailableOpt = Annotated[
    str | None,
    typer.Option(
        "--max-unavailable",
        metavar="N|P%",
        help="vLLM engines restarted at once across the pod: a count (default 1) or a share of its engines (25%)",
    ),
]
PruneOpt = Annotated[bool, typer.Option("--prune", help="release nodes that left the spec")]
ForceOpt = Annotated[
    bool, typer.Option("--force-unreachable", help="hand over drives of unreachable nodes (target revokes, MMP)")
]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", help="take over the pod lock of a run that is gone (stale lock only)")
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="write the per-host summary as JSON")]


def up_options(**kwargs) -> UpOptions:
    """The orchestration's options (imported only when a command reaches hosts)."""
    from deploy.orchestrate import UpOptions

    return UpOptions(**kwargs)


@app.command()
def up(
    spec: SpecPath,
    limit: LimitOpt = None,
    dry: Annotated[bool, typer.Option("--dry", help="show what would change; change nothing")] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="show the diff before applying (the default when interactive)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask before applying")] = False,
    wipe: WipeOpt = None,
    max_unavailable: MaxUnavailableOpt = None,
    batch: BatchOpt = None,
    prune: PruneOpt = False,
    force_unreachable: ForceOpt = False,
    report: ReportOpt = None,
    verify: Annotated[bool, typer.Option(help="run kvpod verify after a successful bring-up")] = True,
    break_lock: BreakLockOpt = False,
) -> None:
    """Configure switches, hand over moved drives, targets, nodes; roll vLLM restarts. A rerun changes nothing."""
    share = check_rollout_options(max_unavailable, batch)
    options.output_file("--report", report)
    _, p = load(spec)
    check_limit(p, limit)
    check_selection(p, wipe or [])
    chosen = {
        "limit": limit,
        "wipe": set(wipe or []),
        "max_unavailable": share,
        "prune": prune,
        "force_unreachable": force_unreachable,
    }
    if diff and not dry and not yes:
        code = run_diff_command(p, up_options(**chosen, dry=True), exit_on_drift=True)
        if code != EXIT_INVALID:
            raise typer.Exit(code)
    raise typer.Exit(
        run_up_command(
            p, up_options(**chosen, dry=dry), yes=yes or diff, report=report, verify=verify, break_lock=break_lock
        )
    )


def _read_only(spec: Path, limit: list[str] | None, prune: bool, report: Path | None, *, exit_on_drift: bool) -> None:
    options.output_file("--report", report)
    _, p = load(spec)
    check_limit(p, limit)
    opts = up_options(limit=limit, prune=prune, dry=True)
    raise typer.Exit(run_diff_command(p, opts, exit_on_drift=exit_on_drift, report=report))


@app.command("diff")
def diff_cmd(spec: SpecPath, limit: LimitOpt = None, prune: PruneOpt = False, report: ReportOpt = None) -> None:
    """Read the live pod and show, per host, what `kvpod up` would change and why; change nothing."""
    _read_only(spec, limit, prune, report, exit_on_drift=False)


@app.command()
def check(spec: SpecPath, limit: LimitOpt = None, report: ReportOpt = None) -> None:
    """Report drift (live state differing from the plan) per host; exit 1 when there is drift."""
    _read_only(spec, limit, False, report, exit_on_drift=True)
