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

Everything here is pure: the rounds, the scripts run on nodes and targets, the parsing and the judging.
:mod:`deploy.drill_run` runs them; the CLI (``deploy.cli.drill``) prints.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deploy.bench import _find_json, format_bytes
from deploy.encode import shell_word, shell_words
from deploy.errors import InputError
from deploy.names import KIB, MIB, NVMET_ROOT
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


def _paths_function(nqn: str) -> list[str]:
    """``paths``: one line ``<state> <address>`` per controller of the subsystem ``nqn`` (sysfs)."""
    return [
        f"nqn={shell_word(nqn)}",
        "paths() {",
        "  for c in /sys/class/nvme-subsystem/*/nvme*; do",
        '    [ -f "$c/address" ] || continue',
        '    [ "$(cat "${c%/*}/subsysnqn" 2>/dev/null)" = "$nqn" ] || continue',
        '    echo "$(cat "$c/state" 2>/dev/null) $(tr -d " " < "$c/address" 2>/dev/null)"',
        "  done",
        "}",
        "live_on() {  # whether a controller through traddr $1 is live",
        '  paths | while read -r s a; do case "$a" in "traddr=$1,"*|"traddr=$1") [ "$s" = live ] && echo y;; esac; '
        "done | grep -q y",
        "}",
    ]


def start_script(job: DrillJob, mountpoint_check: str = "mountpoint -q") -> str:
    """Refuse an unmounted path or a drill already running, print the paths, start fio detached (its pid kept in
    the directory), and confirm it is writing. Exit 3: not a mountpoint. The script returns while fio runs."""
    fio = shell_words(fio_argv(job))
    return "\n".join(
        [
            f"mnt={shell_word(job.mount)}",
            f"dir={shell_word(job.directory)}",
            *_paths_function(job.subsystem_nqn),
            f'if ! {mountpoint_check} "$mnt"; then',
            '  echo "kvpod: $mnt is not mounted: refusing to write a drill file into the filesystem below it" >&2',
            "  exit 3",
            "fi",
            f'if [ -f "$dir/{PID_FILE}" ] && kill -0 "$(cat "$dir/{PID_FILE}")" 2>/dev/null; then',
            '  echo "kvpod: a drill is already running on $mnt" >&2; exit 1',
            "fi",
            'if ! rm -rf "$dir" || ! mkdir -m 700 "$dir"; then echo "kvpod: cannot create $dir" >&2; exit 1; fi',
            'cd "$dir" || exit 1',
            f'setsid {fio} </dev/null >/dev/null 2>"$dir/{ERR_FILE}" &',
            f'echo $! > "$dir/{PID_FILE}"',
            "sleep 1",
            f'if ! kill -0 "$(cat "$dir/{PID_FILE}")" 2>/dev/null; then',
            f'  echo "kvpod: fio did not start:" >&2; cat "$dir/{ERR_FILE}" >&2; rm -rf "$dir"; exit 1',
            "fi",
            'paths | sed "s/^/path /"',
        ]
    )


def wait_script(job: DrillJob, want: str, timeout_s: int, addresses: tuple[str, ...] | None = None) -> str:
    """Wait until the round's paths are down (``want="down"``: no live controller through a dropped portal) or
    the paths through ``addresses`` (default: every planned one) are live (``want="back"``); print
    ``waited=<n>ms`` (node clock) and ``reached=1|0``."""
    if addresses is None:
        addresses = job.dropped if want == "down" else job.planned
    if want == "down":
        test = " && ".join(f"! live_on {shell_word(a)}" for a in addresses) or "true"
    else:
        test = " && ".join(f"live_on {shell_word(a)}" for a in addresses) or "true"
    return "\n".join(
        [
            *_paths_function(job.subsystem_nqn),
            "start=$(date +%s%N)",
            "reached=0",
            "while :; do",
            f"  if {test}; then reached=1; break; fi",
            f"  [ $(( ($(date +%s%N) - start) / 1000000 )) -ge {int(timeout_s) * 1000} ] && break",
            "  sleep 0.2",
            "done",
            'echo "waited=$(( ($(date +%s%N) - start) / 1000000 ))ms"',
            'echo "reached=$reached"',
            'paths | sed "s/^/path /"',
        ]
    )


