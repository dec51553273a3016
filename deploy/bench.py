"""``kvpod bench``'s answer and report: fio's figures per node, the aggregates per enclosure and pod against the
reference architecture, the outliers (pure).

The job on the node (input, fio's arguments, the scripts, the safety rules) is :mod:`deploy.bench_job`; its
names are importable from here too. Nothing here prints; the CLI (``deploy.cli.bench``) does.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.bench_job import (
    BENCH_DIRNAME,
    BENCH_FILE,
    BLOCK_SIZE,
    DEFAULT_RUNTIME,
    DEFAULT_SIZE,
    IODEPTH,
    NUMJOBS,
    PIDS_FILE,
    RESULT_FILE,
    BenchJob,
    bench_jobs,
    bench_script,
    check_runtime,
    cleanup_script,
    fio_argv,
    format_bytes,
    install_fio_script,
    lmcache_dir,
    parse_size,
    size_refusal,
)
from deploy.names import GIB, KIB, MIB, TIB
from deploy.plan import NodePlan, Plan

__all__ = [  # the job's names, re-exported, and the report's
    "BENCH_DIRNAME", "BENCH_FILE", "BLOCK_SIZE", "DEFAULT_RUNTIME", "DEFAULT_SIZE", "ENCLOSURE_GBPS", "GIB", "IODEPTH",
    "KIB", "MIB", "NODE_LINK_GBPS", "NUMJOBS", "OUTLIER_SHARE", "PIDS_FILE", "REFERENCE", "RESULT_FILE", "TIB",
    "Aggregate", "BenchJob", "BenchReport", "NodeBench", "Phase", "aggregates", "bench_jobs", "bench_script",
    "build_report", "check_runtime", "cleanup_script", "fio_argv", "flag_outliers", "format_bytes",
    "install_fio_script", "lmcache_dir", "node_result", "parse_fio", "parse_size", "size_refusal",
]  # fmt: skip

# The reference figures: OpenFlex Data24 KV-cache offload architecture (100 GbE per node, 150 GB/s per
# enclosure), decimal GB/s as network links are counted.
NODE_LINK_GBPS = 12.5  # 100 GbE / 8
ENCLOSURE_GBPS = 150.0
REFERENCE = (
    "OpenFlex Data24 KV-cache offload architecture: 100 GbE per node (12.5 GB/s theoretical), 150 GB/s per enclosure"
)
OUTLIER_SHARE = 0.5  # a node below this share of the median of its peers is flagged


# -- fio's answer -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One direction of the test (the whole group of jobs)."""

    gbps: float  # GB/s, 10^9 bytes per second
    iops: float
    io_bytes: int
    clat_p50_ms: float | None
    clat_p99_ms: float | None


