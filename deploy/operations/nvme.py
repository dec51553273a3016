"""NVMe-oF initiator operations: host identity, connections to every portal, disconnection."""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.facts.nvme import GONE_STATES, NvmeHostIdentity, NvmeSubsystems
from deploy.names import HOSTID_FILE, HOSTNQN_FILE
from deploy.nvme_settings import (
    AT_CONNECT,
    WRITABLE,
    PathSettings,
    controller_values,
    queue_count_problem,
    write_value,
)
from deploy.plan import NamespacePlan


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
    *,
    fast_io_fail_tmo: int = -1,
    keep_alive_tmo: int | None = None,
    nr_io_queues: int | None = None,
    tos: int | None = None,
) -> list[str]:
    """The ``nvme connect`` argv for one portal (same options on nvme-cli 2.x and 3.x). Options left at the
    kernel's default (``fast_io_fail_tmo`` -1, None) are not given."""
    argv = ["nvme", "connect", "--transport", transport, "--nqn", subnqn, "--traddr", traddr, "--trsvcid", str(trsvcid)]
    argv += ["--hostnqn", hostnqn, "--hostid", hostid]
    argv += ["--ctrl-loss-tmo", str(int(ctrl_loss_tmo)), "--reconnect-delay", str(int(reconnect_delay))]
    if fast_io_fail_tmo >= 0:
        argv += ["--fast_io_fail_tmo", str(int(fast_io_fail_tmo))]
    if keep_alive_tmo is not None:
        argv += ["--keep-alive-tmo", str(int(keep_alive_tmo))]
    if nr_io_queues is not None:
        argv += ["--nr-io-queues", str(int(nr_io_queues))]
    if tos is not None:
        argv += ["--tos", str(int(tos))]
    if host_iface:
        argv += ["--host-iface", host_iface]
    return argv


def plan_connect_options(ns: NamespacePlan) -> dict:
    """The connect options of :func:`connect_argv` that the plan sets beyond the timeouts."""
    return {
        "fast_io_fail_tmo": ns.fast_io_fail_tmo,
        "keep_alive_tmo": ns.keep_alive_tmo,
        "nr_io_queues": ns.nr_io_queues,
        "tos": ns.tos,
    }


# Write the I/O policy of the subsystem with NQN $0 ($1): found by NQN on the host when the command runs,
# so it also reaches a subsystem that a connect earlier in the same run created.
SET_IOPOLICY_SCRIPT = (
    "for s in /sys/class/nvme-subsystem/nvme-subsys*; do "
    '[ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$0" ] || continue; '
    'printf \'%s\\n\' "$1" > "$s/iopolicy" && exit 0; '
    'echo "kvpod: the kernel refuses iopolicy $1 for $0 (queue-depth needs Linux 6.11 or later;'
    ' set fabric.iopolicy)" >&2; exit 1; done; '
    'echo "kvpod: $0 is not connected: no iopolicy to set" >&2; exit 1'
)


def set_iopolicy(subnqn: str, iopolicy: str) -> StringCommand:
    """Set the multipath I/O policy of subsystem ``subnqn`` through sysfs."""
    return StringCommand("sh", "-c", QuoteString(SET_IOPOLICY_SCRIPT), QuoteString(subnqn), QuoteString(iopolicy))


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
    iopolicy: str | None = None,
    options: dict | None = None,
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
    + iopolicy: the subsystem's multipath I/O policy, written after connecting (see :func:`path_settings`)
    + options: further :func:`connect_argv` options (``fast_io_fail_tmo``, ``keep_alive_tmo``, ...)
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
            subnqn,
            transport,
            traddr,
            trsvcid,
            hostnqn,
            hostid,
            ctrl_loss_tmo,
            reconnect_delay,
            host_iface,
            **(options or {}),
        )
    yield wait_for_namespace(subnqn)
    if iopolicy is not None and entry is None:  # a new subsystem; a live one is left to path_settings
        yield set_iopolicy(subnqn, iopolicy)


@operation()
def path_settings(
    subnqn: str,
    iopolicy: str,
    ctrl_loss_tmo: int,
    reconnect_delay: int,
    fast_io_fail_tmo: int = -1,
    keep_alive_tmo: int = 5,
    nr_io_queues: int | None = None,
):
    """
    The live connection of ``subnqn`` has the planned settings: the subsystem's multipath I/O policy
    and each controller's ``reconnect_delay``, ``ctrl_loss_tmo`` and ``fast_io_fail_tmo`` are written through
    sysfs where they differ. The keep-alive timeout and the I/O queues are fixed when a controller connects:
    a difference is reported (it takes effect at the next connect, e.g. the next boot), never forced by
    dropping a path. A subsystem that is not connected yet is left to :func:`connected` (which sets the policy
    after connecting); new controllers get the settings from their connect options.

    + subnqn: subsystem NQN
    + iopolicy: ``numa``, ``round-robin`` or ``queue-depth``
    + ctrl_loss_tmo, reconnect_delay, fast_io_fail_tmo, keep_alive_tmo: seconds (-1: off), as nvme-cli takes them
    + nr_io_queues: the most I/O queues a controller may have (None: the kernel's default)
    """
    ns = PathSettings(iopolicy, ctrl_loss_tmo, reconnect_delay, fast_io_fail_tmo, keep_alive_tmo, nr_io_queues)
    entry = host.get_fact(NvmeSubsystems).get(subnqn)
    if not entry:
        host.noop(f"{subnqn} is not connected yet: its connect sets the path settings")
        return
    changed = False
    if "iopolicy" not in entry:
        host.noop(f"{subnqn} has no iopolicy attribute: native NVMe multipath is off (nvme_core.multipath=N)")
    elif entry["iopolicy"] != ns.iopolicy:
        changed = True
        yield set_iopolicy(subnqn, ns.iopolicy)
    wanted = controller_values(ns)
    later = []
    for ctrl in entry["controllers"]:
        if ctrl["state"] in GONE_STATES:
            continue
        settings = ctrl.get("settings", {})
        for attribute in WRITABLE:
            if attribute in settings and settings[attribute] != wanted[attribute]:
                changed = True
                path = f"/sys/class/nvme/{ctrl['name']}/{attribute}"
                yield _write_line(write_value(attribute, ns), path)
        for attribute in AT_CONNECT:
            if attribute in settings and settings[attribute] != wanted[attribute]:
                later.append(f"{ctrl['name']} {attribute} {settings[attribute]} (planned {wanted[attribute]})")
        problem = queue_count_problem(ns, settings.get("queue_count")) if "queue_count" in settings else None
        if problem:
            later.append(f"{ctrl['name']} {problem}")
    if later:
        host.noop("set at the next connect of the path: " + "; ".join(later))
    elif not changed:
        host.noop(f"{subnqn}: I/O policy and controller settings are as planned")


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
