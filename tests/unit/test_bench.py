"""``kvpod bench`` without a node: the fio command, the remote script run with ``sh`` against a temp
directory (refusal, cleanup on success and when killed), real fio output parsed, the size guard, the
aggregates and the outlier flag."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from deploy.bench import (
    BENCH_DIRNAME,
    BLOCK_SIZE,
    ENCLOSURE_GBPS,
    GIB,
    MIB,
    BenchJob,
    NodeBench,
    Phase,
    aggregates,
    bench_script,
    build_report,
    check_runtime,
    cleanup_script,
    fio_argv,
    flag_outliers,
    install_fio_script,
    lmcache_dir,
    node_result,
    parse_fio,
    parse_size,
    size_refusal,
)
from deploy.errors import InputError
from deploy.loader import load_spec
from deploy.plan import build_plan, limited_nodes
from tests.conftest import LAB, REFERENCE

DATA = Path(__file__).parent / "data"
FIO_JSON = (DATA / "fio-3.33-kvpod-bench.json").read_text()
needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install -y fio)")


def option(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


# -- input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("64M", 64 * MIB),
        ("64m", 64 * MIB),
        ("64MiB", 64 * MIB),
        ("1G", GIB),
        ("1GiB", GIB),
        ("1gb", GIB),
        ("1.5G", 3 * GIB // 2),
        ("512K", 512 * 1024),
        ("1073741824", GIB),
        (" 2 G ", 2 * GIB),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "1X", "1 GB extra", "0", "256K", "abc"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--size"):
        parse_size(text)


def test_runtime_and_limit_are_checked() -> None:
    plan = build_plan(load_spec(LAB))
    assert check_runtime(3) == 3
    with pytest.raises(InputError, match="--runtime 0"):
        check_runtime(0)
    assert [n.name for n in limited_nodes(plan, None)] == ["node1", "node2"]
    assert [n.name for n in limited_nodes(plan, ["node2"])] == ["node2"]
    with pytest.raises(InputError, match=r"unknown node node9 \(valid: node1, node2\)"):
        limited_nodes(plan, ["node2", "node9"])


# -- the fio command --------------------------------------------------------------------------------------


def test_fio_command_is_the_reference_test() -> None:
    """O_DIRECT, 128 KiB, 4 jobs x iodepth 32 on libaio, time based; write, then (stonewall) read; JSON."""
    job = BenchJob("/mnt/kvcache", GIB, 30)
    argv = fio_argv(job)
    assert argv[0] == "fio"
    assert option(argv, "output-format") == "json"
    assert option(argv, "direct") == "1"
    assert option(argv, "bs") == "128k"
    assert option(argv, "numjobs") == "4"
    assert option(argv, "iodepth") == "32"
    assert option(argv, "ioengine") == "libaio"
    assert option(argv, "runtime") == "30"
    assert "--time_based" in argv and "--group_reporting" in argv
    # one file inside the mount's bench directory, never the device; each job on its own quarter
    assert option(argv, "filename") == "/mnt/kvcache/.kvpod-bench/fio.dat"
    assert option(argv, "size") == option(argv, "offset_increment") == str(GIB // 4)
    assert job.file_bytes == GIB
    # the write group first, the read group after it (stonewall)
    tail = argv[argv.index("--name=write") :]
    assert tail == ["--name=write", "--rw=write", "--name=read", "--stonewall", "--rw=read"]
    assert not any("/dev/" in a for a in argv)


def test_fio_command_options() -> None:
    job = BenchJob("/srv/kv:cache/", 10 * MIB + 5, 3, direct=False)
    argv = fio_argv(job, output="/srv/out.json")
    assert option(argv, "direct") == "0"
    assert option(argv, "output") == "/srv/out.json"
    assert option(argv, "filename") == "/srv/kv\\:cache/.kvpod-bench/fio.dat"  # ':' separates fio file names
    per_job = int(option(argv, "size"))
    assert per_job % BLOCK_SIZE == 0 and per_job * 4 <= 10 * MIB + 5


# -- the remote script, run with sh -----------------------------------------------------------------------


def fs_type(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout.strip()


def local_job(tmp_path: Path, runtime: int = 1, size: int = 4 * MIB) -> BenchJob:
    """A job on ``tmp_path``; without O_DIRECT where the temp filesystem refuses it (tmpfs)."""
    return BenchJob(str(tmp_path), size, runtime, direct=fs_type(tmp_path) != "tmpfs")


def test_script_is_valid_sh() -> None:
    for text in (bench_script(BenchJob("/mnt/kv cache", GIB, 30)), cleanup_script("/mnt/x/.kvpod-bench")):
        result = subprocess.run(["sh", "-n", "-c", text], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert "mountpoint -q" in bench_script(BenchJob("/mnt/kvcache", GIB, 30))


def test_script_refuses_a_path_that_is_not_a_mountpoint(tmp_path: Path) -> None:
    """With the real ``mountpoint -q``: a temp directory is not a mountpoint; nothing is written."""
    (tmp_path / "keep.txt").write_text("x")
    result = subprocess.run(["sh", "-c", bench_script(local_job(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 3
    assert f"kvpod: {tmp_path} is not mounted" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_script_refuses_with_a_substituted_check(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", "-c", bench_script(local_job(tmp_path), mountpoint_check="false")], capture_output=True, text=True
    )
    assert result.returncode == 3 and not (tmp_path / BENCH_DIRNAME).exists()


@needs_fio
def test_real_fio_run_is_parsed_and_its_file_removed(tmp_path: Path) -> None:
    """The exact job kvpod generates (tiny, 1 s per phase) against a temp directory, parsed by kvpod."""
    (tmp_path / "beside.txt").write_text("untouched")
    job = local_job(tmp_path)
    script = bench_script(job, mountpoint_check="test -d")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    write, read = parse_fio(result.stdout)
    assert write.gbps > 0 and read.gbps > 0
    assert write.iops > 0 and read.iops > 0
    assert write.io_bytes >= job.file_bytes
    assert write.clat_p99_ms is not None and read.clat_p50_ms is not None
    assert sorted(os.listdir(tmp_path)) == ["beside.txt"]
    assert (tmp_path / "beside.txt").read_text() == "untouched"


def _default_signals() -> None:
    """A shell cannot trap a signal that was ignored when it started (POSIX), as SIGINT and SIGHUP are under
    ``nohup`` or in a background job: the script on a node starts with the default actions, so this one does."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_bench(tmp_path: Path) -> tuple[subprocess.Popen, BenchJob]:
    job = local_job(tmp_path, runtime=60)
    proc = subprocess.Popen(
        ["sh", "-c", bench_script(job, mountpoint_check="test -d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    deadline = time.monotonic() + 30
    while not (Path(job.file).exists() and Path(job.directory, "pids").exists()):
        assert time.monotonic() < deadline, "fio did not start"
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    time.sleep(0.3)  # fio is writing
    return proc, job


def fio_pids(job: BenchJob) -> list[str]:
    found = subprocess.run(["pgrep", "-f", job.file], capture_output=True, text=True).stdout.split()
    return found


@needs_fio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_script_removes_its_file_when_killed(tmp_path: Path, sig: signal.Signals) -> None:
    proc, job = start_bench(tmp_path)
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 128 + sig.value
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not Path(job.directory).exists()
    assert os.listdir(tmp_path) == []
    assert fio_pids(job) == []


@needs_fio
def test_cleanup_script_stops_a_running_benchmark(tmp_path: Path) -> None:
    """What kvpod runs after an interrupt: the script and fio stopped, the directory gone."""
    proc, job = start_bench(tmp_path)
    try:
        result = subprocess.run(["sh", "-c", cleanup_script(job.directory)], capture_output=True, timeout=60)
        assert result.returncode == 0
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not Path(job.directory).exists()
    assert fio_pids(job) == []


@needs_fio
def test_a_second_benchmark_on_the_same_mount_is_refused(tmp_path: Path) -> None:
    proc, job = start_bench(tmp_path)
    try:
        second = subprocess.run(
            ["sh", "-c", bench_script(job, mountpoint_check="test -d")], capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 1
        assert "another benchmark is running" in second.stderr
        assert Path(job.file).exists()  # the first one's file is left alone
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert not Path(job.directory).exists()


def test_cleanup_script_removes_a_leftover_directory(tmp_path: Path) -> None:
    leftover = tmp_path / BENCH_DIRNAME
    leftover.mkdir()
    (leftover / "fio.dat").write_bytes(b"0" * 4096)
    (leftover / "pids").write_text("999999 999998\n")  # processes long gone: nothing to stop
    subprocess.run(["sh", "-c", cleanup_script(str(leftover))], check=True, timeout=30)
    assert os.listdir(tmp_path) == []


def run_install(tmp_path: Path, fio: bool, apt_ok: bool) -> subprocess.CompletedProcess:
    """The install script with a PATH of stand-ins: fio present or not, apt-get succeeding or not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit {0 if apt_ok else 100}\n')
    if fio:
        (bin_dir / "fio").write_text("#!/bin/sh\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    sh = shutil.which("sh") or "/bin/sh"
    return subprocess.run([sh, "-c", install_fio_script()], capture_output=True, text=True, env={"PATH": str(bin_dir)})


def test_install_script(tmp_path: Path) -> None:
    assert run_install(tmp_path / "a", fio=True, apt_ok=False).returncode == 0
    assert not (tmp_path / "a" / "apt.log").exists()
    assert run_install(tmp_path / "b", fio=False, apt_ok=True).returncode == 0
    assert (tmp_path / "b" / "apt.log").read_text().split("\n")[0].endswith("install -y -q fio")
    offline = run_install(tmp_path / "c", fio=False, apt_ok=False)
    assert offline.returncode == 1
    assert "kvpod: fio is not installed and apt-get install -y fio failed" in offline.stderr
    assert (tmp_path / "c" / "apt.log").read_text().split() == ["install", "-y", "-q", "fio", "update", "-q"]


# -- the size guard ---------------------------------------------------------------------------------------


def space(avail: int, lmcache: int = 0, bench: int = 0) -> dict:
    return {"mounted": True, "avail_bytes": avail, "lmcache_bytes": lmcache, "bench_bytes": bench}


def test_size_guard_keeps_the_unused_budget_free() -> None:
    job = BenchJob("/mnt/kvcache", 1 * GIB, 30)
    budget = 100 * GIB
    assert size_refusal(job, space(101 * GIB), budget) is None
    assert size_refusal(job, space(101 * GIB - 1), budget) is not None
    # LMCache already holds 40 GiB of its 100: only 60 GiB must stay free
    assert size_refusal(job, space(61 * GIB, lmcache=40 * GIB), budget) is None
    assert size_refusal(job, space(60 * GIB, lmcache=40 * GIB), budget) is not None
    # over budget: nothing more to keep free
    assert size_refusal(job, space(GIB, lmcache=120 * GIB), budget) is None
    # a leftover bench directory is removed before the run: its space counts as free
    assert size_refusal(job, space(100 * GIB, bench=GIB), budget) is None


def test_size_guard_message_says_what_fits() -> None:
    """The lab: a 2 GB drive, a 1 GiB budget; 1 GiB does not fit, 64 MiB does."""
    message = size_refusal(BenchJob("/mnt/kvcache", GIB, 30), space(1_900_000_000), GIB)
    assert message is not None
    assert message.startswith("--size 1 GiB does not fit on /mnt/kvcache")
    assert "1 GiB stay free for LMCache's disk budget" in message
    assert "at most 788 MiB is left" in message
    assert size_refusal(BenchJob("/mnt/kvcache", 64 * MIB, 3), space(1_900_000_000), GIB) is None


def test_lmcache_dir_comes_from_the_plan() -> None:
    node = build_plan(load_spec(LAB)).nodes[0]
    assert lmcache_dir(node) == "/mnt/kvcache/lmcache/"


# -- fio's JSON -------------------------------------------------------------------------------------------


def test_parse_recorded_fio_json() -> None:
    write, read = parse_fio(FIO_JSON)
    doc = json.loads(FIO_JSON)
    w = next(j for j in doc["jobs"] if j["jobname"] == "write")["write"]
    assert write.gbps == round(w["bw_bytes"] / 1e9, 6)
    assert write.iops == round(w["iops"], 1)
    assert write.clat_p99_ms == round(w["clat_ns"]["percentile"]["99.000000"] / 1e6, 3)
    assert read.gbps > 0 and read.io_bytes > 0


def test_parse_uses_kib_per_second_without_bw_bytes() -> None:
    doc = json.loads(FIO_JSON)
    for job in doc["jobs"]:
        for direction in ("read", "write"):
            job[direction].pop("bw_bytes")
            job[direction]["bw"] = 1_000_000  # KiB/s
    write, read = parse_fio(json.dumps(doc))
    assert write.gbps == read.gbps == 1.024


def test_parse_skips_notes_before_the_json() -> None:
    write, _ = parse_fio("fio: note: something\n{not json\n" + FIO_JSON)
    assert write.gbps > 0


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "no fio JSON"),
        ("fio: failed to open file", "no fio JSON"),
        ('{"jobs": [{"jobname": "write", "error": 0, "write": {}}]}', "no read job"),
        ('{"jobs": [{"jobname": "write", "error": 5, "write": {}}, {"jobname": "read", "read": {}}]}', "error 5"),
    ],
)
def test_parse_rejects(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_fio(text)


# -- the report -------------------------------------------------------------------------------------------


def measured(name: str, write: float, read: float, enclosure: str = "data24") -> NodeBench:
    return NodeBench(
        name,
        enclosure,
        "ok",
        write=Phase(write, 1000.0, 10 * GIB, 1.0, 2.0),
        read=Phase(read, 1000.0, 10 * GIB, 1.0, 2.0),
    )


def test_outliers_are_nodes_far_below_the_median() -> None:
    nodes = [measured("a", 5.0, 6.0), measured("b", 5.2, 6.1), measured("c", 4.8, 2.9), measured("d", 2.0, 6.0)]
    flag_outliers(nodes)
    assert {n.node: n.outlier for n in nodes} == {"a": [], "b": [], "c": ["read"], "d": ["write"]}


def test_no_outlier_without_peers() -> None:
    alone = [measured("a", 0.1, 0.1), NodeBench("b", "data24", "unreachable", error="SSH")]
    flag_outliers(alone)
    assert alone[0].outlier == []


def test_aggregates_per_enclosure_and_pod() -> None:
    nodes = [
        measured("a", 5.0, 6.0, "e1"),
        measured("b", 4.0, 5.0, "e1"),
        measured("c", 3.0, 3.5, "e2"),
        NodeBench("d", "e2", "failed", error="refused"),
    ]
    out = {a.name: a for a in aggregates(nodes)}
    assert (out["e1"].nodes, out["e1"].write_gbps, out["e1"].read_gbps) == (2, 9.0, 11.0)
    assert (out["e2"].nodes, out["e2"].write_gbps, out["e2"].read_gbps) == (1, 3.0, 3.5)
    assert (out["pod"].write_gbps, out["pod"].read_gbps, out["pod"].reference_gbps) == (12.0, 14.5, 300.0)
    assert out["e1"].reference_gbps == ENCLOSURE_GBPS
    single = aggregates([measured("a", 1.0, 2.0)])
    assert [a.name for a in single] == ["data24"]


def test_report_json() -> None:
    plan = build_plan(load_spec(REFERENCE))
    nodes = [measured("gpu01", 10.0, 11.0), measured("gpu02", 10.0, 4.0), NodeBench("gpu03", "data24", "failed")]
    report = build_report(plan, GIB, 30, nodes)
    assert not report.ok
    data = json.loads(json.dumps(report.as_json()))
    assert data["job"] == {
        "size_bytes": GIB,
        "runtime_s": 30,
        "block_size": 131072,
        "numjobs": 4,
        "iodepth": 32,
        "ioengine": "libaio",
        "direct": True,
    }
    assert data["reference"]["node_link_gbps"] == 12.5 and data["reference"]["enclosure_gbps"] == 150.0
    assert data["nodes"]["gpu01"]["write"]["gbps"] == 10.0
    assert data["nodes"]["gpu02"]["outlier"] == []  # 4.0 is not below half of the median, 7.5
    assert data["nodes"]["gpu03"]["status"] == "failed" and data["nodes"]["gpu03"]["read"] is None
    assert data["aggregate"]["data24"] == {
        "name": "data24",
        "nodes": 2,
        "write_gbps": 20.0,
        "read_gbps": 15.0,
        "reference_gbps": 150.0,
    }


def test_node_result_from_runner_output() -> None:
    node = build_plan(load_spec(LAB)).nodes[0]
    job = BenchJob(node.mount.path, 2 * MIB, 1)
    ok = node_result(node, job, "ok", FIO_JSON, None)
    assert ok.status == "ok" and ok.write and ok.read and ok.notes == []
    bad = node_result(node, job, "ok", "garbage", None)
    assert bad.status == "failed" and bad.error and bad.error.startswith("fio output not understood")
    big = node_result(node, BenchJob(node.mount.path, 64 * GIB, 1), "ok", FIO_JSON, None)
    assert big.notes and "the write phase covered" in big.notes[0]
    down = node_result(node, job, "unreachable", "", "SSH connection failed")
    assert (down.status, down.error, down.write) == ("unreachable", "SSH connection failed", None)