def finish_script(job: DrillJob, stop_s: int = STOP_TIMEOUT_S) -> str:
    """Stop fio (TERM: it reports what it did), print its JSON and error output, the mount's options, then remove
    the directory. ``stopped=0``: fio did not stop within ``stop_s`` (I/O stuck), it was killed."""
    return "\n".join(
        [
            f"mnt={shell_word(job.mount)}",
            f"dir={shell_word(job.directory)}",
            f'pid=$(cat "$dir/{PID_FILE}" 2>/dev/null)',
            "stopped=1",
            'if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then',
            "  i=0",
            f'  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt {int(stop_s) * 5} ]; do sleep 0.2; i=$((i+1)); done',
            '  if kill -0 "$pid" 2>/dev/null; then stopped=0; kill -KILL "$pid" 2>/dev/null; fi',
            "fi",
            'echo "stopped=$stopped"',
            'echo "options=$(findmnt -no OPTIONS --mountpoint "$mnt")"',
            f'echo "errors-begin"; tail -n 20 "$dir/{ERR_FILE}" 2>/dev/null; echo "errors-end"',
            f'cat "$dir/{RESULT_FILE}" 2>/dev/null',
            'rm -rf "$dir"',
        ]
    )


def cleanup_script(directory: str, stop_s: int = 15) -> str:
    """Stop a drill's fio still running in ``directory`` and remove the directory (after an interruption)."""
    return "\n".join(
        [
            f"dir={shell_word(directory)}",
            f'pid=$(cat "$dir/{PID_FILE}" 2>/dev/null)',
            'if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then',
            "  i=0",
            f'  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt {int(stop_s) * 5} ]; do sleep 0.2; i=$((i+1)); done',
            '  kill -KILL "$pid" 2>/dev/null',
            "fi",
            'rm -rf "$dir"',
        ]
    )


# -- the portal on a linux-nvmet target -------------------------------------------------------------------


def _links_file(port_id: int, state_dir: str) -> str:
    return f"{state_dir}/drill-port-{int(port_id)}.links"


def take_away_script(port_ids: list[int], root: str = NVMET_ROOT, state_dir: str = STATE_DIR) -> str:
    """Unlink each port from every subsystem it serves; the links are recorded first (``/run/kvpod``), so that
    :func:`restore_script` puts back exactly those, also after kvpod itself was interrupted. Prints the
    subsystems taken away, ``<port> <nqn>`` per line."""
    lines = [f"mkdir -p {shell_word(state_dir)}"]
    for pid in port_ids:
        port = f"{root}/ports/{int(pid)}"
        lines += [
            f"port={shell_word(port)}",
            f"links={shell_word(_links_file(pid, state_dir))}",
            '[ -d "$port" ] || { echo "kvpod: no nvmet port $port on the target" >&2; exit 1; }',
            '[ -s "$links" ] || ls "$port/subsystems" > "$links"',
            "while read -r s; do",
            f'  if [ -L "$port/subsystems/$s" ]; then rm "$port/subsystems/$s" || exit 1; fi; echo "{int(pid)} $s"',
            'done < "$links"',
        ]
    return "\n".join(lines)


def restore_script(port_ids: list[int], root: str = NVMET_ROOT, state_dir: str = STATE_DIR) -> str:
    """Link each port again to the subsystems :func:`take_away_script` recorded, then forget the record."""
    lines = []
    for pid in port_ids:
        port = f"{root}/ports/{int(pid)}"
        lines += [
            f"port={shell_word(port)}",
            f"links={shell_word(_links_file(pid, state_dir))}",
            'if [ -f "$links" ]; then',
            "  while read -r s; do",
            f'    if [ -d {shell_word(root)}/subsystems/"$s" ] && [ ! -L "$port/subsystems/$s" ]; then',
            f'      ln -s {shell_word(root)}/subsystems/"$s" "$port/subsystems/$s" || exit 1',
            "    fi",
            '  done < "$links"',
            '  rm -f "$links"',
            "fi",
        ]
    return "\n".join(lines)


# -- what the nodes answered ------------------------------------------------------------------------------


