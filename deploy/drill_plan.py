"""``kvpod drill SPEC failover``: take one portal away while every node writes and verifies, then judge each node.

A round takes away one portal (``--portal ENCLOSURE/IOM/PORT``) or, without it, every port of one IOM (an IOM
failure), enclosure by enclosure, IOM by IOM. During a round, on every node reaching its namespace through that
portal, a small fio job writes and reads back with data verification (crc32c, every write verified shortly
after, a verification error stops fio) with O_DIRECT, in ``<mount>/.kvpod-drill/``, sized like ``kvpod bench``
within the room beside LMCache's disk budget. Per node the drill reports the I/O errors, fio's verification, the
longest I/O stall (the longest latency of one I/O, submission to completion, as fio measured it), the seconds
until every planned path is live again, and whether ext4 is still mounted read-write.

A node passes when it saw no I/O error, no verification error, no stall above the threshold (``--max-stall``,
default :data:`DEFAULT_MAX_STALL`), every planned path came back, and the mount is still read-write. A node with
one path only (no multipath, or a path lost before the drill) stalls for the whole outage or fails its I/O: it
does not pass. The outage must last at least the threshold, or such a node could pass.

Everything here is pure: the rounds and each node's fio job; the scripts run on nodes and targets are in
:mod:`deploy.drill_scripts`, the parsing, judging and report in :mod:`deploy.drill` (which exports every name).
:mod:`deploy.drill_run` runs them; the CLI (``deploy.cli.drill``) prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.errors import InputError
from deploy.names import KIB, MIB
from deploy.plan import NodePlan, Plan, TargetPortalPlan

SCENARIOS = ("failover",)
DEFAULT_DURATION = 30
# The kernel's default NVMe-oF keep-alive timeout is 5 s (NVME_DEFAULT_KATO): a path that dies silently is
# noticed within about one and a half keep-alive timeouts, and its I/O is then requeued onto the live path.
KERNEL_KATO_S = 5
DEFAULT_MAX_STALL = 2.0 * KERNEL_KATO_S
DRILL_DIRNAME = ".kvpod-drill"
DRILL_FILE = "drill.dat"
RESULT_FILE = "fio.json"
ERR_FILE = "fio.err"
PID_FILE = "pid"
SIZE_BYTES = 64 * MIB
BLOCK_SIZE = 64 * KIB
IODEPTH = 4
VERIFY_BACKLOG = 16  # every 16 writes are read back and verified while the drill runs
SETTLE_S = 3  # fio writes this long before the portal goes away
TAIL_S = 3  # and this long after every path is back
DROP_TIMEOUT_S = 60  # a linux-nvmet portal: its paths must drop within this
OPERATOR_TIMEOUT_S = 900  # a Data24 port: the operator's time to disable it, and to enable it again
STOP_TIMEOUT_S = 30  # fio must stop within this after it is told to
STATE_DIR = "/run/kvpod"  # on a linux-nvmet target: the links a drill took away, until it puts them back


# -- input ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One portal outage: the ports taken away together, and the nodes that lose a path by it."""

    enclosure: str
    kind: str  # the enclosure's kind: linux-nvmet (kvpod takes the ports away) or data24 (the operator does)
    ports: tuple[TargetPortalPlan, ...]
    nodes: tuple[str, ...]

    @property
    def label(self) -> str:
        """``target/iom-a/p1``, or ``target/iom-a`` for every port of one IOM."""
        if len(self.ports) == 1:
            p = self.ports[0]
            return f"{self.enclosure}/{p.iom}/{p.port}"
        return f"{self.enclosure}/{self.ports[0].iom}"

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(p.address for p in self.ports)

    @property
    def managed(self) -> bool:
        return self.kind == "linux-nvmet"


def portal_names(plan: Plan) -> list[str]:
    """Every portal of the pod as ``ENCLOSURE/IOM/PORT``."""
    return [f"{t.name}/{p.iom}/{p.port}" for t in plan.targets for p in t.portals]


def _users(plan: Plan, enclosure: str, addresses: set[str]) -> tuple[str, ...]:
    """The nodes whose namespace is on ``enclosure`` and that connect through one of ``addresses``."""
    return tuple(
        n.name
        for n in plan.nodes
        if n.namespace.enclosure == enclosure and {p.address for p in n.namespace.portals} & addresses
    )


