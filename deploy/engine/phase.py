"""One ``@deploy`` run on many hosts in parallel, for real or as a dry run: what each host did or would do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.engine.describe import describe_host
from deploy.engine.hooks import hook_callbacks
from deploy.engine.log import pyinfra_log
from deploy.engine.progress import EventSink, Progress
from deploy.engine.results import HostResult, RunStats
from deploy.engine.session import Session

ReadsFor = Callable[[dict[str, Any]], list]  # host data -> the reads of its deploy


def run_phase(
    role: str,
    hosts: list[tuple[str, dict[str, Any]]],
    deploy_func: Callable[..., Any],
    *,
    dry: bool,
    sink: EventSink | None = None,
    run_dir: Path | None = None,
    connect_timeout: int = 20,
    reads_for: ReadsFor | None = None,
    stats: RunStats | None = None,
    keep_output: bool = False,
) -> list[HostResult]:
    """Run one ``@deploy`` on ``hosts`` in parallel; never raises for a host's failure.

    ``reads_for(host data)`` lists the reads of the deploy: they are read in one command per host first.
    ``keep_output``: keep what each executed operation printed (``HostResult.output``).
    """
    if not hosts:
        return []
    with pyinfra_log(run_dir):
        # For a real run operations read facts when they execute; for a dry run they are evaluated now.
        session = Session(
            hosts,
            check_for_changes=dry,
            stats=stats if stats is not None else RunStats(),
            connect_timeout=connect_timeout,
            callbacks=[*hook_callbacks(), Progress(sink)],
        )
        return _run(session, role, deploy_func, dry=dry, reads_for=reads_for, keep_output=keep_output)


def _run(session: Session, role: str, deploy_func, *, dry: bool, reads_for, keep_output: bool) -> list[HostResult]:
    hosts = list(session.inventory)
    results = {h.name: HostResult(h.name, role) for h in hosts}
    before = {h.name: session.commands(h) for h in hosts}
    session.connect(None if reads_for is None else lambda h: reads_for(h.data.dict()))
    active = [h for h in hosts if session.reachable(h)]
    for h in hosts:
        if h not in active:
            session.errors.mark(h, results[h.name])
    # one host's refusal while preparing must not stop the others
    prepared = [h for h in active if session.prepare(h, [deploy_func], results[h.name], isolate=True)]
    if dry:
        for h in prepared:
            describe_host(session.state, h, results[h.name])
    try:
        if not dry:
            session.execute(prepared, results)
    finally:
        session.close()
    for h in active:
        session.collect(h, results[h.name], dry, keep_output)
    for h in hosts:
        results[h.name].remote_commands = session.commands(h) - before[h.name]
    return list(results.values())


def run_output(
    role: str,
    hosts: list[tuple[str, dict[str, Any]]],
    deploy_func: Callable[..., Any],
    *,
    sink: EventSink | None = None,
    run_dir: Path | None = None,
    connect_timeout: int = 20,
    reads_for: ReadsFor | None = None,
    stats: RunStats | None = None,
) -> list[HostResult]:
    """Run ``deploy_func`` on ``hosts`` in parallel (a real run) and keep each operation's stdout.

    For deploys that measure or report rather than converge: ``HostResult.output`` maps each executed
    operation's name to the lines it printed; a host's failure is reported as by :func:`run_phase` (``reads_for``
    as there).
    """
    return run_phase(
        role,
        hosts,
        deploy_func,
        dry=False,
        sink=sink,
        run_dir=run_dir,
        connect_timeout=connect_timeout,
        reads_for=reads_for,
        stats=stats,
        keep_output=True,
    )