def parse_values(lines: list[str]) -> dict[str, str]:
    """``key=value`` lines (the first of each key), and ``path`` lines under ``paths``."""
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and re.fullmatch(r"[a-z-]+", key) and key not in values:
            values[key] = value.strip()
    return values


def path_lines(lines: list[str]) -> list[str]:
    return [line.strip()[5:] for line in lines if line.startswith("path ")]


def waited_seconds(lines: list[str]) -> tuple[float | None, bool]:
    """``(seconds, reached)`` from :func:`wait_script`'s answer."""
    values = parse_values(lines)
    ms = values.get("waited", "").removesuffix("ms")
    return (int(ms) / 1000 if ms.isdigit() else None), values.get("reached") == "1"


@dataclass(frozen=True)
class FioOutcome:
    """What fio reported: bytes written and verified, errors, the longest latency of one I/O."""

    write_bytes: int
    verified_bytes: int
    io_errors: int
    first_error: int  # errno of the first I/O error (0: none)
    verify_error: str | None  # fio's verification failure, as fio said it
    error: int  # fio's job error (errno): a fatal error that stopped it
    max_latency_s: float


def parse_fio(text: str, stderr: str = "") -> FioOutcome:
    """fio's JSON of the drill job (and what it printed on stderr); ValueError when it is not there."""
    doc = _find_json(text)
    job = next((j for j in doc.get("jobs", []) if j.get("jobname") == "drill"), None)
    if job is None:
        raise ValueError("fio reported no drill job")
    write, read = job.get("write") or {}, job.get("read") or {}
    latency = max(
        int((write.get("lat_ns") or {}).get("max") or 0),
        int((read.get("lat_ns") or {}).get("max") or 0),
    )
    verify_lines = [line.strip() for line in stderr.splitlines() if "verify" in line.lower() or "crc" in line.lower()]
    error = int(job.get("error") or 0)
    verify_error = None
    if verify_lines or error == 84:  # EILSEQ: fio's verification failure
        verify_error = "; ".join(verify_lines[:3]) or f"fio stopped with error {error} (a verification failure)"
    return FioOutcome(
        write_bytes=int(write.get("io_bytes") or 0),
        verified_bytes=int(read.get("io_bytes") or 0),
        io_errors=int(job.get("total_err") or 0),
        first_error=int(job.get("first_error") or 0),
        verify_error=verify_error,
        error=error,
        max_latency_s=round(latency / 1e9, 3),
    )


def split_finish(lines: list[str]) -> tuple[dict[str, str], str, str]:
    """:func:`finish_script`'s answer: its values, fio's error output, and the rest (fio's JSON)."""
    values: dict[str, str] = {}
    errors: list[str] = []
    rest: list[str] = []
    inside = False
    for line in lines:
        if line == "errors-begin":
            inside = True
        elif line == "errors-end":
            inside = False
        elif inside:
            errors.append(line)
        elif not rest and re.fullmatch(r"(stopped|options)=.*", line):
            key, _, value = line.partition("=")
            values[key] = value.strip()
        else:
            rest.append(line)
    return values, "\n".join(errors), "\n".join(rest)


# -- judging ----------------------------------------------------------------------------------------------


@dataclass
class NodeDrill:
    """One node in one round: the figures and the verdict."""

    node: str
    portal: str  # the round's label
    status: str  # passed | failed | unreachable
    io_errors: int | None = None
    verify: str | None = None  # "clean", or what fio said
    max_stall_s: float | None = None
    paths_before: str | None = None  # "2/2 live"
    down_after_s: float | None = None  # until the paths through the portal dropped
    back_after_s: float | None = None  # from the portal's return until every planned path was live
    paths_back: bool | None = None
    mount_rw: bool | None = None
    written_bytes: int | None = None
    verified_bytes: int | None = None
    reasons: list[str] = field(default_factory=list)


def live_addresses(paths: list[str], planned: tuple[str, ...]) -> list[str]:
    """The planned portal addresses with a live controller, from ``<state> <address>`` lines."""

    def live(address: str) -> bool:
        return any(
            state == "live" and re.match(rf"traddr={re.escape(address)}(,|$)", where)
            for state, _, where in (line.partition(" ") for line in paths)
        )

    return [a for a in planned if live(a)]


def live_count(paths: list[str], planned: tuple[str, ...]) -> str:
    return f"{len(live_addresses(paths, planned))}/{len(planned)} live"


