"""Unreachable hosts: why a host's SSH connection failed or was lost, and where it is."""

from __future__ import annotations

from pyinfra.api.state import BaseStateCallback

from deploy.engine.results import HostResult, HostStatus
from deploy.unreachable import LOST, connect_cause, unreachable_note


def where(host) -> tuple[str, int | None]:
    """The address and port kvpod connects ``host`` at."""
    return str(host.data.get("ssh_hostname") or host.name), host.data.get("ssh_port")


class ConnectErrors(BaseStateCallback):
    """Records, per host, why its SSH connection failed (:func:`deploy.unreachable.connect_cause`)."""

    def __init__(self) -> None:
        self.causes: dict[str, str] = {}

    def host_connect_error(self, state, host, error):
        self.causes[host.name] = connect_cause(error)

    def mark(self, host, result: HostResult) -> None:
        """``result`` is unreachable: where the host is and why it did not answer."""
        result.status = HostStatus.UNREACHABLE
        result.cause = self.causes.get(host.name, "no SSH connection")
        result.note = unreachable_note(*where(host), result.cause)


def mark_lost(host, result: HostResult) -> None:
    """The machine went away during a step: the step did not fail, the host did."""
    result.status, result.cause = HostStatus.UNREACHABLE, LOST
    result.note = unreachable_note(*where(host), "connection lost (the host went away during this step)")
