"""The node's files in one bundle: one upload and one extraction on a first bring-up, nothing on a converged node,
only the file that drifted otherwise, with the restarts and reloads its change calls for and no other."""

from __future__ import annotations

import pytest

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.facts.bundle_command import extracted
from deploy.loader import load_spec
from deploy.names import VLLM_HF_ENV_FILE
from deploy.operations.restart import restart_pending
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec
from roles.node import node


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    return build_plan(load_spec(lab_spec())).nodes[0]


def _data(plan: NodePlan) -> dict:
    return {"kvpod_node": plan}


def _first_bring_up(plan: NodePlan) -> FakeRemote:
    remote = fresh_node(plan)
    state, host = deploy_run(node, remote, _data(plan))
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote


def test_a_first_bring_up_writes_every_file_in_one_upload_and_one_extraction(lab: NodePlan) -> None:
    remote = _first_bring_up(lab)
    extractions = [found for c in remote.executed if (found := extracted(c))]
    assert len(extractions) == 1
    archive, members = extractions[0]
    assert archive.startswith("/root/.kvpod-files-") and archive not in remote.files  # root-only, removed after
    assert VLLM_HF_ENV_FILE in members and remote.files[VLLM_HF_ENV_FILE]["mode"] == 640
    assert {"/etc/nvme/hostnqn", "/etc/nvme/hostid"} <= set(members)  # the host identity too, no printf
    assert remote.facts["nvme.NvmeHostIdentity"] == {"hostnqn": lab.host_nqn, "hostid": lab.host_id}
    assert not [c for c in remote.executed if c.startswith(("chmod", "chown root:", "printf", "mkdir -p /etc"))]
    # the node's files and the mount unit, written later (it names the filesystem found): two reloads, not four
    assert remote.executed.count("systemctl daemon-reload") == 2
    assert (
        remote.executed.index("systemctl daemon-reload")
        == remote.executed.index(next(c for c in remote.executed if extracted(c))) + 1
    )
    assert changed_commands(deploy_plan(node, remote, _data(lab))) == []


def test_one_drifted_env_file_is_sent_alone_and_restarts_its_engine_alone(lab: NodePlan) -> None:
    remote = _first_bring_up(lab)
    drifted = lab.engines[1].lmcache.env_file
    remote.files[drifted]["content"] += "LMCACHE_EXTRA=1\n"
    planned = changed_commands(deploy_plan(node, remote, _data(lab)))
    uploads = [c for c in planned if isinstance(c, list) and c[0] == "upload"]
    assert [dest for _, _, dest in uploads] == [drifted]
    commands = [c for c in planned if isinstance(c, str)]
    assert [extracted(c) is not None for c in commands] == [True, False]
    assert commands[1] == "systemctl restart kvpod-vllm@1.service"  # no reload: no unit file changed
    state, host = deploy_run(node, remote, _data(lab))
    assert remote.units["kvpod-vllm@1.service"]["restarts"] == 1
    assert remote.units["kvpod-vllm@0.service"].get("restarts", 0) == 0
    assert restart_pending(state, host) is False
    assert "LMCACHE_EXTRA" not in remote.files[drifted]["content"]
    assert changed_commands(deploy_plan(node, remote, _data(lab))) == []


def test_the_node_loads_its_kernel_modules_in_one_modprobe_after_the_socket_buffers(lab: NodePlan) -> None:
    remote = _first_bring_up(lab)
    loads = [c for c in remote.executed if c.startswith("modprobe")]
    assert loads == ["modprobe -a 8021q rdma_rxe nvme_fabrics nvme_rdma"]
    assert remote.executed.index(loads[0]) > next(i for i, c in enumerate(remote.executed) if c.startswith("sysctl "))
