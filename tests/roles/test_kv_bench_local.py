"""The ``kv bench`` role through the runner and pyinfra's ``@local`` connector, on a real ext4 filesystem
(a loop-mounted image in a temp directory): real facts, real ``mountpoint``, real fio with O_DIRECT.

Needs root, fio, mkfs.ext4 and a loop device; skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.bench import MIB, BenchJob, node_result
from deploy.engine import run_output
from deploy.loader import load_spec
from deploy.names import BENCH_KEY
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from roles.kv_bench import kv_bench

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def ext4_mount(tmp_path: Path):
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("fio", "mkfs.ext4", "mount", "umount")):
        pytest.skip("needs root, fio, mkfs.ext4 and mount")
    image, mnt = tmp_path / "drive.img", tmp_path / "kvcache"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(300 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop,noatime", str(image), str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount an image here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def node_on(path: Path, budget_gb: float):
    node = build_plan(load_spec(lab_spec())).nodes[0]
    return node.model_copy(
        update={"mount": node.mount.model_copy(update={"path": str(path), "disk_budget_gb": budget_gb})}
    )


def test_bench_on_a_real_mount_leaves_only_what_was_there(ext4_mount: Path) -> None:
    beside = ext4_mount / "beside.bin"
    beside.write_bytes(os.urandom(1 << 20))
    digest = hashlib.sha256(beside.read_bytes()).hexdigest()
    before = sorted(os.listdir(ext4_mount))
    node = node_on(ext4_mount, budget_gb=0.125)
    job = BenchJob(str(ext4_mount), 16 * MIB, 1)
    (result,) = run_output("bench", [("@local", {"kvpod_node": node, BENCH_KEY: job})], kv_bench)
    assert result.status == "changed", (result.failed_step, result.stderr)
    stdout = "\n".join(line for lines in result.output.values() for line in lines)
    bench = node_result(node, job, "ok", stdout, None)
    assert bench.status == "ok", bench.error
    assert bench.write and bench.write.gbps > 0 and bench.read and bench.read.gbps > 0
    assert sorted(os.listdir(ext4_mount)) == before
    assert hashlib.sha256(beside.read_bytes()).hexdigest() == digest


def test_bench_beyond_the_room_beside_the_budget_is_refused(ext4_mount: Path) -> None:
    node = node_on(ext4_mount, budget_gb=0.25)  # 256 MiB of about 280 MiB free stay free for LMCache
    job = BenchJob(str(ext4_mount), 64 * MIB, 1)
    (result,) = run_output("bench", [("@local", {"kvpod_node": node, BENCH_KEY: job})], kv_bench)
    assert result.status == "failed"
    assert "does not fit on" in result.stderr[-1] and "LMCache's disk budget" in result.stderr[-1]
    assert sorted(os.listdir(ext4_mount)) == ["lost+found"]


def test_bench_on_an_unmounted_directory_is_refused(tmp_path: Path) -> None:
    """Refused before anything is installed or written."""
    if not shutil.which("mountpoint"):
        pytest.skip("needs util-linux")
    (tmp_path / "keep").write_text("x")
    node = node_on(tmp_path, budget_gb=0.001)
    job = BenchJob(str(tmp_path), 1 * MIB, 1)
    (result,) = run_output("bench", [("@local", {"kvpod_node": node, BENCH_KEY: job})], kv_bench)
    assert result.status == "failed" and result.failed_step == f"kv bench | room on {tmp_path}"
    assert result.stderr[-1] == f"kvpod: {tmp_path} is not mounted: refusing to benchmark the filesystem below it"
    assert sorted(os.listdir(tmp_path)) == ["keep"]
