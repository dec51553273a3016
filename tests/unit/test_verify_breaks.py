"""Every check of the verify suite seen failing: the suite, as ``kvpod verify`` runs it, against the simulated
pod (``tests/verify_pod_sim.py``) with one wrong fact per check spread over the pod's hosts. Each check must fail
on the host that was broken, naming that host, and nowhere else; a check of the suite that no break makes fail
fails this test."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from deploy.loader import spec_from_dict
from deploy.plan import Plan, build_plan
from deploy.shipped import verify_suite_dir
from deploy.verify_runner import POD_ROW, VerifyReport, parse_junit, report_rows, suite_command, suite_env
from tests.conftest import LAB, ROOT
from tests.verify_pod_sim import SECRETS_ENV, sim_secrets

# host -> break -> the checks it must fail (``test_name[params]``, ``{h}`` standing for the host)
BREAKS: dict[str, dict[str, list[str]]] = {
    "node1": {
        "nic-mtu": ["test_nic_mtu[{h}]"],
        "vlan-id": ["test_vlan_interface[{h}]"],
        "vlan-down": ["test_vlan_up[{h}]"],
        "vlan-mtu": ["test_vlan_mtu[{h}]"],
        "address": ["test_planned_address[{h}]"],
        "route": ["test_portal_route[{h}-iom-a-p1]", "test_portal_route[{h}-iom-b-p1]"],
        "ping": ["test_portal_ping[{h}-iom-a-p1]", "test_portal_ping[{h}-iom-b-p1]"],
        "rdma": ["test_rdma_device[{h}]"],
        "sysctl": ["test_sysctl[{h}-net.core.rmem_max]"],
        "sysctl-file": ["test_sysctl_persisted[{h}-net.core.rmem_max]", "test_sysctl_persisted[{h}-net.core.wmem_max]"],
        "fstype": ["test_filesystem[{h}]"],
        "mount-option": ["test_mount_option[{h}-noatime]"],
        "mount-unit-inactive": ["test_mount_unit_active[{h}]"],
        "mount-unit-transient": ["test_mount_unit_persistent[{h}]"],
        "mount-not-writable": ["test_writable_by_vllm_user[{h}]"],
        "full": ["test_room_for_disk_budget[{h}]"],
        "module-unloaded": ["test_module_loaded[{h}-nvme_rdma]"],
        "module-not-persisted": ["test_module_persisted[{h}-nvme_rdma]"],
        "host-nqn": ["test_host_nqn[{h}]"],
        "host-id": ["test_host_id[{h}]"],
        "iopolicy-numa": ["test_iopolicy[{h}]"],
    },
    "node2": {
        "nic-absent": ["test_fabric_nic[{h}]", "test_nic_mtu[{h}]"],
        "config-source": ["test_config_source[{h}-engine0]"],
        "credentials-readable": ["test_credential_files_mode_and_owner[{h}]"],
        "setting": ["test_setting[{h}-engine0-max_local_disk_size]"],
        "hash-seed": ["test_python_hash_seed[{h}-engine0]"],
        "local-disk-off-mount": ["test_local_disk_on_mount[{h}]"],
        "local-disk-not-writable": ["test_local_disk_writable[{h}-engine1]"],
        "other-subsystem-mounted": ["test_mounted_subsystem[{h}]"],
        "nsid": ["test_mounted_namespace_id[{h}]"],
        "holds-neighbours-drive": ["test_no_other_subsystem[{h}]", "test_subsystem_on_one_node[pod]"],
        "portal-down": ["test_controller_per_portal[{h}-iom-b-p1]"],
        "duplicate-controller": ["test_no_duplicate_controllers[{h}]", "test_controller_per_portal[{h}-iom-a-p1]"],
        "foreign-portal": ["test_only_planned_portals[{h}]"],
        "connect-unit-disabled": ["test_connect_unit_enabled[{h}]"],
        "vllm-disabled": ["test_unit_enabled[{h}-engine0]"],
        "vllm-failed": ["test_unit_active[{h}-engine0]"],
        "vllm-as-root": ["test_runs_as_planned_user[{h}-engine0]"],
        "no-env-file": ["test_environment_file[{h}-engine0]", "test_hf_env_file_loaded_by_the_unit[{h}-hf-env]"],
        "argument": ["test_argument[{h}-engine0-max-model-len]"],
        "extra-args": ["test_extra_arguments[{h}-engine0]"],
        "environment": ["test_environment_variable[{h}-engine0-LMCACHE_CHUNK_SIZE]"],
        "unhealthy": ["test_health[{h}-engine1]"],
        "model-not-served": ["test_model_served[{h}-engine1]"],
        "gpu-ops-fallback": ["test_lmcache_gpu_ops[{h}]"],
        "connector": ["test_interpreter_imports_the_lmcache_connector[{h}]"],
        "hf-env-readable": ["test_hf_env_file_mode_and_owner[{h}-hf-env]"],
        "hf-token-stale": ["test_hf_setting[{h}-HF_TOKEN]"],
        "weights-cache-foreign": ["test_weights_cache_owned_by_the_vllm_user[{h}-weights-cache]"],
        "model-missing": ["test_offline_model_files_present[{h}-meta-llama--Llama-3.1-8B-Instruct]"],
        "discovery-extra": ["test_discovery[{h}-iom-a-p1]", "test_discovery[{h}-iom-b-p1]"],
        "path-settings": [
            f"test_path_setting[{{h}}-{p}-{a}]"
            for p in ("iom-a-p1", "iom-b-p1")
            for a in ("reconnect_delay", "ctrl_loss_tmo", "fast_io_fail_tmo", "kato", "queue_count")
        ],
    },
    "target": {
        "extra-subsystem": ["test_planned_subsystems[{h}]"],
        "any-host": ["test_any_host_refused[{h}-drive02]"],
        "stale-host": ["test_allowed_hosts[{h}-drive03]"],
        "namespace-disabled": ["test_namespace[{h}-drive01]"],
        "port-tcp": ["test_port[{h}-iom-b-p1]"],
        "port-unlinked": ["test_port_subsystems[{h}-iom-a-p1]"],
    },
}


def expected_failures() -> dict[str, set[str]]:
    """Host -> the checks failing there (the pod-wide check on its own row)."""
    out: dict[str, set[str]] = {}
    for host, breaks in BREAKS.items():
        for checks in breaks.values():
            for check in checks:
                name = check.format(h=host)
                out.setdefault(POD_ROW if name.endswith("[pod]") else host, set()).add(name)
    return out


def function(check_name: str) -> str:
    return check_name.split("[", 1)[0]


@pytest.fixture(scope="module")
def broken_pod(tmp_path_factory: pytest.TempPathFactory) -> VerifyReport:
    """The suite's report on the lab pod (with extra vLLM arguments, a weights cache and offline mode, so those
    checks run) with every break."""
    tmp = tmp_path_factory.mktemp("verify-breaks")
    spec = yaml.safe_load(LAB.read_text())
    spec["vllm"].update(weights_cache_dir="/srv/hf", offline=True)
    data = json.loads(build_plan(spec_from_dict(spec)).to_json())
    for node in data["nodes"]:
        node["vllm"]["extra_args"] = ["--enable-prefix-caching"]
    plan = Plan.model_validate(data)
    plan_json, junit, ssh_config = tmp / "plan.json", tmp / "junit.xml", tmp / "ssh_config"
    plan_json.write_text(plan.to_json())
    ssh_config.write_text("Host *\n    HostName 127.0.0.1\n")
    suite = verify_suite_dir()
    argv = [*suite_command(suite, plan_json, ssh_config, junit, limit=None, workers=0), "-p", "tests.verify_pod_sim"]
    breaks = {host: sorted(b) for host, b in BREAKS.items()}
    env = suite_env(
        {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "KVPOD_SIM_BREAKS": json.dumps(breaks),
            SECRETS_ENV: sim_secrets(),
        }
    )
    proc = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return parse_junit(junit.read_text(), report_rows(plan))


def test_every_break_fails_its_checks_on_its_host_and_nothing_else(broken_pod: VerifyReport) -> None:
    assert broken_pod.suite_error is None
    # the only check that does not run: LMCache's GPU ops where the node has no GPU, reported by name as such
    not_run = {
        (c.name, c.outcome, c.message.split(":")[0]) for c in broken_pod.checks if c.outcome not in ("passed", "failed")
    }
    assert not_run == {("test_lmcache_gpu_ops[node1]", "skipped", "not applicable")}
    found: dict[str, set[str]] = {}
    for check in broken_pod.failures:
        found.setdefault(check.host, set()).add(check.name)
    assert found == expected_failures()


def test_a_failure_names_its_host_and_check_with_expected_and_found(broken_pod: VerifyReport) -> None:
    failures = {(c.host, c.name): c for c in broken_pod.failures}
    for (host, name), check in failures.items():
        assert check.message and check.expected is not None and check.found is not None, (host, name, check)
        assert host == POD_ROW or f"[{host}" in check.test_id, check.test_id
    room = failures[("node1", "test_room_for_disk_budget[node1]")]
    assert room.area == "kv_mount" and room.expected == ">= 1 GiB" and "GiB free" in room.found
    persistent = failures[("node1", "test_mount_unit_persistent[node1]")]
    assert (persistent.expected, persistent.found) == ("enabled or generated", "'transient'")
    hosts = failures[("target", "test_allowed_hosts[target-drive03]")]
    assert hosts.area == "target" and hosts.expected == "{}"
    any_host = failures[("target", "test_any_host_refused[target-drive02]")]
    assert (any_host.expected, any_host.found) == ("'0'", "'1'")
    token = failures[("node2", "test_hf_setting[node2-HF_TOKEN]")]
    assert token.expected.startswith("'<secret:") and token.found.startswith("<secret:"), token
    known = json.loads(sim_secrets())
    assert known and not any(s in (c.message or "") for c in broken_pod.failures for s in known), "a secret shown"


def test_every_check_of_the_suite_is_seen_failing(broken_pod: VerifyReport) -> None:
    """The suite's checks as collected (each test function) against those some break makes fail."""
    collected = {function(c.name) for c in broken_pod.checks}
    assert len(collected) >= 50
    broken = {function(c.name) for c in broken_pod.failures}
    assert collected - broken == set(), "checks no break of tests/verify_pod_sim.py makes fail"
