"""``kvpod bench``: the reference architecture's storage test on every node's KV-cache mount.

fio with O_DIRECT, 128 KiB blocks, 4 jobs at iodepth 32 (libaio): sequential write (KV eviction), then
sequential read (KV recall), each for ``runtime`` seconds (time based), on one file in a dedicated
directory of the mount (``<mount>/.kvpod-bench/``), never on the raw device. The four jobs share the file,
each on its own quarter, so the file is exactly ``size`` bytes.

Safety, on the node:

- the file is written only when the path is a mountpoint (``mountpoint -q``), never into the filesystem
  below an unmounted mount;
- the file must fit beside LMCache's disk budget: ``size <= free - (budget - what LMCache already holds)``;
- the remote script removes its directory when it ends, also when it is interrupted (``trap`` on EXIT, HUP,
  INT and TERM), and kvpod stops a benchmark it started (and removes the directory) when it is interrupted
  itself.

Everything here is pure (fio's answer and the report: :mod:`deploy.bench`); :mod:`deploy.bench_run` runs the
nodes in parallel through :mod:`deploy.engine`. Nothing here prints; the CLI (``deploy.cli.bench``) does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from deploy.errors import InputError
from deploy.names import GIB, KIB, MIB, TIB
from deploy.plan import NodePlan

BLOCK_SIZE = 128 * KIB
NUMJOBS = 4
IODEPTH = 32
DEFAULT_SIZE = "1G"
DEFAULT_RUNTIME = 30
BENCH_DIRNAME = ".kvpod-bench"
BENCH_FILE = "fio.dat"
RESULT_FILE = "fio.json"
PIDS_FILE = "pids"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB}


# -- input ------------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``64M``, ``1G``, ``1GiB``, ``512k``, ``1.5G`` or plain bytes → bytes (binary units, as fio counts).

    Raises :class:`InputError` for anything else, or for less than one block per job.
    """
    m = _SIZE.match(text or "")
    if not m:
        raise InputError(f"--size {text!r}: expected a size like 64M, 1G or 1GiB (binary units)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    minimum = NUMJOBS * BLOCK_SIZE
    if value < minimum:
        raise InputError(
            f"--size {text!r}: at least {format_bytes(minimum)} ({NUMJOBS} jobs x one {BLOCK_SIZE // KIB} KiB block)"
        )
    return value


def check_runtime(seconds: int) -> int:
    if seconds < 1:
        raise InputError(f"--runtime {seconds}: expected a positive number of seconds")
    return seconds


def format_bytes(n: float) -> str:
    for unit, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


# -- the job on the node ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchJob:
    """One node's benchmark: the mount, the bytes to write, seconds per phase, and O_DIRECT."""

    mount: str
    size_bytes: int
    runtime_s: int
    direct: bool = True

    @property
    def directory(self) -> str:
        return f"{self.mount.rstrip('/')}/{BENCH_DIRNAME}"

    @property
    def file(self) -> str:
        return f"{self.directory}/{BENCH_FILE}"

    @property
    def per_job_bytes(self) -> int:
        """Each job's quarter of the file, a whole number of blocks."""
        return max(BLOCK_SIZE, self.size_bytes // NUMJOBS // BLOCK_SIZE * BLOCK_SIZE)

    @property
    def file_bytes(self) -> int:
        """What the file takes on the mount."""
        return self.per_job_bytes * NUMJOBS

    @property
    def timeout_s(self) -> int:
        """How long kvpod waits for the node's answer: both phases, plus time to lay out the file and start."""
        return 2 * self.runtime_s + 600


def fio_argv(job: BenchJob, output: str | None = None) -> list[str]:
    """The fio command: a write group, then (``stonewall``) a read group, each reported as one (pure).

    ``output``: where fio writes its JSON (default: stdout).
    """
    argv = [
        "fio",
        "--output-format=json",
        *([f"--output={output}"] if output else []),
        "--eta=never",
        f"--filename={job.file.replace(':', chr(92) + ':')}",  # fio separates file names with ':'
        f"--direct={1 if job.direct else 0}",
        "--ioengine=libaio",
        f"--bs={BLOCK_SIZE // KIB}k",
        f"--iodepth={IODEPTH}",
        f"--numjobs={NUMJOBS}",
        f"--size={job.per_job_bytes}",
        f"--offset_increment={job.per_job_bytes}",  # job i writes and reads its own quarter of the file
        f"--runtime={job.runtime_s}",
        "--time_based",
        "--group_reporting",
        "--name=write",
        "--rw=write",
        "--name=read",
        "--stonewall",
        "--rw=read",
    ]
    return argv


def bench_script(job: BenchJob, mountpoint_check: str = "mountpoint -q") -> str:
    """The sh script run on the node: refuse an unmounted path, run fio, print its JSON, always clean up.

    The directory is removed on every exit (EXIT trap); HUP, INT and TERM stop fio first. fio runs in the
    background so that ``wait`` returns as soon as a signal arrives. ``pids`` records the script's and
    fio's process ids for kvpod's own cleanup (:func:`cleanup_script`). Exit 3: not a mountpoint.
    ``mountpoint_check`` is the command that tests the mount (replaceable in tests).
    """
    fio = " ".join(shlex.quote(a) for a in fio_argv(job, output=f"{job.directory}/{RESULT_FILE}"))
    return "\n".join(
        [
            f"mnt={shlex.quote(job.mount)}",
            f"dir={shlex.quote(job.directory)}",
            "pid=",
            f'if ! {mountpoint_check} "$mnt"; then',
            '  echo "kvpod: $mnt is not mounted: refusing to write a benchmark file into the filesystem below it" >&2',
            "  exit 3",
            "fi",
            f'if [ -f "$dir/{PIDS_FILE}" ]; then',
            f'  for p in $(cat "$dir/{PIDS_FILE}"); do',
            f'    if [ "$p" != "$$" ] && grep -q {BENCH_DIRNAME} "/proc/$p/cmdline" 2>/dev/null; then',
            '      echo "kvpod: another benchmark is running on $mnt (pid $p)" >&2; exit 1',
            "    fi",
            "  done",
            "fi",
            "cleanup() {",
            '  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi',
            '  rm -rf "$dir"',
            "}",
            "trap cleanup EXIT",
            "trap 'exit 129' HUP",
            "trap 'exit 130' INT",
            "trap 'exit 143' TERM",
            'rm -rf "$dir" && mkdir -m 700 "$dir" || { echo "kvpod: cannot create $dir" >&2; exit 1; }',
            f"{fio} >&2 &",
            "pid=$!",
            f'echo "$$ $pid" > "$dir/{PIDS_FILE}"',
            'wait "$pid"; rc=$?; pid=',
            'if [ "$rc" -ne 0 ]; then',
            f'  echo "kvpod: fio failed (exit $rc)" >&2; cat "$dir/{RESULT_FILE}" >&2 2>/dev/null; exit 1',
            "fi",
            f'cat "$dir/{RESULT_FILE}"',
        ]
    )


def cleanup_script(directory: str, wait_s: int = 15) -> str:
    """Stop a benchmark still running in ``directory`` (its script and fio), then remove the directory."""
    return "\n".join(
        [
            f"dir={shlex.quote(directory)}",
            "stopped=",
            f'if [ -f "$dir/{PIDS_FILE}" ]; then',
            f'  for p in $(cat "$dir/{PIDS_FILE}"); do',
            f'    if grep -q {BENCH_DIRNAME} "/proc/$p/cmdline" 2>/dev/null && kill "$p" 2>/dev/null; then',
            "      stopped=1",
            "    fi",
            "  done",
            "fi",
            "i=0",
            "# the script's own trap removes the directory once fio has stopped",
            f'while [ -n "$stopped" ] && [ -d "$dir" ] && [ "$i" -lt {int(wait_s) * 2} ]; do',
            "  sleep 0.5; i=$((i+1))",
            "done",
            'rm -rf "$dir"',
        ]
    )


def install_fio_script() -> str:
    """Install fio with apt when it is missing; a clear message when that is impossible (offline node)."""
    apt = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio"
    return (
        f"command -v fio >/dev/null 2>&1 || {{ {apt} >&2 || {{ apt-get update -q >&2 && {apt} >&2; }}; }} || "
        '{ echo "kvpod: fio is not installed and apt-get install -y fio failed (an offline node?): '
        'install fio on the node, or add it to its image" >&2; exit 1; }'
    )


def size_refusal(job: BenchJob, space: dict[str, Any], budget_bytes: int) -> str | None:
    """Why the file may not be written (pure), or None.

    ``space`` is :class:`deploy.facts.bench.KvcacheSpace`: ``avail_bytes`` free on the mount,
    ``lmcache_bytes`` LMCache already holds, ``bench_bytes`` a leftover benchmark directory (removed
    before the run, so its space counts as free). The part of LMCache's disk budget it has not used yet
    stays free.
    """
    avail = int(space["avail_bytes"]) + int(space.get("bench_bytes") or 0)
    used = int(space.get("lmcache_bytes") or 0)
    reserved = max(0, budget_bytes - used)
    allowed = avail - reserved
    if job.file_bytes <= allowed:
        return None
    return (
        f"--size {format_bytes(job.file_bytes)} does not fit on {job.mount}: {format_bytes(avail)} free, of which "
        f"{format_bytes(reserved)} stay free for LMCache's disk budget ({format_bytes(budget_bytes)}, "
        f"{format_bytes(used)} used); at most {format_bytes(max(0, allowed))} is left for the benchmark"
    )


# -- running it -------------------------------------------------------------------------------------------


def lmcache_dir(node: NodePlan) -> str:
    """LMCache's directory on the node: the disk-tier root holding every engine's directory (``<mount>/lmcache/``)."""
    return node.lmcache_root + "/"


def bench_jobs(nodes: list[NodePlan], size_bytes: int, runtime_s: int) -> dict[str, BenchJob]:
    return {n.name: BenchJob(n.mount.path, size_bytes, runtime_s) for n in nodes}
