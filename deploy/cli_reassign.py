"""``kvpod reassign``: edit the spec (minimal, comments kept), then run the plan-driven handover.

A small journal on the operator's machine records the request and the last step done, so an interrupted
reassignment (Ctrl-C, a crash, an SSH drop) is finished by running the same command again.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from deploy.errors import InputError, SpecError
from deploy.loader import load_spec, load_spec_text
from deploy.orchestrate import UpOptions, crash_point, read_journal, write_journal
from deploy.plan import build_plan
from deploy.podlock_run import PodLock
from deploy.reassign import parse_drive, plan_reassignment
from deploy.spec import PodSpec
from deploy.spec_edit import set_node_namespaces, write_atomically

out = Console(width=None if Console().is_terminal else 160)


def run_reassign_command(
    spec_path: Path,
    drive: str,
    to: str,
    *,
    swap: bool,
    wipe: bool,
    force_unreachable: bool,
    batch: str,
    break_lock: bool = False,
) -> int:
    """Take the pod lock before the spec or the journal change, hold it to the end (see :func:`_reassign`)."""
    from deploy.cli import fail_spec

    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        raise fail_spec(exc) from None
    lock = PodLock.for_run(build_plan(spec))
    lock.acquire(break_lock=break_lock)
    try:
        return _reassign(
            spec,
            spec_path,
            drive,
            to,
            swap=swap,
            wipe=wipe,
            force_unreachable=force_unreachable,
            batch=batch,
            lock=lock,
        )
    finally:
        lock.release()


def _reassign(
    spec: PodSpec,
    spec_path: Path,
    drive: str,
    to: str,
    *,
    swap: bool,
    wipe: bool,
    force_unreachable: bool,
    batch: str,
    lock: PodLock,
) -> int:
    from deploy.cli import fail_spec
    from deploy.cli_run import run_up_command

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

    plan = build_plan(load_spec(spec_path))

    def checkpoint(step: str) -> None:
        entry = read_journal(pod) or {"request": request}
        entry["last_step"] = step
        write_journal(pod, entry)

    opts = UpOptions(wipe={drive} if wipe else set(), force_unreachable=force_unreachable, batch=batch, lock=lock)
    code = run_up_command(plan, opts, yes=True, report=None, verify=False, checkpoint=checkpoint)
    if code == 0:
        write_journal(pod, None)
        out.print(f"[green]reassigned[/green] {drive} to {to}; {spec_path} holds the new assignment")
    else:
        out.print(f"the reassignment stopped; run the same command again to finish it (journal: pod {pod})")
    return code
