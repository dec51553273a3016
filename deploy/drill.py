"""``kvpod drill``: what the nodes answered, the judging of each node and the report (pure).

The rounds and each node's fio job are :mod:`deploy.drill_plan` (which tells what a drill does and when a node
passes), the scripts run on nodes and targets :mod:`deploy.drill_scripts`; every name of both is importable
from here. :mod:`deploy.drill_run` runs them; the CLI (``deploy.cli.drill``) prints.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deploy.bench import _find_json, format_bytes
from deploy.drill_plan import (
    BLOCK_SIZE,
    DEFAULT_DURATION,
    DEFAULT_MAX_STALL,
    DRILL_DIRNAME,
    DRILL_FILE,
    DROP_TIMEOUT_S,
    ERR_FILE,
    IODEPTH,
    KERNEL_KATO_S,
    OPERATOR_TIMEOUT_S,
    PID_FILE,
    RESULT_FILE,
    SCENARIOS,
    SETTLE_S,
    SIZE_BYTES,
    STATE_DIR,
    STOP_TIMEOUT_S,
    TAIL_S,
    VERIFY_BACKLOG,
    DrillJob,
    Round,
    check_timing,
    drill_job,
    fio_argv,
    fio_runtime,
    plan_rounds,
    portal_names,
)
from deploy.drill_scripts import (
    cleanup_script,
    finish_script,
    restore_script,
    start_script,
    take_away_script,
    wait_script,
)
from deploy.names import KIB, MIB

__all__ = [  # the rounds, the jobs and the scripts, re-exported, and the answers, the judging and the report
    "BLOCK_SIZE",
    "DEFAULT_DURATION",
    "DEFAULT_MAX_STALL",
    "DRILL_DIRNAME",
    "DRILL_FILE",
    "DROP_TIMEOUT_S",
    "ERR_FILE",
    "IODEPTH",
    "KERNEL_KATO_S",
    "KIB",
    "MIB",
    "OPERATOR_TIMEOUT_S",
    "PID_FILE",
    "RESULT_FILE",
    "SCENARIOS",
    "SETTLE_S",
    "SIZE_BYTES",
    "STATE_DIR",
    "STOP_TIMEOUT_S",
    "TAIL_S",
    "VERIFY_BACKLOG",
    "DrillJob",
    "DrillReport",
    "FioOutcome",
    "NodeDrill",
    "Round",
    "check_timing",
    "cleanup_script",
    "describe_round",
    "drill_job",
    "finish_script",
    "fio_argv",
    "fio_runtime",
    "judge",
    "live_addresses",
    "live_count",
    "parse_fio",
    "parse_values",
    "path_lines",
    "plan_rounds",
    "portal_names",
    "restore_script",
    "split_finish",
    "start_script",
    "take_away_script",
    "unanswered",
    "wait_script",
    "waited_seconds",
]

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
