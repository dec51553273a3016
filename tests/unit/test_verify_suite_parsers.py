"""The verify suite's pure parts without hosts: command output parsers and what the plan expects."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from deploy.loader import load_spec
from deploy.paths import verify_suite_dir
from deploy.plan import NodePlan, Plan, build_plan

sys.path.insert(0, str(verify_suite_dir()))

import verify_expect as ve
import verify_facts as vf

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab" / "pod.yaml"


@pytest.fixture(scope="module")
def lab_plan() -> Plan:
    return build_plan(load_spec(LAB))


@pytest.fixture
def node1(lab_plan: Plan) -> NodePlan:
    return lab_plan.node("node1")


class TestControllers:
    def test_sysfs_lines(self) -> None:
        text = (
            "nvme0\trdma\tnqn.2024-01.io.kvpod.lab:target-drive01\ttraddr=10.78.0.1,trsvcid=4420\tlive\n"
            "nvme1\trdma\tnqn.2024-01.io.kvpod.lab:target-drive01\ttraddr=10.78.0.2,trsvcid=4420,src_addr=10.78.0.3"
            "\tconnecting\n"
            "nvme2\tpcie\tnqn.2014.08.org.nvmexpress:8086-local\t0000:01:00.0\tlive\n"
            "garbage line\n"
        )
        ctrls = vf.parse_controllers(text)
        assert [(c.name, c.traddr, c.trsvcid, c.state, c.fabric) for c in ctrls] == [
            ("nvme0", "10.78.0.1", "4420", "live", True),
            ("nvme1", "10.78.0.2", "4420", "connecting", True),
            ("nvme2", "", "", "live", False),
        ]


class TestDiscovery:
    def test_only_nvme_subsystems(self) -> None:
        text = json.dumps(
            {
                "genctr": 4,
                "records": [
                    {
                        "trtype": "rdma",
                        "adrfam": "ipv4",
                        "subtype": "current discovery subsystem",
                        "trsvcid": "4420",
                        "subnqn": ve.DISCOVERY_NQN,
                        "traddr": "10.78.0.1",
                    },
                    {
                        "trtype": "rdma",
                        "adrfam": "ipv4",
                        "subtype": "nvme subsystem",
                        "portid": 1,
                        "trsvcid": "4420 ",
                        "subnqn": "nqn.2024-01.io.kvpod.lab:target-drive01",
                        "traddr": "10.78.0.1",
                    },
                ],
            }
        )
        assert vf.parse_discovery(text) == [
            {
                "trtype": "rdma",
                "adrfam": "ipv4",
                "subtype": "nvme subsystem",
                "portid": "1",
                "trsvcid": "4420",
                "subnqn": "nqn.2024-01.io.kvpod.lab:target-drive01",
                "traddr": "10.78.0.1",
            }
        ]
        assert vf.parse_discovery("") == []
        assert vf.parse_discovery('{"genctr": 1, "records": []}') == []


class TestNvmet:
    def test_dump(self) -> None:
        nqn1, nqn3 = "nqn.x:target-drive01", "nqn.x:target-drive03"
        text = "\n".join(
            [
                f"subsystem\t{nqn1}\tattr_allow_any_host\t0",
                f"subsystem\t{nqn1}\tallowed_host\tnqn.2014-08.org.nvmexpress:uuid:a",
                f"namespace\t{nqn1}\t1\t/srv/nvmet/drive1.img\t1",
                f"subsystem\t{nqn3}\tattr_allow_any_host\t1",
                "port\t1\taddr_trtype\trdma",
                "port\t1\taddr_traddr\t10.78.0.1",
                "port\t1\taddr_trsvcid\t4420",
                "port\t1\taddr_adrfam\tipv4",
                f"port\t1\tsubsystem\t{nqn1}",
                f"port\t1\tsubsystem\t{nqn3}",
            ]
        )
        state = vf.parse_nvmet(text)
        assert state.present
        assert state.subsystems[nqn1].allowed_hosts == {"nqn.2014-08.org.nvmexpress:uuid:a"}
        assert state.subsystems[nqn1].namespaces == {"1": ("/srv/nvmet/drive1.img", "1")}
        assert state.subsystems[nqn3].allow_any_host == "1"
        assert state.subsystems[nqn3].allowed_hosts == set()
        assert state.ports["1"].attrs["addr_traddr"] == "10.78.0.1"
        assert state.ports["1"].subsystems == {nqn1, nqn3}
        assert not vf.parse_nvmet("missing\n").present


class TestFiles:
    def test_env_file(self) -> None:
        text = (
            "# kvpod: LMCache settings\n"
            "LMCACHE_CHUNK_SIZE=256\n"
            "LMCACHE_LOCAL_CPU=True\n"
            'LMCACHE_EXTRA="a \\"quoted\\" value"\n'
            "export PYTHONHASHSEED='0'\n"
            "not a setting\n"
        )
        assert vf.parse_env_file(text) == {
            "LMCACHE_CHUNK_SIZE": "256",
            "LMCACHE_LOCAL_CPU": "True",
            "LMCACHE_EXTRA": 'a "quoted" value',
            "PYTHONHASHSEED": "0",
        }

    def test_sysctl_file(self) -> None:
        text = "# comment\nnet.core.rmem_max = 134217728\nnet/core/wmem_max=134217728\n-net.ipv4.x = 1\n"
        assert vf.parse_sysctl_file(text) == {
            "net.core.rmem_max": "134217728",
            "net.core.wmem_max": "134217728",
            "net.ipv4.x": "1",
        }

    def test_modules_load(self) -> None:
        text = (
            "kvpod-nvme.conf\t# kvpod\nkvpod-nvme.conf\tnvme-rdma\nkvpod-nvme.conf\tnvme_fabrics\nother.conf\t8021q\n"
        )
        assert vf.parse_modules_load(text) == {
            "nvme_rdma": {"kvpod-nvme.conf"},
            "nvme_fabrics": {"kvpod-nvme.conf"},
            "8021q": {"other.conf"},
        }

    def test_systemctl_show_keeps_repeated_keys(self) -> None:
        text = (
            "MainPID=4242\nEnvironmentFiles=/etc/kvpod/lmcache.env (ignore_errors=no)\n"
            "EnvironmentFiles=/etc/default/x (ignore_errors=yes)\nActiveState=active\n"
        )
        props = vf.parse_key_values(text)
        assert props["MainPID"] == "4242"
        assert "/etc/kvpod/lmcache.env" in props["EnvironmentFiles"].split()
        assert "/etc/default/x" in props["EnvironmentFiles"].split()


class TestProcess:
    ARGV: ClassVar[list[str]] = [
        "/usr/bin/python3",
        "/usr/local/bin/vllm",
        "serve",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--tensor-parallel-size",
        "4",
        "--gpu-memory-utilization=0.90",
        "--port",
        "8000",
        "--kv-transfer-config",
        '{"kv_role": "kv_both", "kv_connector": "LMCacheConnectorV1"}',
        "--enable-prefix-caching",
    ]

    def test_cmdline_and_environ(self) -> None:
        data = b"\0".join(a.encode() for a in self.ARGV) + b"\0"
        assert vf.parse_nul_list(data) == self.ARGV
        assert vf.parse_environ(b"A=1\0B=x=y\0\0") == {"A": "1", "B": "x=y"}

    def test_arguments(self, node1: NodePlan) -> None:
        wanted = ve.vllm_arguments(node1)
        assert ve.same_value(wanted["model"], vf.serve_model(self.ARGV))
        assert ve.same_value(wanted["--tensor-parallel-size"], vf.argument_value(self.ARGV, "--tensor-parallel-size"))
        assert ve.same_value(
            wanted["--gpu-memory-utilization"], vf.argument_value(self.ARGV, "--gpu-memory-utilization")
        )
        assert ve.same_value(wanted["--kv-transfer-config"], vf.argument_value(self.ARGV, "--kv-transfer-config"))
        assert not ve.same_value(wanted["--max-model-len"], vf.argument_value(self.ARGV, "--max-model-len"))
        assert vf.contains_sequence(self.ARGV, ["--port", "8000"])
        assert not vf.contains_sequence(self.ARGV, ["--port", "9000"])


class TestExpectations:
    def test_node_items_from_the_plan(self, node1: NodePlan) -> None:
        assert ve.kernel_modules(node1) == ["nvme_rdma", "nvme_fabrics", "8021q", "rdma_rxe"]
        assert ve.sysctls(node1) == {"net.core.rmem_max": 134217728, "net.core.wmem_max": 134217728}
        assert ve.ping_size(node1) == 8972
        assert ve.local_disk_dir(node1) == "/mnt/kvcache/lmcache"
        assert ve.lmcache_settings(node1) == {
            "chunk_size": 256,
            "local_cpu": True,
            "max_local_cpu_size": 0.25,
            "local_disk": "file:///mnt/kvcache/lmcache/",
            "max_local_disk_size": 0.25,
        }
        env = ve.lmcache_environment(node1)
        assert env["LMCACHE_MAX_LOCAL_DISK_SIZE"] == 0.25
        assert env["PYTHONHASHSEED"] == "0"
        assert env["LMCACHE_TRACK_USAGE"] == "false"
        assert ve.CONFIG_FILE_VAR not in env
        allowed = node1.model_copy(update={"lmcache": node1.lmcache.model_copy(update={"telemetry": True})})
        assert "LMCACHE_TRACK_USAGE" not in ve.lmcache_environment(allowed)

    def test_yaml_mode_environment(self, lab_plan: Plan) -> None:
        data = json.loads(lab_plan.to_json())
        lm = data["nodes"][0]["lmcache"]
        lm.update(config_mode="yaml", config_file="/etc/kvpod/lmcache.yaml", extra={"blend": {"on": True}})
        node = Plan.model_validate(data).nodes[0]
        assert ve.lmcache_environment(node) == {
            ve.CONFIG_FILE_VAR: "/etc/kvpod/lmcache.yaml",
            "LMCACHE_TRACK_USAGE": "false",
            "PYTHONHASHSEED": "0",
        }
        assert ve.lmcache_settings(node)["blend"] == {"on": True}

    @pytest.mark.parametrize(
        ("expected", "found", "same"),
        [
            (True, "True", True),
            (True, "true", True),
            (False, "True", False),
            (0.25, "0.250", True),
            (256, "256", True),
            (256, "255", False),
            (0.9, "zero", False),
            ("file:///mnt/kvcache/lmcache/", "file:///mnt/kvcache/lmcache/", True),
            ({"a": 1}, '{"a":1}', True),
            ("x", None, False),
        ],
    )
    def test_same_value(self, expected: object, found: str | None, same: bool) -> None:
        assert ve.same_value(expected, found) is same

    def test_failure_message(self) -> None:
        with pytest.raises(AssertionError) as exc:
            ve.expect("NVMe-oF subsystems connected", {"b", "a"}, None)
        assert str(exc.value) == "NVMe-oF subsystems connected: expected {'a', 'b'}, found nothing"
        with pytest.raises(AssertionError) as exc:
            ve.fail("live options of /mnt/kvcache", ve.Text("to include 'noatime'"), ve.Text("rw,relatime"))
        assert str(exc.value) == "live options of /mnt/kvcache: expected to include 'noatime', found rw,relatime"
        ve.expect("same", 1, 1)
