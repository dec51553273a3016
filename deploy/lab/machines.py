"""The machines a lab boots: one NVMe-oF target and N inference nodes."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from .errors import LabError

ROLES = ("target", "node")
FIRST_SSH_PORT = 2201
TAP_PREFIX = "kvl-"
MAX_IFNAME = 15
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_UUID_NAMESPACE = uuid.UUID("6b76706f-642d-4c61-8200-000000000000")


@dataclass(frozen=True)
class LabMachine:
    """One VM to boot.

    + name: hostname and VM name (lower case, digits, dashes)
    + ssh_port: port on 127.0.0.1 forwarded to the VM's sshd
    + role: ``target`` (serves NVMe-oF namespaces) or ``node`` (an inference node)
    """

    name: str
    ssh_port: int
    role: str


def default_machines(nodes: int = 2) -> list[LabMachine]:
    """A target on 127.0.0.1:2201 and ``node1..nodeN`` on the ports after it."""
    if nodes < 0:
        raise LabError(f"nodes must be >= 0, got {nodes}")
    machines = [LabMachine("target", FIRST_SSH_PORT, "target")]
    machines += [LabMachine(f"node{k}", FIRST_SSH_PORT + k, "node") for k in range(1, nodes + 1)]
    return machines


def tap_name(machine_name: str) -> str:
    """The host-side name of a machine's fabric tap: ``kvl-<name>``."""
    return f"{TAP_PREFIX}{machine_name}"


def machine_uuid(machine_name: str) -> str:
    """A stable SMBIOS UUID per machine name, so every VM gets its own host NQN."""
    return str(uuid.uuid5(_UUID_NAMESPACE, machine_name))


def machine_mac(index: int, nic: int) -> str:
    """A locally administered MAC for NIC ``nic`` (0 management, 1 fabric) of the ``index``-th machine."""
    if not 0 <= index <= 0xFFFF or nic not in (0, 1):
        raise LabError(f"no MAC for machine index {index}, nic {nic}")
    return f"52:54:00:{0x6B + nic:02x}:{index >> 8:02x}:{index & 0xFF:02x}"


def validate_machines(machines: list[LabMachine]) -> None:
    """Raise :class:`LabError` unless the machines can be booted together."""
    if not machines:
        raise LabError("no machines to boot")
    problems: list[str] = []
    names = [m.name for m in machines]
    ports = [m.ssh_port for m in machines]
    for m in machines:
        if not _NAME.match(m.name):
            problems.append(f"{m.name!r}: a machine name is lower case letters, digits and dashes")
        if len(tap_name(m.name)) > MAX_IFNAME:
            problems.append(f"{m.name!r}: too long for the tap name {tap_name(m.name)!r} (max {MAX_IFNAME})")
        if m.role not in ROLES:
            problems.append(f"{m.name!r}: role must be one of {', '.join(ROLES)}, got {m.role!r}")
        if not 1024 <= m.ssh_port <= 65535:
            problems.append(f"{m.name!r}: ssh_port {m.ssh_port} is outside 1024-65535")
    problems += [f"duplicate machine name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"duplicate ssh_port {p}" for p in sorted({p for p in ports if ports.count(p) > 1})]
    if problems:
        raise LabError("cannot boot these machines:\n" + "\n".join(problems))
