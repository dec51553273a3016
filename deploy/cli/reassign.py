"""``kvpod reassign``: edit the spec (minimal, comments kept), then run the plan-driven handover.

A small journal on the operator's machine records the request and the last step done, so an interrupted
reassignment (Ctrl-C, a crash, an SSH drop) is finished by running the same command again. The pod lock is
taken before the spec or the journal change and held to the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deploy.cli.hosts import use_hosts
from deploy.cli.run import (
    BatchOpt,
    BreakLockOpt,
    ForceOpt,
    MaxUnavailableOpt,
    check_rollout_options,
    run_up_command,
    up_options,
)
from deploy.cli.shared import app, fail_spec, load_spec_file, out
from deploy.errors import InputError, SpecError
from deploy.loader import load_spec_text
from deploy.plan import build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.spec import PodSpec
from deploy.statedir import crash_point, read_journal, write_journal

if TYPE_CHECKING:
    from deploy.podlock_run import PodLock


@dataclass(frozen=True)
class Move:
    """What ``kvpod reassign`` was asked to do."""

    drive: str
    to: str
    swap: bool = False
    wipe: bool = False
    force_unreachable: bool = False
    batch: str = "1"  # --max-unavailable of the rollout

    def request(self) -> dict:
        """The request as the journal records it (an interrupted move resumes only the same request)."""
        return {"drive": self.drive, "to": self.to, "swap": self.swap, "wipe": self.wipe}


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
    batch: BatchOpt = None,
    max_unavailable: MaxUnavailableOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = True,
    break_lock: BreakLockOpt = False,
) -> None:
    """Move a drive to another node safely: old holder releases, target re-admits, new holder mounts."""
    share = check_rollout_options(max_unavailable, batch)
    move = Move(drive, to, swap=swap, wipe=wipe, force_unreachable=force_unreachable, batch=share)
    raise typer.Exit(run_reassign_command(spec, move, break_lock=break_lock))


def run_reassign_command(spec_path: Path, move: Move, *, break_lock: bool = False) -> int:
    """Take the pod lock, move the drive (:func:`_reassign`), release the lock; return the exit code."""
    use_hosts()
    from deploy.podlock_run import PodLock

    spec = load_spec_file(spec_path)
    lock = PodLock.for_run(build_plan(spec))
    lock.acquire(break_lock=break_lock)
    try:
        return _reassign(spec, spec_path, move, lock)
    finally:
        lock.release()


def _reassign(spec: PodSpec, spec_path: Path, move: Move, lock: PodLock) -> int:
    """Edit the spec (journalled), then run the handover; an interrupted run is finished by the same command."""
    from deploy.spec_edit import set_node_namespaces, write_atomically

    pod, drive, to = spec.pod.name, move.drive, move.to
    request = move.request()
    journal = read_journal(pod)
    if journal and journal["request"] != request:
        raise InputError(
            f"a reassignment of {journal['request']['drive']} to {journal['request']['to']} is in progress "
            f"(last step: {journal['last_step']}); run that command again to finish it first"
        )
    if journal:
        out.print(f"resuming the reassignment of {drive} to {to} (interrupted after: {journal['last_step']})")
    else:
        moved = plan_reassignment(spec, parse_drive(drive), to, move.swap)
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

    opts = up_options(
        wipe={drive} if move.wipe else set(),
        force_unreachable=move.force_unreachable,
        max_unavailable=move.batch,
        lock=lock,
    )
    code = run_up_command(plan, opts, yes=True, report=None, verify=False, checkpoint=checkpoint)
    if code == 0:
        write_journal(pod, None)
        out.print(f"[green]reassigned[/green] {drive} to {to}; {spec_path} holds the new assignment")
    else:
        out.print(f"the reassignment stopped; run the same command again to finish it (journal: pod {pod})")
    return code