def judge(
    node: str,
    portal: str,
    job: DrillJob,
    max_stall_s: float,
    *,
    start: list[str],
    down: list[str] | None,
    back: list[str] | None,
    finish: list[str],
    down_timeout_s: int = DROP_TIMEOUT_S,
) -> NodeDrill:
    """One node's verdict from the answers of its scripts (pure): each reason it fails is named."""
    result = NodeDrill(node, portal, "passed")
    result.paths_before = live_count(path_lines(start), job.planned)
    if result.paths_before != f"{len(job.planned)}/{len(job.planned)} live":
        result.reasons.append(f"only {result.paths_before} before the portal went away")
    if down is not None:
        result.down_after_s, reached = waited_seconds(down)
        if not reached:
            result.reasons.append(f"the path through {portal} stayed live {down_timeout_s} s: it was not taken away")
    if back is not None:
        result.back_after_s, reached = waited_seconds(back)
        now = live_count(path_lines(back), job.planned)
        result.paths_back = reached and now == f"{len(job.planned)}/{len(job.planned)} live"
        if not result.paths_back:
            result.reasons.append(f"paths not back: {now} after {result.back_after_s or 0:g} s")
    values, stderr, text = split_finish(finish)
    options = values.get("options", "")
    result.mount_rw = options.split(",")[0] == "rw"
    if not result.mount_rw:
        result.reasons.append(f"{job.mount} is not mounted read-write ({options or 'not mounted'})")
    try:
        fio = parse_fio(text, stderr)
    except ValueError as exc:
        result.reasons.append(f"fio's report not found ({exc}): {stderr.strip()[-300:]}".rstrip(": "))
    else:
        result.io_errors, result.max_stall_s = fio.io_errors, fio.max_latency_s
        result.written_bytes, result.verified_bytes = fio.write_bytes, fio.verified_bytes
        result.verify = fio.verify_error or ("clean" if fio.verified_bytes else "nothing verified")
        if fio.io_errors:
            result.reasons.append(f"{fio.io_errors} I/O error(s) (first: errno {fio.first_error})")
        if fio.verify_error:
            result.reasons.append(f"verification failed: {fio.verify_error}")
        elif not fio.verified_bytes:
            result.reasons.append("fio verified nothing")
        elif fio.error:
            result.reasons.append(f"fio stopped with error {fio.error}")
        if fio.max_latency_s > max_stall_s:
            result.reasons.append(f"I/O stalled {fio.max_latency_s:g} s (threshold {max_stall_s:g} s)")
    if values.get("stopped") == "0":
        result.reasons.append(f"fio did not stop within {STOP_TIMEOUT_S} s (I/O stuck): it was killed")
    if result.reasons:
        result.status = "failed"
    return result


def unanswered(node: str, portal: str, status: str, error: str) -> NodeDrill:
    """A node whose step failed or that could not be reached: failed, with the reason."""
    return NodeDrill(node, portal, "unreachable" if status == "unreachable" else "failed", reasons=[error])


# -- the report -------------------------------------------------------------------------------------------


@dataclass
class DrillReport:
    pod: str
    scenario: str
    duration_s: int
    max_stall_s: float
    rounds: list[str]
    nodes: list[NodeDrill]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.status == "passed" for n in self.nodes)

    def as_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "scenario": self.scenario,
            "ok": self.ok,
            "duration_s": self.duration_s,
            "max_stall_s": self.max_stall_s,
            "rounds": self.rounds,
            "job": {
                "size_bytes": SIZE_BYTES,
                "block_size": BLOCK_SIZE,
                "iodepth": IODEPTH,
                "rw": "randwrite",
                "verify": "crc32c",
                "verify_backlog": VERIFY_BACKLOG,
                "direct": True,
            },
            "results": [asdict(n) for n in self.nodes],
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2, sort_keys=True) + "\n"


def describe_round(rnd: Round) -> str:
    """What the round does, for the operator."""
    ports = ", ".join(f"{p.iom}/{p.port} ({p.address})" for p in rnd.ports)
    return f"{rnd.label}: {ports}; nodes {', '.join(rnd.nodes)}; {format_bytes(SIZE_BYTES)} verified fio per node"
