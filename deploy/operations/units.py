"""systemd unit operations driven by other operations' changes (right in dry runs and real runs alike)."""

from __future__ import annotations

from collections.abc import Callable

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from deploy.operations.restart import PendingRestart


@operation()
def daemon_reload(when: Callable[[], bool]):
    """
    ``systemctl daemon-reload`` when ``when()`` is true, e.g. ``when=changed(unit_op)``.

    + when: predicate built with :func:`deploy.operations.changed`
    """
    if not when():
        host.noop("no unit file changed")
        return
    yield StringCommand("systemctl", "daemon-reload")


@operation()
def service(
    unit: str,
    enabled: bool = True,
    running: bool = True,
    restart_when: Callable[[], bool] | None = None,
    defer_restart: bool = False,
    pending: PendingRestart | None = None,
):
    """
    A systemd unit enabled and running; a running unit is restarted when ``restart_when()`` is true, unless
    ``defer_restart``: then it is recorded in ``pending`` (the caller rolls restarts out later).
    A unit that was not running is started, never restarted (enabled and started by one ``enable --now``).

    + unit: full unit name
    + enabled / running: wanted state
    + restart_when: predicate built with :func:`deploy.operations.changed`
    + defer_restart: do not restart; record it in ``pending``
    + pending: the node's :class:`deploy.operations.restart.PendingRestart`: whether this unit's restart waits
    """
    restart = {unit: restart_when} if restart_when is not None else None
    yield from services._inner(
        units=[unit],
        enabled=enabled,
        running=running,
        restart_when=restart,
        defer_restart=defer_restart,
        pending=pending,
    )


@operation()
def services(
    units: list[str],
    enabled: bool = True,
    running: bool = True,
    restart_when: dict[str, Callable[[], bool]] | None = None,
    defer_restart: bool = False,
    pending: PendingRestart | None = None,
):
    """
    Several systemd units enabled (and running), as :func:`service` makes each, except that the units neither
    enabled nor running are enabled and started by ONE ``systemctl enable --now`` (those only to enable, by one
    ``enable``); a start or restart of one unit stays a command of its own, in the order given.

    + units: full unit names
    + enabled / running: wanted state of them all
    + restart_when: per unit, a predicate built with :func:`deploy.operations.changed`
    + defer_restart, pending: as :func:`service` takes them
    """
    statuses = {u: host.get_fact(SystemdStatus, services=[u]).get(u, False) for u in units}
    is_enabled = {u: host.get_fact(SystemdEnabled, services=[u]).get(u, False) for u in units}
    to_enable = [u for u in units if enabled and not is_enabled[u]]
    now = [u for u in to_enable if running and not statuses[u]]
    if now:
        yield StringCommand("systemctl", "enable", "--now", *(QuoteString(u) for u in now))
    if later := [u for u in to_enable if u not in now]:
        yield StringCommand("systemctl", "enable", *(QuoteString(u) for u in later))
    acted, deferred_any = bool(to_enable), False
    for unit in units:
        deferred = False
        if unit in now:
            pass  # started by the enable above
        elif running and not statuses[unit]:
            acted = True
            yield StringCommand("systemctl", "start", QuoteString(unit))
        elif running and restart_when and unit in restart_when and restart_when[unit]():
            if defer_restart:
                deferred = deferred_any = True
            else:
                acted = True
                yield StringCommand("systemctl", "restart", QuoteString(unit))
        if pending is not None:
            pending.record(unit, deferred)
    if not acted:
        wanted = " and ".join(w for w, on in (("enabled", enabled), ("running", running)) if on) or "as wanted"
        are = "is" if len(units) == 1 else "are"
        host.noop(f"{', '.join(units)} {are} {wanted}" + (" (restart deferred)" if deferred_any else ""))


@operation()
def run(command: str, when: Callable[[], bool]):
    """
    Run ``command`` when ``when()`` is true, e.g. ``networkctl reload`` after its files changed.

    + command: shell command
    + when: predicate built with :func:`deploy.operations.changed`
    """
    if not when():
        host.noop(f"nothing to apply ({command})")
        return
    yield StringCommand(command)
