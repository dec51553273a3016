"""kvpod verify without hosts: JUnit XML -> result model, the ssh_config, the pytest command, and that the
suite collects one test per node and item for the lab pod."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import verify_runner as verify
from deploy.errors import KvpodError
from deploy.loader import load_spec
from deploy.plan import Plan, RoceQosPlan, build_plan
from deploy.shipped import verify_suite_dir
from deploy.verify_runner import (
    AREAS,
    POD_ROW,
    VerifyReport,
    host_of_test,
    parse_junit,
    report_rows,
    split_message,
    ssh_config_text,
    suite_command,
    suite_env,
    worker_count,
)
from tests.verify_pod_sim import SECRETS_ENV, sim_secrets

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab" / "pod.yaml"


@pytest.fixture(scope="module")
def lab_plan() -> Plan:
    return build_plan(load_spec(LAB))


def _case(area: str, cls: str, name: str, host: str, body: str = "", props: bool = True) -> str:
    module = {"nvme_initiator": "test_nvme_initiator", "target": "test_nvmet_target"}.get(area, f"test_{area}")
    nodeid = f"{area}/{module}.py::{cls}::{name}"
    properties = (
        "<properties>"
        f'<property name="kvpod_test" value="{nodeid}" />'
        f'<property name="kvpod_host" value="{host}" />'
        f'<property name="kvpod_area" value="{area}" />'
        "</properties>"
        if props
        else ""
    )
    return f'<testcase classname="{area}.{module}.{cls}" name="{name}" time="0.1">{properties}{body}</testcase>'


SAMPLE = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
    '<testsuite name="pytest" errors="1" failures="2" skipped="1" tests="8">'
    + _case("fabric", "TestInterfaces", "test_vlan_mtu[node1]", "node1")
    + _case(
        "fabric",
        "TestInterfaces",
        "test_vlan_mtu[node2]",
        "node2",
        '<failure message="AssertionError: MTU of eth1.100: expected 9000, found 1500">fabric/test_fabric.py:40: '
        "in test_vlan_mtu\nE   AssertionError: MTU of eth1.100: expected 9000, found 1500</failure>",
    )
    + _case("fabric", "TestPortalPath", "test_portal_ping[node1-iom-a-p1]", "node1")
    + _case(
        "kv_mount",
        "TestMount",
        "test_mount_option[node1-noatime]",
        "node1",
        "<failure message=\"AssertionError: live options of /mnt/kvcache: expected to include 'noatime', "
        'found relatime,rw">...</failure>',
    )
    + _case(
        "vllm",
        "TestCommandLine",
        "test_extra_arguments[node1]",
        "node1",
        '<skipped type="pytest.skip" message="no extra arguments planned">skipped</skipped>',
    )
    + _case(
        "target",
        "TestSubsystems",
        "test_allowed_hosts[target-drive01]",
        "target",
        '<error message="failed on setup with &quot;HostUnreachable: target: SSH failed: ssh: connect to host '
        '127.0.0.1 port 2201: Connection refused&quot;">HostUnreachable: ...</error>',
    )
    + _case("namespace", "TestPodMapping", "test_subsystem_on_one_node[pod]", POD_ROW)
    + _case("enclosure", "TestDiscovery", "test_discovery[node1-iom-b-p1]", "node1")
    + "</testsuite></testsuites>"
)


class TestParseJunit:
    def test_checks_carry_host_area_outcome(self, lab_plan: Plan) -> None:
        report = parse_junit(SAMPLE, report_rows(lab_plan))
        by_name = {c.name: c for c in report.checks}
        assert len(report.checks) == 8
        assert by_name["test_vlan_mtu[node1]"].outcome == "passed"
        assert by_name["test_extra_arguments[node1]"].outcome == "skipped"
        mtu = by_name["test_vlan_mtu[node2]"]
        assert (mtu.host, mtu.area, mtu.outcome) == ("node2", "fabric", "failed")
        assert (mtu.message, mtu.expected, mtu.found) == ("MTU of eth1.100", "9000", "1500")
        assert mtu.test_id == "fabric/test_fabric.py::TestInterfaces::test_vlan_mtu[node2]"
        down = by_name["test_allowed_hosts[target-drive01]"]
        assert down.outcome == "unreachable"
        assert down.message.startswith("HostUnreachable: target: SSH failed")

    def test_cells_per_host_and_area(self, lab_plan: Plan) -> None:
        report = parse_junit(SAMPLE, report_rows(lab_plan))
        assert report.rows == ["node1", "node2", POD_ROW, "target"]
        assert report.areas == list(AREAS)
        fabric1 = report.cell("node1", "fabric")
        assert (fabric1.passed, fabric1.failed, fabric1.status) == (2, 0, "ok")
        assert report.cell("node2", "fabric").status == "failed"
        assert report.cell("node1", "kv_mount").status == "failed"
        assert report.cell("node1", "vllm").status == "none"  # only a skipped check
        assert report.cell("node1", "vllm").skipped == 1
        assert report.cell("target", "target").status == "unreachable"
        assert report.cell(POD_ROW, "namespace").status == "ok"
        assert report.row_cells("node1").passed == 3

    def test_failures_and_exit_codes(self, lab_plan: Plan) -> None:
        report = parse_junit(SAMPLE, report_rows(lab_plan))
        assert [c.name for c in report.failures] == ["test_vlan_mtu[node2]", "test_mount_option[node1-noatime]"]
        option = report.failures[1]
        assert (option.expected, option.found) == ("to include 'noatime'", "relatime,rw")
        assert report.unreachable_hosts == ["target"]
        assert report.verdict == "incomplete"  # an unreachable host makes the result incomplete

        without_target = SAMPLE.replace("HostUnreachable", "AssertionError").replace("<error ", "<failure ")
        without_target = without_target.replace("</error>", "</failure>")
        assert parse_junit(without_target, report_rows(lab_plan)).verdict == "differs"

        passing = parse_junit(
            '<testsuites><testsuite name="pytest">'
            + _case("fabric", "TestInterfaces", "test_vlan_mtu[node1]", "node1")
            + "</testsuite></testsuites>",
            report_rows(lab_plan),
        )
        assert passing.verdict == "held"
        empty = parse_junit('<testsuites><testsuite name="pytest"></testsuite></testsuites>', ["node1"])
        assert empty.verdict == "incomplete"  # nothing ran: nothing was verified

    def test_suite_error_is_exit_2(self, lab_plan: Plan) -> None:
        report = parse_junit(SAMPLE.replace("<failure", "<skipped").replace("</failure>", "</skipped>"), ["node1"])
        report.suite_error = "the verify suite stopped (usage error)"
        assert report.verdict == "incomplete"

    def test_without_properties_host_and_area_come_from_the_test(self, lab_plan: Plan) -> None:
        xml = (
            "<testsuites><testsuite>"
            + _case("fabric", "TestPortalPath", "test_portal_ping[node1-iom-a-p1]", "node1", props=False)
            + _case("target", "TestPorts", "test_port[target-iom-b-p1]", "target", props=False)
            + _case("namespace", "TestPodMapping", "test_subsystem_on_one_node[pod]", POD_ROW, props=False)
            + "</testsuite></testsuites>"
        )
        checks = parse_junit(xml, report_rows(lab_plan)).checks
        assert [(c.host, c.area) for c in checks] == [("node1", "fabric"), ("target", "target"), ("pod", "namespace")]

    def test_host_of_a_node_id(self) -> None:
        hosts = ["node1", "node10", "target", POD_ROW]
        assert host_of_test("fabric/test_fabric.py::TestPortalPath::test_portal_ping[node10-iom-a-p1]", hosts) == (
            "node10"
        )
        assert host_of_test("target/test_nvmet_target.py::TestPorts::test_port[target-iom-b-p1]", hosts) == "target"
        assert host_of_test("namespace/x.py::TestPodMapping::test_subsystem_on_one_node[pod]", hosts) == POD_ROW
        assert host_of_test("fabric/test_fabric.py::TestX::test_y", hosts) == ""

    def test_longest_host_name_wins(self) -> None:
        xml = (
            '<testsuites><testsuite><testcase classname="verify_suite.fabric.test_fabric.TestX" '
            'name="test_vlan_mtu[node-1-a]" /></testsuite></testsuites>'
        )
        check = parse_junit(xml, ["node", "node-1", "node-1-a"]).checks[0]
        assert (check.host, check.area) == ("node-1-a", "fabric")


class TestSplitMessage:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ("AssertionError: MTU of eth1.100: expected 9000, found 1500", ("MTU of eth1.100", "9000", "1500")),
            (
                "AssertionError: NVMe-oF subsystems connected: expected {'a'}, found {'a', 'b'}\nassert ...",
                ("NVMe-oF subsystems connected", "{'a'}", "{'a', 'b'}"),
            ),
            ("RuntimeError: boom", ("RuntimeError: boom", None, None)),
            ("", ("", None, None)),
        ],
    )
    def test_split(self, message: str, expected: tuple) -> None:
        assert split_message(message) == expected


class TestSshConfig:
    def test_one_block_per_node_and_managed_target(self, lab_plan: Plan, tmp_path: Path) -> None:
        text = ssh_config_text(lab_plan, control_dir=tmp_path)
        assert [line.split()[1] for line in text.splitlines() if line.startswith("Host ")] == [
            "node1",
            "node2",
            "target",
        ]
        node2 = text.split("Host node2\n")[1].split("\n\n")[0]
        assert "    HostName 127.0.0.1" in node2
        assert "    Port 2203" in node2
        assert "    User root" in node2
        assert "    IdentityFile /var/tmp/kvpod-lab/id_ed25519" in node2
        assert "    UserKnownHostsFile /var/tmp/kvpod-lab/known_hosts" in node2
        assert "    StrictHostKeyChecking accept-new" in node2
        assert "    BatchMode yes" in node2
        assert f"    ControlPath {tmp_path}/%C" in node2

    def test_quoting_and_tokens(self, lab_plan: Plan) -> None:
        data = json.loads(lab_plan.to_json())
        data["nodes"][0]["ssh"]["key"] = "/keys/my key%1"
        data["nodes"][0]["ssh"]["known_hosts_file"] = None
        text = ssh_config_text(Plan.model_validate(data))
        node1 = text.split("Host node1\n")[1].split("\n\n")[0]
        assert '    IdentityFile "/keys/my key%%1"' in node1
        assert "UserKnownHostsFile" not in node1
        assert "ControlMaster" not in text

    def test_name_clash_is_refused(self, lab_plan: Plan) -> None:
        data = json.loads(lab_plan.to_json())
        data["nodes"][0]["name"] = "target"
        with pytest.raises(KvpodError, match="share the name target"):
            ssh_config_text(Plan.model_validate(data))

    def test_data24_is_not_logged_in_to(self, lab_plan: Plan) -> None:
        data = json.loads(lab_plan.to_json())
        data["targets"][0]["kind"] = "data24"
        plan = Plan.model_validate(data)
        assert "Host target" not in ssh_config_text(plan)
        assert report_rows(plan) == ["node1", "node2", POD_ROW]


class TestSuiteCommand:
    def test_command(self, tmp_path: Path) -> None:
        suite = Path("/opt/suite")
        argv = suite_command(
            suite, tmp_path / "plan.json", tmp_path / "ssh", tmp_path / "j.xml", limit=["node2"], workers=3
        )
        assert argv[:4] == [sys.executable, "-m", "pytest", "/opt/suite"]
        joined = " ".join(argv)
        for part in (
            "-c /opt/suite/pytest.ini",
            "--rootdir /opt/suite",
            "-p no:cacheprovider",
            "-p xdist.plugin",
            "-p testinfra.plugin",
            "-n 3",
            "--dist loadscope",
            f"--junitxml {tmp_path}/j.xml",
            f"--kvpod-plan {tmp_path}/plan.json",
            f"--ssh-config {tmp_path}/ssh",
            "--kvpod-limit node2",
        ):
            assert part in joined

    def test_workers(self, lab_plan: Plan) -> None:
        assert worker_count(lab_plan, None) == 3  # two nodes and the target
        assert worker_count(lab_plan, ["node1"]) == 2

    def test_environment(self) -> None:
        env = suite_env({"PATH": "/bin", "PYTEST_ADDOPTS": "--strict-markers", "KVPOD_PLAN": "x"})
        assert env == {"PATH": "/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _collect(plan: Plan, tmp_path: Path, *extra: str) -> list[str]:
    plan_json = tmp_path / "plan.json"
    plan_json.write_text(plan.to_json())
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host *\n    HostName 127.0.0.1\n")
    suite = verify_suite_dir()
    argv = suite_command(suite, plan_json, ssh_config, tmp_path / "junit.xml", limit=None, workers=1)
    argv = [a for a in argv if a not in ("-n", "1")] + ["--collect-only", *extra]
    env = suite_env({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})  # this checkout's kvpod
    proc = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


class TestSuiteCollects:
    def test_every_area_for_every_node(self, lab_plan: Plan, tmp_path: Path) -> None:
        ids = _collect(lab_plan, tmp_path)
        for area in AREAS:
            assert any(i.startswith(f"{area}/") for i in ids), area
        for node in ("node1", "node2"):
            for expected in (
                f"fabric/test_fabric.py::TestInterfaces::test_vlan_mtu[{node}]",
                f"fabric/test_fabric.py::TestPortalPath::test_portal_ping[{node}-iom-a-p1]",
                f"fabric/test_fabric.py::TestPortalPath::test_portal_ping[{node}-iom-b-p1]",
                f"fabric/test_fabric.py::TestSocketBuffers::test_sysctl[{node}-net.core.rmem_max]",
                f"nvme_initiator/test_nvme_initiator.py::TestKernelModules::test_module_loaded[{node}-nvme_rdma]",
                f"nvme_initiator/test_nvme_initiator.py::TestKernelModules::test_module_persisted[{node}-8021q]",
                f"nvme_initiator/test_nvme_initiator.py::TestHostIdentity::test_host_nqn[{node}]",
                f"nvme_initiator/test_nvme_initiator.py::TestControllers::test_controller_per_portal[{node}-iom-b-p1]",
                f"nvme_initiator/test_nvme_initiator.py::TestConnectUnit::test_connect_unit_enabled[{node}]",
                f"namespace/test_namespace_mapping.py::TestMountedNamespace::test_mounted_subsystem[{node}]",
                f"namespace/test_namespace_mapping.py::TestMountedNamespace::test_no_other_subsystem[{node}]",
                f"kv_mount/test_kv_mount.py::TestMount::test_mount_option[{node}-noatime]",
                f"kv_mount/test_kv_mount.py::TestCapacity::test_room_for_disk_budget[{node}]",
                f"lmcache/test_lmcache.py::TestConfiguration::test_setting[{node}-engine0-max_local_disk_size]",
                f"lmcache/test_lmcache.py::TestConfiguration::test_setting[{node}-engine1-local_disk]",
                f"lmcache/test_lmcache.py::TestLocalDisk::test_local_disk_writable[{node}-engine1]",
                f"vllm/test_vllm.py::TestCommandLine::test_argument[{node}-engine0-tensor-parallel-size]",
                f"vllm/test_vllm.py::TestCommandLine::test_argument[{node}-engine1-port]",
                f"vllm/test_vllm.py::TestEnvironment::test_environment_variable[{node}-engine0-PYTHONHASHSEED]",
                f"vllm/test_vllm.py::TestEnvironment::test_environment_variable[{node}-engine1-CUDA_VISIBLE_DEVICES]",
                f"vllm/test_vllm.py::TestUnit::test_unit_active[{node}-engine0]",
                f"vllm/test_vllm.py::TestUnit::test_unit_active[{node}-engine1]",
                f"vllm/test_vllm.py::TestHealth::test_health[{node}-engine0]",
                f"vllm/test_vllm.py::TestHealth::test_health[{node}-engine1]",
                f"vllm/test_vllm.py::TestHealth::test_model_served[{node}-engine1]",
                f"vllm/test_vllm.py::TestInstallation::test_lmcache_gpu_ops[{node}]",
                f"enclosure/test_discovery.py::TestDiscovery::test_discovery[{node}-iom-a-p1]",
            ):
                assert expected in ids, expected
        assert "namespace/test_namespace_mapping.py::TestPodMapping::test_subsystem_on_one_node[pod]" in ids
        for drive in ("drive01", "drive02", "drive03"):
            assert f"target/test_nvmet_target.py::TestSubsystems::test_allowed_hosts[target-{drive}]" in ids
        assert "target/test_nvmet_target.py::TestPorts::test_port[target-iom-b-p1]" in ids
        per_node = [i for i in ids if "[node1" in i]
        assert len(per_node) == len([i for i in ids if "[node2" in i])

    def test_limit_and_yaml_mode(self, lab_plan: Plan, tmp_path: Path) -> None:
        data = json.loads(lab_plan.to_json())
        for node in data["nodes"]:
            for engine in node["engines"]:
                engine["lmcache"]["config_mode"] = "yaml"
                engine["lmcache"]["config_file"] = f"/etc/kvpod/lmcache@{engine['index']}.yaml"
                engine["lmcache"]["extra"] = {"remote_url": None}
        ids = _collect(Plan.model_validate(data), tmp_path, "--kvpod-limit", "node2")
        assert not [i for i in ids if "[node1" in i]
        env_check = "vllm/test_vllm.py::TestEnvironment::test_environment_variable"
        assert f"{env_check}[node2-engine1-LMCACHE_CONFIG_FILE]" in ids
        assert f"{env_check}[node2-engine0-LMCACHE_CHUNK_SIZE]" not in ids
        assert "lmcache/test_lmcache.py::TestConfiguration::test_setting[node2-engine1-remote_url]" in ids
        assert "namespace/test_namespace_mapping.py::TestPodMapping::test_subsystem_on_one_node[pod]" in ids

    def test_data24_pod_checks_its_enclosure_from_the_nodes(self, lab_plan: Plan, tmp_path: Path) -> None:
        data = json.loads(lab_plan.to_json())
        data["targets"][0]["kind"] = "data24"
        data["targets"][0]["ssh"] = None
        ids = _collect(Plan.model_validate(data), tmp_path)
        assert not [i for i in ids if i.startswith("target/")]
        assert "enclosure/test_discovery.py::TestDiscovery::test_discovery[node2-iom-b-p1]" in ids

    def test_grouped_by_host(self, lab_plan: Plan, tmp_path: Path) -> None:
        """Every test names its host, so the suite's scheduler gives all checks of a host to one worker (one
        state read per host); the pod-wide check comes last."""
        ids = _collect(lab_plan, tmp_path)
        hosts = ["node1", "node2", "target", POD_ROW]
        by_host: dict[str, list[str]] = {}
        for test_id in ids:
            by_host.setdefault(host_of_test(test_id, hosts), []).append(test_id)
        assert sorted(by_host) == sorted(hosts), by_host.get("")
        # with two engines each engine's unit, arguments, environment (LMCache and Hugging Face), LMCache
        # configuration, directory, health and model; the node's GPU ops, Hugging Face file and path settings
        assert len(by_host["node1"]) == len(by_host["node2"]) == 119
        assert len(by_host["target"]) == 14
        assert by_host[POD_ROW] == [ids[-1]]
        assert ids[-1] == "namespace/test_namespace_mapping.py::TestPodMapping::test_subsystem_on_one_node[pod]"

    def test_unknown_limit_is_a_usage_error(self, lab_plan: Plan, tmp_path: Path) -> None:
        with pytest.raises(AssertionError, match="unknown node node9"):
            _collect(lab_plan, tmp_path, "--kvpod-limit", "node9")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestRunVerify:
    def test_unreachable_pod_is_exit_2_with_every_row_unreachable(
        self, lab_plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the suite imports this checkout's kvpod
        data = json.loads(lab_plan.to_json())
        port = _closed_port()
        for host in [*data["nodes"], *data["targets"]]:
            host["ssh"]["port"] = port
            host["ssh"]["known_hosts_file"] = str(tmp_path / "known_hosts")
        junit = tmp_path / "copy.xml"
        report = verify.run_verify(Plan.model_validate(data), tmp_path, limit=["node1"], junit_copy=junit)
        assert report.suite_error is None
        assert report.verdict == "incomplete"
        assert report.unreachable_hosts == ["node1", "target"]
        assert {c.outcome for c in report.checks} == {"unreachable"}
        assert {c.host for c in report.checks} == {"node1", "target", POD_ROW}
        assert junit.exists()
        for name in ("plan.json", "ssh_config", "junit.xml", "pytest.log"):
            assert (tmp_path / name).exists(), name


def _run_simulated(plan: Plan, tmp_path: Path, breaks: dict[str, list[str]] | None = None) -> tuple[VerifyReport, list]:
    """The suite, as ``kvpod verify`` runs it, against the simulated pod (``tests/verify_pod_sim.py``)."""
    plan_json, junit, log = tmp_path / "plan.json", tmp_path / "junit.xml", tmp_path / "reads.log"
    plan_json.write_text(plan.to_json())
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host *\n    HostName 127.0.0.1\n")
    suite = verify_suite_dir()
    argv = suite_command(suite, plan_json, ssh_config, junit, limit=None, workers=worker_count(plan, None))
    argv += ["-p", "tests.verify_pod_sim"]
    env = suite_env(
        {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "KVPOD_SIM_LOG": str(log),
            "KVPOD_SIM_BREAKS": json.dumps(breaks or {}),
            SECRETS_ENV: sim_secrets(),
        }
    )
    proc = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    reads = [tuple(line.split("\t")) for line in log.read_text().splitlines()]
    return parse_junit(junit.read_text(), report_rows(plan)), reads


class TestSimulatedPod:
    """The whole suite against a simulated healthy pod: every check holds, and each host answers one read."""

    def test_a_healthy_pod_holds_with_one_read_per_host(self, lab_plan: Plan, tmp_path: Path) -> None:
        report, reads = _run_simulated(lab_plan, tmp_path)
        assert [c.test_id for c in report.failures] == []
        assert (report.passed, report.verdict) == (247, "held")
        assert sorted(c.name for c in report.checks if c.outcome == "skipped") == [
            "test_extra_arguments[node1-engine0]",
            "test_extra_arguments[node1-engine1]",
            "test_extra_arguments[node2-engine0]",
            "test_extra_arguments[node2-engine1]",
            "test_lmcache_gpu_ops[node1]",
            "test_lmcache_gpu_ops[node2]",
        ]
        full = {host: pid for pid, host, kind in reads if kind in ("node", "target")}
        assert sorted(host for _, host, kind in reads if kind in ("node", "target")) == ["node1", "node2", "target"]
        assert len(set(full.values())) == 3  # the three hosts were read in three workers, each once
        small = [(pid, host) for pid, host, kind in reads if kind == "controllers"]
        assert sorted(host for _, host in small) in ([], ["node1"], ["node2"], ["node1", "node2"])
        assert all(full[host] != pid for pid, host in small)  # only where the node's own read is not at hand
        per_host = {h: sum(1 for _, host, _ in reads if host == h) for h in ("node1", "node2", "target")}
        assert per_host["target"] == 1 and per_host["node1"] <= 2 and per_host["node2"] <= 2

    def test_breaks_are_named_on_their_host_with_expected_and_found(self, lab_plan: Plan, tmp_path: Path) -> None:
        breaks = {"node1": ["unmounted"], "node2": ["vlan-mtu"], "target": ["unreachable"]}
        report, _ = _run_simulated(lab_plan, tmp_path, breaks)
        assert report.verdict == "incomplete"
        assert report.unreachable_hosts == ["target"]
        assert {c.outcome for c in report.checks if c.host == "target"} == {"unreachable"}
        failed = {c.name: c for c in report.failures}
        assert {c.host for c in failed.values()} == {"node1", "node2"}
        assert [n for n, c in failed.items() if c.host == "node2"] == ["test_vlan_mtu[node2]"]
        mtu = failed["test_vlan_mtu[node2]"]
        assert (mtu.area, mtu.message, mtu.expected, mtu.found) == ("fabric", "MTU of eth1.100", "9000", "1500")
        for name in (
            "test_filesystem[node1]",
            "test_mount_option[node1-noatime]",
            "test_mount_unit_active[node1]",
            "test_mounted_subsystem[node1]",
            "test_local_disk_on_mount[node1]",
        ):
            assert name in failed, sorted(failed)
        unit = failed["test_mount_unit_active[node1]"]
        assert (unit.message, unit.expected, unit.found) == ("mnt-kvcache.mount ActiveState", "'active'", "'inactive'")
        option = failed["test_mount_option[node1-noatime]"]
        assert (option.expected, option.found) == ("to include 'noatime'", "not mounted")
        assert {c.area for c in failed.values() if c.host == "node1"} <= {"kv_mount", "namespace", "lmcache"}
        assert report.cell(POD_ROW, "namespace").status == "ok"


def test_passing_checks_report_what_they_saw() -> None:
    xml = (
        '<testsuites><testsuite><testcase classname="vllm.test_vllm.TestInstallation" '
        'name="test_interpreter_imports_the_lmcache_connector[node1]"><properties>'
        '<property name="kvpod_host" value="node1"/><property name="kvpod_area" value="vllm"/>'
        '<property name="interpreter" value="/opt/kvpod/vllm/bin/python"/>'
        '<property name="vllm" value="0.11.0"/><property name="lmcache" value="0.5.6"/>'
        "</properties></testcase></testsuite></testsuites>"
    )
    report = parse_junit(xml, ["node1"])
    assert report.reported == {
        "node1": {"interpreter": "/opt/kvpod/vllm/bin/python", "vllm": "0.11.0", "lmcache": "0.5.6"}
    }


def test_unreadable_and_not_applicable_checks_are_reported_by_name(lab_plan: Plan, tmp_path: Path) -> None:
    """A kernel without the ``kato`` attribute, and DCB on soft-RoCE NICs with RoCE QoS planned: never a silent
    pass, each check reports by name what it could not check and why."""
    qos = RoceQosPlan(priority=3, dscp=[26], ecn=True)
    data = json.loads(lab_plan.to_json())
    for node in data["nodes"]:
        node["fabric"]["roce_qos"] = qos.model_dump()
    plan = Plan.model_validate(data)
    report, _ = _run_simulated(plan, tmp_path, {"node1": ["no-kato"]})
    assert report.verdict == "held", [c.test_id for c in report.failures]
    node1, node2 = report.reported["node1"], report.reported["node2"]
    assert node1["nvme0 kato"] == node1["nvme1 kato"] == "not readable (no such sysfs attribute on this kernel)"
    assert "nvme0 kato" not in node2
    for reported in (node1, node2):
        for setting in ("dscp-trust", "pfc", "ecn"):
            assert reported[setting] == "not applicable (soft-RoCE)"
