"""``kvpod reassign``: edit the spec (minimal, comments kept), then run the plan-driven handover.

A small journal on the operator's machine records the request and the last step done, so an interrupted
reassignment (Ctrl-C, a crash, an SSH drop) is finished by running the same command again. The pod lock is
taken before the spec or the journal change and held to the end.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deploy.cli import options
from deploy.cli.hosts import use_hosts
from deploy.cli.run import (
    BatchOpt,
    BreakLockOpt,
    ForceOpt,
    MaxUnavailableOpt,
    check_rollout_options,
    check_selection,
    run_up_command,
    up_options,
)
from deploy.cli.shared import EXIT_OK, app, fail_spec, load_spec_file, out
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
    drive: Annotated[str, typer.Option("--drive", metavar="ENC/SLOT", help="the drive to move")],
    to: Annotated[str, typer.Option("--to", metavar="NODE", help="the node that receives the drive")],
    swap: Annotated[
        bool, typer.Option("--swap", help="the receiving node's drive goes to the drive's old holder")
    ] = False,
    wipe: Annotated[
        bool, typer.Option("--wipe", help="recreate the filesystem on the moved drive: data is lost")
    ] = False,
    force_unreachable: ForceOpt = False,
    batch: BatchOpt = None,
    max_unavailable: MaxUnavailableOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before moving (as when not interactive)")
    ] = False,
    break_lock: BreakLockOpt = False,
) -> None:
    """Move a drive to another node safely: old holder releases, target re-admits, new holder mounts."""
    share = check_rollout_options(max_unavailable, batch)
    move = Move(drive, to, swap=swap, wipe=wipe, force_unreachable=force_unreachable, batch=share)
    raise typer.Exit(run_reassign_command(spec, move, break_lock=break_lock, yes=yes))


def check_move(spec: PodSpec, move: Move) -> list[str]:
    """The moves a new request makes (``drive: from -> to``), or none for the one a journal resumes;
    :class:`InputError` for a drive or node the spec does not have, or a move that cannot be made."""
    plan = build_plan(spec)
    options.drive(plan, "--drive", move.drive)
    options.node(plan, "--to", move.to)
    check_selection(plan, [move.drive] if move.wipe else [])
    if read_journal(spec.pod.name):
        return []  # an interrupted move: resumed, or another request refused, under the lock (:func:`_reassign`)
    moved = plan_reassignment(spec, parse_drive(move.drive), move.to, move.swap)
    return [f"{d}: {a or 'spare'} -> {b or 'spare'}" for d, a, b in moved.moves]


def confirmed(moves: list[str], move: Move) -> bool:
    """Ask before moving, at a terminal only (as ``kvpod up`` does)."""
    if not moves or not sys.stdin.isatty():
        return True
    out.print("would move " + "; ".join(moves), highlight=False)
    if move.wipe:
        out.print(f"[red]--wipe reformats {move.drive}: its data is lost[/red]")
    return out.input("move? [y/N] ").strip().lower().startswith("y")


def run_reassign_command(spec_path: Path, move: Move, *, break_lock: bool = False, yes: bool = True) -> int:
    """Check the request, take the pod lock, move the drive (:func:`_reassign`), release the lock; return the
    exit code."""
    spec = load_spec_file(spec_path)
    moves = check_move(spec, move)
    if not yes and not confirmed(moves, move):
        return EXIT_OK
    use_hosts()
    from deploy.podlock_run import PodLock

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
            # the edited spec must be valid before it replaces the file (secret files relative to its directory)
            load_spec_text(edited, str(spec_path), spec_path.resolve().parent)
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
