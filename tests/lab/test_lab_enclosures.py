"""Two Linux nvmet enclosures on the lab's one target VM, and a first bring-up killed (SIGKILL) part-way.

The spec variant adds enclosure ``shelf2`` (its own NQN prefix, portal address and drive files) served by the
same target VM, and moves node2 onto shelf2's first, blank drive. That move is a first bring-up of node2's
namespace: `kvpod up` is killed after the connect, after mkfs and before the mount unit, and each rerun
finishes it with the one filesystem made once. Then node1 moves across the enclosures. The module
restores the lab to the shipped spec at the end (other lab tests run after it), also when a test fails.

node2 itself is not new: its fabric, NVMe host identity, vLLM install and LMCache settings are already in
place from the lab's bring-up; what is fresh is its namespace (connect, boot-time connect, filesystem, mount).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deploy.loader import load_spec
from deploy.plan import build_plan
from tests.two_enclosures import SECOND, SECOND_PORTAL, SECOND_PREFIX, second_nqn, two_enclosures

from .conftest import LAB_SPEC, kvpod, report
from .test_lab_reconfigure import MountSampler, holders, nqn

pytestmark = pytest.mark.lab

NVMET = "/sys/kernel/config/nvmet"
# Everything of shelf2 on the target VM, removed when the lab goes back to the shipped spec (kvpod leaves
# subsystems of an enclosure that left the spec alone).
REMOVE_SHELF2 = f"""set -e
for l in {NVMET}/ports/*/subsystems/{SECOND_PREFIX}:*; do [ -L "$l" ] && rm "$l"; done
for p in {NVMET}/ports/*; do [ "$(cat $p/addr_traddr)" = {SECOND_PORTAL} ] && rmdir "$p"; done
for s in {NVMET}/subsystems/{SECOND_PREFIX}:*; do
  [ -d "$s" ] || continue
  for h in "$s"/allowed_hosts/*; do [ -L "$h" ] && rm "$h"; done
  for n in "$s"/namespaces/*; do echo 0 > "$n/enable"; rmdir "$n"; done
  rmdir "$s"
done
rm -f /srv/nvmet/{SECOND}-drive*.img
ip -4 addr show dev eth1.100 | grep -qF " {SECOND_PORTAL}/" && ip addr del {SECOND_PORTAL}/24 dev eth1.100
true
"""


def fs_identity(hosts, node: str, subsystem: str) -> str:
    """UUID and creation time of the ext4 on the node's namespace of ``subsystem`` ("" when it has none)."""
    find = (
        "for i in 1 2 3 4 5 6 7 8 9 10; do for b in /sys/block/nvme*; do "
        f'[ "$(cat $b/device/subsysnqn 2>/dev/null)" = {subsystem} ] && [ -b /dev/${{b##*/}} ] && '
        "echo /dev/${b##*/} && exit 0; done; sleep 1; done"  # the namespace appears just after the connect
    )
    dev = hosts.sh(node, find).strip()
    assert dev, f"{node} has no namespace of {subsystem}"
    return hosts.sh(node, f"tune2fs -l {dev} 2>/dev/null | grep -E '^Filesystem (UUID|created):' || true").strip()


def mounted(hosts, node: str) -> str:
    return holders(hosts)[node]


@pytest.fixture(scope="module")
def spec(tmp_path_factory, hosts):
    """The two-enclosure variant; afterwards the lab is brought back to the shipped spec and verified."""
    path = tmp_path_factory.mktemp("enclosures") / "pod.yaml"
    shutil.copy(LAB_SPEC, path)
    path.write_text(two_enclosures(path.read_text()))
    yield path
    os.environ.pop("KVPOD_KILL_AT", None)
    # --break-lock: a killed run leaves a stale lock; the up releases shelf2's drives (they were the pod's)
    back = kvpod("up", str(LAB_SPEC), "--yes", "--no-verify", "--break-lock")
    assert back.code == 0, back.out[-3000:]
    assert holders(hosts) == {"node1": nqn(1), "node2": nqn(2)}
    for node in ("node1", "node2"):  # shelf2 goes only once no node is connected to it
        assert SECOND_PREFIX not in hosts.sh(node, "nvme list-subsys 2>/dev/null || true")
    hosts.sh("target", REMOVE_SHELF2)
    assert kvpod("verify", str(LAB_SPEC)).code == 0


