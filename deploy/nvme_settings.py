"""What the kernel shows for a planned NVMe-oF connection: the sysfs values of each controller and subsystem.

Pure: the role (:mod:`deploy.operations.nvme`), the boot script and ``kvpod verify`` compare the live values
with these. Attributes of ``/sys/class/nvme/nvmeX`` (Linux 6.1):

- ``reconnect_delay``: seconds, writable;
- ``ctrl_loss_tmo``: ``off`` for -1, else ``ceil(ctrl_loss_tmo / reconnect_delay) * reconnect_delay`` (the kernel
  keeps a number of reconnect attempts, not the seconds); writable, after ``reconnect_delay``;
- ``fast_io_fail_tmo``: ``off`` for -1, else seconds; writable;
- ``kato``: the keep-alive timeout in seconds; fixed at connect time;
- ``queue_count``: I/O queues plus the admin queue; fixed at connect time, at most ``nr_io_queues + 1`` (the
  kernel also caps the I/O queues at the online CPUs and at what the target grants).

``/sys/class/nvme-subsystem/nvme-subsysN/iopolicy``: ``numa``, ``round-robin`` or (Linux 6.11+) ``queue-depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.plan import NamespacePlan

# Writable on a live controller, in the order they must be written (ctrl_loss_tmo is kept as attempts of
# reconnect_delay, so the delay goes first).
WRITABLE = ("reconnect_delay", "ctrl_loss_tmo", "fast_io_fail_tmo")
# Set only when a controller connects.
AT_CONNECT = ("kato",)
ATTRIBUTES = (*WRITABLE, *AT_CONNECT, "queue_count")


@dataclass(frozen=True)
class PathSettings:
    """The planned settings of a namespace's paths (from :class:`deploy.plan.NamespacePlan`)."""

    iopolicy: str
    ctrl_loss_tmo: int
    reconnect_delay: int
    fast_io_fail_tmo: int = -1
    keep_alive_tmo: int = 5
    nr_io_queues: int | None = None

    @classmethod
    def of(cls, ns: NamespacePlan) -> PathSettings:
        return cls(
            iopolicy=ns.iopolicy,
            ctrl_loss_tmo=ns.ctrl_loss_tmo,
            reconnect_delay=ns.reconnect_delay,
            fast_io_fail_tmo=ns.fast_io_fail_tmo,
            keep_alive_tmo=ns.keep_alive_tmo,
            nr_io_queues=ns.nr_io_queues,
        )


def sysfs_seconds(value: int) -> str:
    """A timeout as the kernel prints it: ``off`` when negative."""
    return "off" if value < 0 else str(int(value))


def controller_values(ns: PathSettings) -> dict[str, str]:
    """Each controller attribute of the subsystem with a planned exact value, as sysfs prints it."""
    loss = ns.ctrl_loss_tmo
    shown_loss = "off" if loss < 0 else str(-(-loss // ns.reconnect_delay) * ns.reconnect_delay)
    return {
        "reconnect_delay": str(ns.reconnect_delay),
        "ctrl_loss_tmo": shown_loss,
        "fast_io_fail_tmo": sysfs_seconds(ns.fast_io_fail_tmo),
        "kato": str(ns.keep_alive_tmo),
    }


def queue_count_problem(ns: PathSettings, shown: str | None) -> str | None:
    """Why a controller's ``queue_count`` does not fit the plan (None when it does)."""
    if shown is None:
        return "queue_count: not readable"
    if not shown.strip().isdigit():
        return f"queue_count: {shown!r} is not a number"
    io_queues = int(shown) - 1
    if io_queues < 1:
        return f"queue_count: {shown} (no I/O queue)"
    if ns.nr_io_queues is not None and io_queues > ns.nr_io_queues:
        return f"queue_count: {shown} ({io_queues} I/O queues, planned at most {ns.nr_io_queues})"
    return None


def write_value(attribute: str, ns: PathSettings) -> str:
    """The value written to a writable attribute (``ctrl_loss_tmo`` as seconds: the kernel recomputes attempts)."""
    return {
        "reconnect_delay": str(ns.reconnect_delay),
        "ctrl_loss_tmo": str(ns.ctrl_loss_tmo),
        "fast_io_fail_tmo": str(ns.fast_io_fail_tmo),
    }[attribute]
