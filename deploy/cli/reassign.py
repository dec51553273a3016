"""``kvpod reassign``: edit the spec (minimal, comments kept), then run the plan-driven handover.

A small journal on the operator's machine records the request and the last step done, so an interrupted
reassignment (Ctrl-C, a crash, an SSH drop) is finished by running the same command again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploy.cli.run import BatchOpt, ForceOpt, run_up_command, up_options
from deploy.cli.shared import app, fail_spec, load_spec_file, out
from deploy.errors import InputError, SpecError
from deploy.loader import load_spec_text
from deploy.plan import build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.statedir import crash_point, read_journal, write_journal


@app.command()
def reassign(
    spec: Annotated[Path, typer.Argument(help="pod spec YAML (edited in place, comments kept)")],
    drive: Annotated[str, typer.Option("--drive", help="ENCLOSURE/SLOT of the drive to move")],
    to: Annotated[str, typer.Option("--to", help="the node that receives the drive")],
    swap: Annotated[
        bool, typer.Option("--swap", help="the receiving node's drive goes to the drive's old holder")
    ] = False,
    wipe: Annotated[
        bool, typer.Option("--wipe", help="recreate the filesystem on the moved drive: data is lost")
    ] = False,
    force_unreachable: ForceOpt = False,
    batch: BatchOpt = "1",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = True,
) -> None:
    """Move a drive to another node safely: old holder releases, target re-admits, new holder mounts."""
    raise typer.Exit(
        run_reassign_command(spec, drive, to, swap=swap, wipe=wipe, force_unreachable=force_unreachable, batch=batch)
    )


def run_reassign_command(
    spec_path: Path, drive: str, to: str, *, swap: bool, wipe: bool, force_unreachable: bool, batch: str
) -> int:
    """Edit the spec (journalled), then run the handover; an interrupted run is finished by the same command."""
    from deploy.spec_edit import set_node_namespaces, write_atomically

    spec = load_spec_file(spec_path)
    pod = spec.pod.name
    request = {"drive": drive, "to": to, "swap": swap, "wipe": wipe}
    journal = read_journal(pod)
    if journal and journal["request"] != request:
        raise InputError(
            f"a reassignment of {journal['request']['drive']} to {journal['request']['to']} is in progress "
            f"(last step: {journal['last_step']}); run that command again to finish it first"
        )
    if journal:
        out.print(f"resuming the reassignment of {drive} to {to} (interrupted after: {journal['last_step']})")
    else:
        moved = plan_reassignment(spec, parse_drive(drive), to, swap)
        edited = set_node_namespaces(spec_path.read_text(), moved.assignments)
        try:
            load_spec_text(edited, str(spec_path))  # the edited spec must be valid before it replaces the file
        except SpecError as exc:
            raise fail_spec(exc) from None
        moves = [f"{d}: {a or 'spare'} -> {b or 'spare'}" for d, a, b in moved.moves]
        write_journal(pod, {"request": request, "moves": moves, "last_step": "journal"})
        crash_point("journal")
        write_atomically(spec_path, edited)
        write_journal(pod, {"request": request, "moves": moves, "last_step": "spec"})
        crash_point("spec")
        out.print("moving " + "; ".join(moves), highlight=False)

    plan = build_plan(load_spec_file(spec_path))

    def checkpoint(step: str) -> None:
        entry = read_journal(pod) or {"request": request}
        entry["last_step"] = step
        write_journal(pod, entry)

    opts = up_options(wipe={drive} if wipe else set(), force_unreachable=force_unreachable, batch=batch)
    code = run_up_command(plan, opts, yes=True, report=None, verify=False, checkpoint=checkpoint)
    if code == 0:
        write_journal(pod, None)
        out.print(f"[green]reassigned[/green] {drive} to {to}; {spec_path} holds the new assignment")
    else:
        out.print(f"the reassignment stopped; run the same command again to finish it (journal: pod {pod})")
    return code
