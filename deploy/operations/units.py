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
    is_running = host.get_fact(SystemdStatus, services=[unit]).get(unit, False)
    is_enabled = host.get_fact(SystemdEnabled, services=[unit]).get(unit, False)
    deferred = False
    acted = False
    enable, start = enabled and not is_enabled, running and not is_running
    if enable:
        acted = True
        yield StringCommand("systemctl", "enable", *(["--now"] if start else []), QuoteString(unit))
    if start:
        acted = True
        if not enable:  # else started by the enable above
            yield StringCommand("systemctl", "start", QuoteString(unit))
    elif running and restart_when is not None and restart_when():
        if defer_restart:
            deferred = True
        else:
            acted = True
            yield StringCommand("systemctl", "restart", QuoteString(unit))
    if pending is not None:
        pending.record(unit, deferred)
    if not acted:
        host.noop(f"{unit} is {'enabled and ' if enabled else ''}running" + (" (restart deferred)" if deferred else ""))


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