def _find_json(text: str) -> dict:
    """The fio JSON document in ``text`` (fio may print notes before it)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"^\{", text, re.MULTILINE):
        try:
            doc, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "jobs" in doc:
            return doc
    raise ValueError("no fio JSON in the output")


def _phase(stats: dict) -> Phase:
    bw = stats.get("bw_bytes")
    bytes_per_s = float(bw) if bw is not None else float(stats.get("bw", 0)) * KIB  # bw is KiB/s
    pct = (stats.get("clat_ns") or {}).get("percentile") or {}

    def ms(key: str) -> float | None:
        value = pct.get(key)
        return round(value / 1e6, 3) if value is not None else None

    return Phase(
        gbps=round(bytes_per_s / 1e9, 6),  # kB/s resolution: a slow lab node stays above 0
        iops=round(float(stats.get("iops", 0.0)), 1),
        io_bytes=int(stats.get("io_bytes", 0)),
        clat_p50_ms=ms("50.000000"),
        clat_p99_ms=ms("99.000000"),
    )


def parse_fio(text: str) -> tuple[Phase, Phase]:
    """``(write, read)`` from fio's JSON output of :func:`fio_argv`'s job; ValueError when it is not that."""
    doc = _find_json(text)
    groups = {j.get("jobname"): j for j in doc.get("jobs", [])}
    missing = [name for name in ("write", "read") if name not in groups]
    if missing:
        raise ValueError(f"fio reported no {' and no '.join(missing)} job")
    for name in ("write", "read"):
        if groups[name].get("error"):
            raise ValueError(f"fio's {name} job ended with error {groups[name]['error']}")
    return _phase(groups["write"]["write"]), _phase(groups["read"]["read"])


# -- the report -------------------------------------------------------------------------------------------


@dataclass
class NodeBench:
    node: str
    enclosure: str
    status: str  # ok | failed | unreachable
    write: Phase | None = None
    read: Phase | None = None
    error: str | None = None
    outlier: list[str] = field(default_factory=list)  # "write" / "read": below OUTLIER_SHARE of the median
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Aggregate:
    name: str  # an enclosure, or "pod"
    nodes: int  # nodes measured
    write_gbps: float
    read_gbps: float
    reference_gbps: float


@dataclass
class BenchReport:
    pod: str
    size_bytes: int
    runtime_s: int
    nodes: list[NodeBench]
    aggregates: list[Aggregate]
    run_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(n.status == "ok" for n in self.nodes)

    def as_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "ok": self.ok,
            "job": {
                "size_bytes": self.size_bytes,
                "runtime_s": self.runtime_s,
                "block_size": BLOCK_SIZE,
                "numjobs": NUMJOBS,
                "iodepth": IODEPTH,
                "ioengine": "libaio",
                "direct": True,
            },
            "reference": {
                "source": REFERENCE,
                "node_link_gbps": NODE_LINK_GBPS,
                "enclosure_gbps": ENCLOSURE_GBPS,
            },
            "nodes": {
                n.node: {
                    "enclosure": n.enclosure,
                    "status": n.status,
                    "write": asdict(n.write) if n.write else None,
                    "read": asdict(n.read) if n.read else None,
                    "error": n.error,
                    "outlier": n.outlier,
                    "notes": n.notes,
                }
                for n in self.nodes
            },
            "aggregate": {a.name: asdict(a) for a in self.aggregates},
        }


def flag_outliers(nodes: list[NodeBench], share: float = OUTLIER_SHARE) -> None:
    """Mark, per direction, nodes below ``share`` of the median of the measured nodes (two or more)."""
    measured = [n for n in nodes if n.status == "ok" and n.write and n.read]
    if len(measured) < 2:
        return
    for direction in ("write", "read"):
        median = statistics.median(getattr(n, direction).gbps for n in measured)
        for n in measured:
            if getattr(n, direction).gbps < share * median:
                n.outlier.append(direction)


def aggregates(nodes: list[NodeBench]) -> list[Aggregate]:
    """Sum of the measured nodes per enclosure, and for the pod when it spans several enclosures."""
    measured = [n for n in nodes if n.status == "ok" and n.write and n.read]
    out = []
    enclosures = sorted({n.enclosure for n in nodes})
    for enc in enclosures:
        mine = [n for n in measured if n.enclosure == enc]
        out.append(
            Aggregate(
                enc,
                len(mine),
                round(sum(n.write.gbps for n in mine), 6),  # type: ignore[union-attr]
                round(sum(n.read.gbps for n in mine), 6),  # type: ignore[union-attr]
                ENCLOSURE_GBPS,
            )
        )
    if len(enclosures) > 1:
        out.append(
            Aggregate(
                "pod",
                len(measured),
                round(sum(a.write_gbps for a in out), 6),
                round(sum(a.read_gbps for a in out), 6),
                ENCLOSURE_GBPS * len(enclosures),
            )
        )
    return out


def node_result(node: NodePlan, job: BenchJob, status: str, stdout: str, error: str | None) -> NodeBench:
    """One node's result from what the runner reported (pure)."""
    result = NodeBench(node.name, node.namespace.enclosure, status, error=error)
    if status != "ok":
        return result
    try:
        result.write, result.read = parse_fio(stdout)
    except ValueError as exc:
        result.status, result.error = "failed", f"fio output not understood: {exc}"
        return result
    if result.write.io_bytes < job.file_bytes:
        result.notes.append(
            f"the write phase covered {format_bytes(result.write.io_bytes)} of the {format_bytes(job.file_bytes)} "
            "file: the read figure includes unwritten space"
        )
    return result


def build_report(plan: Plan, size_bytes: int, runtime_s: int, nodes: list[NodeBench], run_dir=None) -> BenchReport:
    flag_outliers(nodes)
    return BenchReport(plan.pod, size_bytes, runtime_s, nodes, aggregates(nodes), run_dir)