def killed_up(spec: Path, at: str, *extra: str):
    os.environ["KVPOD_KILL_AT"] = at
    try:
        return kvpod("up", str(spec), "--yes", "--no-verify", *extra)
    finally:
        del os.environ["KVPOD_KILL_AT"]


def test_first_bring_up_on_the_second_enclosure_survives_sigkill(hosts, spec, tmp_path):
    """SIGKILL after the connect, after mkfs, before the mount unit; each rerun converges; mkfs runs once."""
    fresh = second_nqn(1)
    assert holders(hosts) == {"node1": nqn(1), "node2": nqn(2)}

    run = killed_up(spec, f"after@node2:{fresh} connected")
    assert run.code == -9, run.out[-3000:]  # died by SIGKILL
    assert fs_identity(hosts, "node2", fresh) == "", "killed after the connect: nothing formatted yet"
    assert mounted(hosts, "node2") == ""

    # a killed run leaves its lock behind, stale: each rerun breaks it explicitly
    refused = kvpod("up", str(spec), "--yes", "--no-verify")
    assert refused.code == 2 and "--break-lock" in refused.out, refused.out[-3000:]
    run = killed_up(spec, f"after@node2:ext4 on {fresh}", "--break-lock")
    assert run.code == -9, run.out[-3000:]
    made = fs_identity(hosts, "node2", fresh)
    assert "Filesystem UUID" in made and "Filesystem created" in made
    assert mounted(hosts, "node2") == ""

    run = killed_up(spec, "before@node2:mnt-kvcache.mount", "--break-lock")
    assert run.code == -9, run.out[-3000:]
    assert fs_identity(hosts, "node2", fresh) == made, "the rerun must not format again"
    assert mounted(hosts, "node2") == ""

    run = kvpod("up", str(spec), "--yes", "--no-verify", "--break-lock")
    assert run.code == 0, run.out[-3000:]
    assert fs_identity(hosts, "node2", fresh) == made
    assert holders(hosts) == {"node1": nqn(1), "node2": fresh}

    again = kvpod("up", str(spec), "--yes", "--no-verify", "--report", str(tmp_path / "r.json"))
    assert again.code == 0, again.out[-3000:]
    data = report(tmp_path / "r.json")
    assert {n: h["changed_operations"] for n, h in data["hosts"].items()} == dict.fromkeys(data["hosts"], 0)
    assert {"target", SECOND} <= set(data["hosts"])


def test_reassignment_across_enclosures(hosts, spec):
    """node1 moves from the first enclosure onto shelf2's spare drive; its old drive becomes a spare: it admits no
    host. A file on node2's drive, beside the move, reads back unchanged."""
    hosts.sh("node2", "echo beside-the-move > /mnt/kvcache/beside.txt && sync")
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        run = kvpod("reassign", str(spec), "--drive", f"{SECOND}/2", "--to", "node1")
    assert run.code == 0, run.out[-3000:]
    sampler.assert_no_overlap(min_samples=4)
    assert holders(hosts) == {"node1": second_nqn(2), "node2": second_nqn(1)}
    allowed = hosts.sh("target", f"ls {NVMET}/subsystems/{second_nqn(2)}/allowed_hosts").split()
    assert allowed == [build_plan(load_spec(spec)).node("node1").host_nqn]
    assert hosts.sh("target", f"ls {NVMET}/subsystems/{nqn(1)}/allowed_hosts").split() == [], "a spare now"
    assert hosts.sh("node2", "cat /mnt/kvcache/beside.txt").strip() == "beside-the-move"
    assert kvpod("verify", str(spec)).code == 0
