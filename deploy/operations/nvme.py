"""NVMe-oF initiator operations: host identity, connections to every portal, disconnection."""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.facts.nvme import GONE_STATES, NvmeHostIdentity, NvmeSubsystems
from deploy.names import HOSTID_FILE, HOSTNQN_FILE


def _write_line(value: str, path: str) -> StringCommand:
    return StringCommand("printf", "'%s\\n'", QuoteString(value), ">", QuoteString(path))


@operation()
def host_identity(hostnqn: str, hostid: str):
    """
    ``/etc/nvme/hostnqn`` and ``/etc/nvme/hostid`` hold this host's identity (one line each, newline-terminated
    as nvme-cli writes them); rewritten only when different.

    + hostnqn: the host NQN the target admits
    + hostid: the host ID (a UUID)
    """
    current = host.get_fact(NvmeHostIdentity)
    wanted = {HOSTNQN_FILE: hostnqn, HOSTID_FILE: hostid}
    stale = [path for path, value in wanted.items() if current.get(posixpath.basename(path)) != value]
    if not stale:
        host.noop("NVMe host identity is set")
        return
    yield StringCommand("mkdir", "-p", posixpath.dirname(HOSTNQN_FILE))
    for path in stale:
        yield _write_line(wanted[path], path)


def portal_connected(subsystems: dict, subnqn: str, transport: str, traddr: str, trsvcid: int | str) -> bool:
    """Whether subsystem ``subnqn`` has a controller to ``traddr:trsvcid`` that the kernel still serves/retries."""
    for ctrl in subsystems.get(subnqn, {}).get("controllers", []):
        if (
            ctrl["transport"] == transport
            and ctrl["traddr"] == traddr
            and str(ctrl["trsvcid"]) == str(trsvcid)
            and ctrl["state"] not in GONE_STATES
        ):
            return True
    return False


def connect_argv(
    subnqn: str,
    transport: str,
    traddr: str,
    trsvcid: int | str,
    hostnqn: str,
    hostid: str,
    ctrl_loss_tmo: int,
    reconnect_delay: int,
    host_iface: str | None = None,
) -> list[str]:
    """The ``nvme connect`` argv for one portal (same options on nvme-cli 2.x and 3.x)."""
    argv = ["nvme", "connect", "--transport", transport, "--nqn", subnqn, "--traddr", traddr, "--trsvcid", str(trsvcid)]
    argv += ["--hostnqn", hostnqn, "--hostid", hostid]
    argv += ["--ctrl-loss-tmo", str(int(ctrl_loss_tmo)), "--reconnect-delay", str(int(reconnect_delay))]
    if host_iface:
        argv += ["--host-iface", host_iface]
    return argv


def connect_command(*args, **kwargs) -> StringCommand:
    """:func:`connect_argv` as a shell command, every word quoted."""
    return StringCommand(*(QuoteString(word) for word in connect_argv(*args, **kwargs)))


def wait_for_namespace(subnqn: str, seconds: int = 30) -> StringCommand:
    """Wait until subsystem ``subnqn`` shows a namespace block device (the kernel scans namespaces after connect)."""
    script = (
        f"for i in $(seq {int(seconds)}); do "
        "for s in /sys/class/nvme-subsystem/nvme-subsys*; do "
        '[ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$0" ] || continue; '
        'for n in "$s"/nvme*n* "$s"/nvme*/nvme*n*; do [ -e "$n" ] && exit 0; done; done; sleep 1; done; '
        'echo "kvpod: no namespace of $0 appeared" >&2; exit 1'
    )
    return StringCommand("sh", "-c", QuoteString(script), QuoteString(subnqn))


@operation()
def connected(
    subnqn: str,
    transport: str,
    portals: list[tuple[str, int | str]],
    hostnqn: str,
    hostid: str,
    ctrl_loss_tmo: int = 600,
    reconnect_delay: int = 10,
    host_iface: str | None = None,
):
    """
    Subsystem ``subnqn`` is connected through every portal: one ``nvme connect`` per portal that has no
    controller yet (a controller that is reconnecting counts: it is never duplicated). With several
    portals native NVMe multipath gives one block device with one controller per portal. After connecting,
    waits (30 s at most) for the namespace's block device so that later operations find it.

    + subnqn: subsystem NQN
    + transport: ``rdma`` or ``tcp``
    + portals: ``[(traddr, trsvcid), ...]``
    + hostnqn, hostid: the identity to connect as
    + ctrl_loss_tmo, reconnect_delay: seconds, as nvme-cli takes them
    + host_iface: bind to this interface (TCP only; the kernel rejects it for RDMA)
    """
    subsystems = host.get_fact(NvmeSubsystems)
    missing = [(a, s) for a, s in portals if not portal_connected(subsystems, subnqn, transport, a, s)]
    entry = subsystems.get(subnqn)
    if not missing and entry and not entry["namespaces"]:
        # connected, but the kernel dropped the namespace (e.g. controllers lost and re-established while
        # the target rebooted): rescan through a live controller instead of reconnecting
        live = [c["name"] for c in entry["controllers"] if c["state"] == "live"]
        if live:
            yield StringCommand("nvme", "ns-rescan", QuoteString(f"/dev/{live[0]}"))
            yield wait_for_namespace(subnqn)
            return
    if not missing:
        host.noop(f"{subnqn} is connected through {len(portals)} portal(s)")
        return
    for traddr, trsvcid in missing:
        yield connect_command(
            subnqn, transport, traddr, trsvcid, hostnqn, hostid, ctrl_loss_tmo, reconnect_delay, host_iface
        )
    yield wait_for_namespace(subnqn)


@operation()
def disconnected(subnqn: str):
    """
    Subsystem ``subnqn`` is not connected (``nvme disconnect`` only when it is).

    + subnqn: subsystem NQN
    """
    if subnqn in host.get_fact(NvmeSubsystems):
        yield StringCommand("nvme", "disconnect", "--nqn", QuoteString(subnqn))
    else:
        host.noop(f"{subnqn} is not connected")
