"""``kvpod bench`` in the lab: fio on both nodes' KV-cache mounts over NVMe/RDMA (soft-RoCE).

A file written beside the benchmark on each mount must come out unchanged, and the benchmark directory
must be gone afterwards. The lab's 2 GB drives with a 1 GB LMCache budget leave room for a small file only,
so the default size (1 GiB) is refused there.
"""

from __future__ import annotations

import json

import pytest

from deploy.bench import BENCH_DIRNAME
from deploy.loader import load_spec
from deploy.plan import build_plan

from .conftest import LAB_SPEC, kvpod

pytestmark = pytest.mark.lab

PLAN = build_plan(load_spec(LAB_SPEC))
NODES = [n.name for n in PLAN.nodes]
MOUNT = PLAN.nodes[0].mount.path
BESIDE = f"{MOUNT}/bench-neighbour.bin"


def sha256(hosts, node: str, path: str) -> str:
    return hosts.sh(node, f"sha256sum {path}").split()[0]


def test_bench_measures_every_node_and_leaves_the_mount_as_it_was(lab_up, hosts, tmp_path):
    assert lab_up.code == 0, "the lab did not come up: " + lab_up.out[-2000:]
    before = {}
    for node in NODES:
        hosts.sh(node, f"head -c 1048576 /dev/urandom > {BESIDE} && sync")
        before[node] = sha256(hosts, node, BESIDE)
    out = tmp_path / "bench.json"
    try:
        run = kvpod("bench", str(LAB_SPEC), "--size", "64M", "--runtime", "3", "--json", str(out), timeout=1200)
        assert run.code == 0, run.out[-3000:]
        data = json.loads(out.read_text())
        assert sorted(data["nodes"]) == sorted(NODES)
        for node, result in data["nodes"].items():
            assert result["status"] == "ok", (node, result)
            assert result["write"]["gbps"] > 0, (node, result)
            assert result["read"]["gbps"] > 0, (node, result)
        assert data["aggregate"][PLAN.targets[0].name]["nodes"] == len(NODES)
        for node in NODES:
            assert hosts.rc(node, f"test -e {MOUNT}/{BENCH_DIRNAME}") != 0, f"{node} kept the bench directory"
            assert sha256(hosts, node, BESIDE) == before[node], f"{node}: the file beside the bench changed"
    finally:
        for node in NODES:
            hosts.sh(node, f"rm -f {BESIDE}", check=False)


def test_bench_larger_than_the_room_beside_the_budget_is_refused(lab_up, hosts):
    assert lab_up.code == 0, "the lab did not come up"
    node = NODES[0]
    run = kvpod("bench", str(LAB_SPEC), "--limit", node, "--runtime", "3", timeout=600)
    assert run.code == 2, run.out[-3000:]
    assert "does not fit on" in run.out and "LMCache" in run.out
    assert hosts.rc(node, f"test -e {MOUNT}/{BENCH_DIRNAME}") != 0