def plan_rounds(plan: Plan, portal: str | None) -> list[Round]:
    """The drill's rounds (pure): the one ``--portal``, or every IOM of every enclosure holding a node's drive.

    :class:`InputError` for an unknown portal (naming the valid ones) or a portal no node connects through.
    """
    if portal is not None:
        for t in plan.targets:
            for p in t.portals:
                if f"{t.name}/{p.iom}/{p.port}" == portal:
                    nodes = _users(plan, t.name, {p.address})
                    if not nodes:
                        raise InputError(
                            f"--portal {portal}: no node reaches its namespace through it"
                            + ("" if plan.fabric.multipath else " (fabric.multipath is off: nodes use one portal)")
                        )
                    return [Round(t.name, t.kind, (p,), nodes)]
        raise InputError(f"--portal {portal!r}: unknown portal (valid: {', '.join(portal_names(plan))})")
    rounds = []
    for t in plan.targets:
        for iom in dict.fromkeys(p.iom for p in t.portals):
            ports = tuple(p for p in t.portals if p.iom == iom)
            nodes = _users(plan, t.name, {p.address for p in ports})
            if nodes:
                rounds.append(Round(t.name, t.kind, ports, nodes))
    if not rounds:
        raise InputError("the pod has no node connected to any portal: nothing to drill")
    return rounds


def check_timing(plan: Plan, rounds: list[Round], duration_s: int, max_stall_s: float) -> None:
    """The outage must last at least the stall threshold (or a node with one path could pass), and end before
    the kernel gives a lost controller up (``fabric.ctrl_loss_tmo``), or the path would not come back alone."""
    if duration_s < 1:
        raise InputError(f"--duration {duration_s}: expected a positive number of seconds")
    if max_stall_s <= 0:
        raise InputError(f"--max-stall {max_stall_s:g}: expected a positive number of seconds")
    if duration_s < max_stall_s:
        raise InputError(
            f"--duration {duration_s}: shorter than the stall threshold ({max_stall_s:g} s): a node without a "
            f"second path would stall for less than the threshold and pass (use --duration {int(max_stall_s + 0.999)} "
            "or more, or a lower --max-stall)"
        )
    drilled = {name for r in rounds for name in r.nodes}
    for n in plan.nodes:
        tmo = n.namespace.ctrl_loss_tmo
        if n.name in drilled and tmo != -1 and duration_s + n.namespace.reconnect_delay >= tmo:
            raise InputError(
                f"--duration {duration_s}: {n.name} gives a lost path up after fabric.ctrl_loss_tmo = {tmo} s, "
                f"before the portal returns (at most {tmo - n.namespace.reconnect_delay - 1} s)"
            )


# -- the job on a node ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillJob:
    """One node's part of a round: its mount, its subsystem, the portals it must have live, the outage's."""

    mount: str
    subsystem_nqn: str
    planned: tuple[str, ...]  # addresses of every portal the node connects through
    dropped: tuple[str, ...]  # those the round takes away
    runtime_s: int  # fio's own upper bound: it stops by itself should kvpod never tell it to
    size_bytes: int = SIZE_BYTES

    @property
    def directory(self) -> str:
        return f"{self.mount.rstrip('/')}/{DRILL_DIRNAME}"

    @property
    def file(self) -> str:
        return f"{self.directory}/{DRILL_FILE}"

    @property
    def file_bytes(self) -> int:
        """What the file takes on the mount (checked against the room beside LMCache's budget)."""
        return self.size_bytes


def fio_runtime(duration_s: int, managed: bool) -> int:
    """fio's upper bound: the whole round with every wait at its timeout, so that it outlives the drill."""
    waits = DROP_TIMEOUT_S if managed else 2 * OPERATOR_TIMEOUT_S
    return SETTLE_S + duration_s + 2 * waits + TAIL_S + STOP_TIMEOUT_S + 120


def drill_job(node: NodePlan, rnd: Round, duration_s: int) -> DrillJob:
    planned = tuple(p.address for p in node.namespace.portals)
    return DrillJob(
        mount=node.mount.path,
        subsystem_nqn=node.namespace.subsystem_nqn,
        planned=planned,
        dropped=tuple(a for a in planned if a in rnd.addresses),
        runtime_s=fio_runtime(duration_s, rnd.managed),
    )


def fio_argv(job: DrillJob) -> list[str]:
    """Random 64 KiB O_DIRECT writes at iodepth 4, each 16 read back and checked (crc32c), time based (pure).

    I/O errors are counted and fio carries on (``continue_on_error=io``); a verification error stops it."""
    return [
        "fio",
        "--output-format=json",
        f"--output={job.directory}/{RESULT_FILE}",
        "--eta=never",
        "--name=drill",
        f"--filename={job.file.replace(':', chr(92) + ':')}",  # fio separates file names with ':'
        f"--size={job.size_bytes}",
        "--direct=1",
        "--ioengine=libaio",
        "--rw=randwrite",
        f"--bs={BLOCK_SIZE // KIB}k",
        f"--iodepth={IODEPTH}",
        "--time_based",
        f"--runtime={job.runtime_s}",
        "--verify=crc32c",
        f"--verify_backlog={VERIFY_BACKLOG}",
        "--verify_fatal=1",
        "--verify_state_save=0",
        "--continue_on_error=io",
    ]
