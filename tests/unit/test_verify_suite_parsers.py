"""The verify suite's pure parts without hosts: command output parsers and what the plan expects."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from deploy.loader import load_spec
from deploy.plan import NodePlan, Plan, build_plan
from deploy.shipped import verify_suite_dir

sys.path.insert(0, str(verify_suite_dir()))

import verify_expect as ve
import verify_parse as vp
import verify_parse_host as vh
import verify_script as vs
import verify_state as vt

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
        ctrls = vp.parse_controllers(text)
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
        assert vp.parse_discovery(text) == [
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
        assert vp.parse_discovery("") == []
        assert vp.parse_discovery('{"genctr": 1, "records": []}') == []


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
        state = vp.parse_nvmet(text)
        assert state.present
        assert state.subsystems[nqn1].allowed_hosts == {"nqn.2014-08.org.nvmexpress:uuid:a"}
        assert state.subsystems[nqn1].namespaces == {"1": ("/srv/nvmet/drive1.img", "1")}
        assert state.subsystems[nqn3].allow_any_host == "1"
        assert state.subsystems[nqn3].allowed_hosts == set()
        assert state.ports["1"].attrs["addr_traddr"] == "10.78.0.1"
        assert state.ports["1"].subsystems == {nqn1, nqn3}
        assert not vp.parse_nvmet("missing\n").present


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
        assert vp.parse_env_file(text) == {
            "LMCACHE_CHUNK_SIZE": "256",
            "LMCACHE_LOCAL_CPU": "True",
            "LMCACHE_EXTRA": 'a "quoted" value',
            "PYTHONHASHSEED": "0",
        }

    def test_sysctl_file(self) -> None:
        text = "# comment\nnet.core.rmem_max = 134217728\nnet/core/wmem_max=134217728\n-net.ipv4.x = 1\n"
        assert vp.parse_sysctl_file(text) == {
            "net.core.rmem_max": "134217728",
            "net.core.wmem_max": "134217728",
            "net.ipv4.x": "1",
        }

    def test_modules_load(self) -> None:
        text = (
            "kvpod-nvme.conf\t# kvpod\nkvpod-nvme.conf\tnvme-rdma\nkvpod-nvme.conf\tnvme_fabrics\nother.conf\t8021q\n"
        )
        assert vp.parse_modules_load(text) == {
            "nvme_rdma": {"kvpod-nvme.conf"},
            "nvme_fabrics": {"kvpod-nvme.conf"},
            "8021q": {"other.conf"},
        }

    def test_systemctl_show_keeps_repeated_keys(self) -> None:
        text = (
            "MainPID=4242\nEnvironmentFiles=/etc/kvpod/lmcache@0.env (ignore_errors=no)\n"
            "EnvironmentFiles=/etc/default/x (ignore_errors=yes)\nActiveState=active\n"
        )
        props = vp.parse_key_values(text)
        assert props["MainPID"] == "4242"
        assert "/etc/kvpod/lmcache@0.env" in props["EnvironmentFiles"].split()
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
        """``grep -Haz '' /proc/PID/cmdline /proc/PID/environ``: each NUL-terminated record after its file name."""
        text = "".join(f"/proc/77/cmdline:{a}\0" for a in self.ARGV) + "/proc/77/environ:A=1\0/proc/77/environ:B=x=y\0"
        assert vh.parse_process(text) == (self.ARGV, {"A": "1", "B": "x=y"})
        assert vh.parse_process("") == ([], {})

    def test_arguments(self, node1: NodePlan) -> None:
        wanted = ve.vllm_arguments(node1)
        assert ve.same_value(wanted["model"], vh.serve_model(self.ARGV))
        assert ve.same_value(wanted["--tensor-parallel-size"], vh.argument_value(self.ARGV, "--tensor-parallel-size"))
        assert ve.same_value(
            wanted["--gpu-memory-utilization"], vh.argument_value(self.ARGV, "--gpu-memory-utilization")
        )
        assert ve.same_value(wanted["--kv-transfer-config"], vh.argument_value(self.ARGV, "--kv-transfer-config"))
        assert not ve.same_value(wanted["--max-model-len"], vh.argument_value(self.ARGV, "--max-model-len"))
        assert vh.contains_sequence(self.ARGV, ["--port", "8000"])
        assert not vh.contains_sequence(self.ARGV, ["--port", "9000"])


class TestExpectations:
    def test_node_items_from_the_plan(self, node1: NodePlan) -> None:
        assert ve.kernel_modules(node1) == ["nvme_rdma", "nvme_fabrics", "8021q", "rdma_rxe"]
        assert ve.sysctls(node1) == {"net.core.rmem_max": 134217728, "net.core.wmem_max": 134217728}
        assert ve.ping_size(node1) == 8972
        first, second = node1.engines
        assert ve.local_disk_dir(node1) == ve.local_disk_dir(node1, first) == "/mnt/kvcache/lmcache/engine0"
        assert ve.local_disk_dir(node1, second) == "/mnt/kvcache/lmcache/engine1"
        # the lab's 1 GiB budgets, split between two engines, then over each one's four ranks
        assert ve.lmcache_settings(node1, second) == {
            "chunk_size": 256,
            "local_cpu": True,
            "max_local_cpu_size": 0.125,
            "local_disk": "file:///mnt/kvcache/lmcache/engine1/",
            "max_local_disk_size": 0.125,
        }
        env = ve.lmcache_environment(node1, second)
        assert env["LMCACHE_MAX_LOCAL_DISK_SIZE"] == 0.125
        assert env["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
        assert env["PYTHONHASHSEED"] == "0"
        assert env["LMCACHE_TRACK_USAGE"] == "false"
        assert ve.CONFIG_FILE_VAR not in env
        assert ve.vllm_arguments(node1, second)["--port"] == 8001
        engines = [
            e.model_copy(update={"lmcache": e.lmcache.model_copy(update={"telemetry": True})}) for e in node1.engines
        ]
        allowed = node1.model_copy(update={"engines": engines})
        assert "LMCACHE_TRACK_USAGE" not in ve.lmcache_environment(allowed)

    def test_yaml_mode_environment(self, lab_plan: Plan) -> None:
        data = json.loads(lab_plan.to_json())
        lm = data["nodes"][0]["engines"][0]["lmcache"]
        lm.update(config_mode="yaml", config_file="/etc/kvpod/lmcache@0.yaml", extra={"blend": {"on": True}})
        node = Plan.model_validate(data).nodes[0]
        assert ve.lmcache_environment(node) == {
            "CUDA_VISIBLE_DEVICES": "0,1,2,3",
            ve.CONFIG_FILE_VAR: "/etc/kvpod/lmcache@0.yaml",
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


# -- the state read: sections and the parsers of each command's output ---------------------------------------

B = "@kvpod-0123456789abcdef"

# `ip -d -j addr show` (iproute2 6.1) on a lab node: loopback, the fabric NIC, its 802.1Q VLAN interface.
IP_ADDR = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",'
    '"operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00",'
    '"broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"num_tx_queues":1,'
    '"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"addr_info":[{"family":"inet","local":"127.0.0.1",'
    '"prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},'
    '{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295}]},'
    '{"ifindex":3,"ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":9000,'
    '"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"52:54:00:6b:1f:02","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,'
    '"max_mtu":65535,"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,'
    '"parentbus":"virtio","parentdev":"virtio2","addr_info":[]},'
    '{"ifindex":4,"link":"eth1","ifname":"eth1.100","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],'
    '"mtu":9000,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"52:54:00:6b:1f:02","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":0,'
    '"max_mtu":65535,"linkinfo":{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":100,'
    '"flags":["REORDER_HDR"]}},"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,'
    '"addr_info":[{"family":"inet","local":"10.78.0.3","prefixlen":24,"broadcast":"10.78.0.255","scope":"global",'
    '"label":"eth1.100","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6",'
    '"local":"fe80::5054:ff:fe6b:1f02","prefixlen":64,"scope":"link","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295}]}]\n'
)

# `printf 'route get %s\n' 10.78.0.1 10.78.0.9 10.78.0.2 | ip -force -j -batch -`: one array per answer; the
# unreachable one only printed "RTNETLINK answers: Network is unreachable" on stderr.
IP_ROUTES = (
    '[{"dst":"10.78.0.1","dev":"eth1.100","prefsrc":"10.78.0.3","flags":[],"uid":0,"cache":[]}]\n'
    '[{"dst":"10.78.0.2","gateway":"10.78.0.254","dev":"eth1.100","prefsrc":"10.78.0.3","flags":[],"uid":0,'
    '"cache":[]}]\n'
)

# `systemctl show -p Id,...` of three units (systemd 252): the service's own properties come before the
# unit's, a blank line between units; the second unit does not exist.
SYSTEMCTL_SHOW = """MainPID=1234
ExecStart={ path=/usr/local/bin/vllm ; argv[]=/usr/local/bin/vllm serve meta-llama/Llama-3.1-8B-Instruct \
--port 8000 ; ignore_errors=no ; start_time=[Tue 2024-06-04 10:01:02 UTC] ; stop_time=[n/a] ; pid=1234 ; \
code=(null) ; status=0/0 }
EnvironmentFiles=/etc/kvpod/lmcache@0.env (ignore_errors=no)
User=vllm
Id=kvpod-vllm@0.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
Where=
What=

MainPID=0
ExecStart=
EnvironmentFiles=
User=
Id=kvpod-nvme-connect.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
Where=
What=

Where=/mnt/kvcache
What=/dev/nvme0n1
Id=mnt-kvcache.mount
LoadState=loaded
ActiveState=active
SubState=mounted
UnitFileState=generated
MainPID=
ExecStart=
EnvironmentFiles=
User=
"""


def _node_reads(node1: NodePlan, lab_plan: Plan) -> vs.NodeReads:
    return ve.node_reads(node1, lab_plan)


class TestSections:
    def test_split_keeps_stdout_exactly_and_stderr_apart(self) -> None:
        text = (
            f"\n{B} begin links\n[1]\n\n{B} end 0\n"
            f"\n{B} begin file /etc/nvme/hostid\nno newline at the end\n{B} end 0\n"
            f"\n{B} begin ping 10.78.0.1\nPING ...\n\n{B} end 1\nping: local error: message too long, mtu=1500"
            f"\n{B} begin empty\n\n{B} end 0\n"
            f"\n{B} done\n"
        )
        sections, done = vp.split_sections(text, B)
        assert done
        assert sections["links"] == vp.Section("links", "[1]\n", 0, "")
        assert sections["file /etc/nvme/hostid"].stdout == "no newline at the end"
        ping = sections["ping 10.78.0.1"]
        assert (ping.rc, ping.ok, ping.stderr) == (1, False, "ping: local error: message too long, mtu=1500")
        assert ping.why() == "exit 1: ping: local error: message too long, mtu=1500"
        assert sections["empty"].stdout == ""

    def test_render_is_the_inverse_and_a_cut_read_is_not_done(self) -> None:
        sections = [vp.Section("a", "x\ny\n", 0, ""), vp.Section("b b", "", 127, "sh: 1: nvme: not found")]
        assert vp.split_sections(vp.render_sections(sections, B), B) == ({s.name: s for s in sections}, True)
        cut = vp.render_sections(sections, B, done=False)
        assert vp.split_sections(cut, B)[1] is False
        half = cut[: cut.index(f"{B} end 127")]
        assert list(vp.split_sections(half, B)[0]) == ["a"]

    def test_boundaries_differ(self) -> None:
        assert vp.new_boundary() != vp.new_boundary()
        assert vp.new_boundary().startswith("@kvpod-")


class TestNetworkParsers:
    def test_links_and_addresses(self) -> None:
        links = vh.parse_links(IP_ADDR)
        assert sorted(links) == ["eth1", "eth1.100", "lo"]
        vlan = links["eth1.100"]
        assert (vlan["link"], vlan["mtu"], vlan["linkinfo"]["info_data"]["id"]) == ("eth1", 9000, 100)
        assert vh.ipv4_addresses(vlan) == {"10.78.0.3/24"}
        assert vh.ipv4_addresses(links["eth1"]) == set()
        assert vh.ipv4_addresses(None) == set()
        assert vh.parse_links("") == {}

    def test_routes_by_destination(self) -> None:
        routes = vh.parse_routes(IP_ROUTES)
        assert routes["10.78.0.1"]["dev"] == "eth1.100"
        assert routes["10.78.0.2"]["gateway"] == "10.78.0.254"
        assert "10.78.0.9" not in routes
        assert vh.parse_json_documents('[1]\n[2] {"a": 3}\n') == [[1], [2], {"a": 3}]

    def test_sysctls_from_grep(self) -> None:
        assert vs.sysctl_path("net.core.rmem_max") == "net/core/rmem_max"
        assert vs.sysctl_path("net.ipv4.conf.eth1/100.rp_filter") == "net/ipv4/conf/eth1.100/rp_filter"
        assert vs.sysctl_key("net/ipv4/conf/eth1.100/rp_filter") == "net.ipv4.conf.eth1/100.rp_filter"
        text = "net/core/rmem_max\x00134217728\nnet/ipv4/tcp_rmem\x004096\t131072\t6291456\n"
        assert vp.parse_grep_values(text) == {
            "net/core/rmem_max": "134217728",
            "net/ipv4/tcp_rmem": "4096\t131072\t6291456",
        }


class TestNodeParsers:
    def test_module_states(self) -> None:
        text = (
            "loaded\tnvme_rdma\nloaded\tnvme_fabrics\nbuiltin-list\n"
            "kernel/drivers/nvme/host/nvme-core.ko\nkernel/net/8021q/8021q.ko\n"
        )
        assert vh.parse_module_states(text, ["nvme_rdma", "nvme_fabrics", "8021q", "rdma_rxe"]) == {
            "nvme_rdma": "loaded",
            "nvme_fabrics": "loaded",
            "8021q": "builtin",
            "rdma_rxe": "absent",
        }
        assert vh.parse_module_states("loaded\tnvme_rdma\n", ["nvme_rdma"]) == {"nvme_rdma": "loaded"}

    def test_findmnt_row(self) -> None:
        row = vh.parse_findmnt_row("259:1 /mnt/kv\\x20cache /dev/nvme0n1 ext4 rw,noatime\n")
        assert row == {
            "maj:min": "259:1",
            "target": "/mnt/kv cache",
            "source": "/dev/nvme0n1",
            "fstype": "ext4",
            "options": "rw,noatime",
        }
        assert vh.parse_findmnt_row("") is None
        assert vh.unescape_raw("caf\\xc3\\xa9") == "café"

    def test_mounted_namespace(self) -> None:
        text = (
            "mounted=yes\nfindmnt=259:1 /mnt/kvcache /dev/nvme0n1 ext4 rw,noatime,errors=remount-ro\n"
            "block=nvme0n1\nsubsysnqn=nqn.2024-01.io.kvpod.lab:target-drive01\nsubsystem=nvme-subsys0\nnsid=1\n"
        )
        row, info = vh.parse_mounted(text)
        assert row is not None and row["options"] == "rw,noatime,errors=remount-ro"
        assert info == {
            "mounted": "yes",
            "source": "/dev/nvme0n1",
            "device": "/dev/nvme0n1",
            "subsysnqn": "nqn.2024-01.io.kvpod.lab:target-drive01",
            "subsystem": "nvme-subsys0",
            "nsid": "1",
        }
        row, info = vh.parse_mounted("mounted=yes\nfindmnt=0:52 /mnt/kvcache tmpfs tmpfs rw,relatime\nnsid=\n")
        assert info == {"mounted": "yes", "source": "tmpfs", "device": "tmpfs", "nsid": ""}
        assert vh.parse_mounted("mounted=no\n") == (None, {"mounted": "no"})

    def test_units_by_position_then_by_id(self) -> None:
        names = ["kvpod-vllm@0.service", "kvpod-nvme-connect.service", "mnt-kvcache.mount"]
        units = vh.parse_unit_blocks(SYSTEMCTL_SHOW, names)
        assert units["kvpod-vllm@0.service"]["MainPID"] == "1234"
        assert units["kvpod-vllm@0.service"]["EnvironmentFiles"].split()[0] == "/etc/kvpod/lmcache@0.env"
        assert units["mnt-kvcache.mount"]["ActiveState"] == "active"
        assert [vh.enablement(units[n]) for n in names] == ["enabled", "not-found", "generated"]
        assert vh.enablement({"LoadState": "loaded", "UnitFileState": ""}) == "no unit file"
        assert vh.enablement({}) == "unknown"
        by_id = vh.parse_unit_blocks(SYSTEMCTL_SHOW, ["mnt-kvcache.mount", "kvpod-vllm@0.service"])
        assert by_id["mnt-kvcache.mount"]["SubState"] == "mounted"

    def test_process(self) -> None:
        text = (
            "/proc/1234/cmdline:/usr/bin/python3\0/proc/1234/cmdline:/usr/local/bin/vllm\0/proc/1234/cmdline:serve\0"
            '/proc/1234/cmdline:{"kv_role": "kv_both"}\0/proc/1234/cmdline:\0'
            "/proc/1234/environ:LMCACHE_LOCAL_DISK=file:///mnt/kvcache/lmcache/\0/proc/1234/environ:PYTHONHASHSEED=0\0"
        )
        records = vh.parse_grep_nul(text)
        assert records["cmdline"] == ["/usr/bin/python3", "/usr/local/bin/vllm", "serve", '{"kv_role": "kv_both"}']
        assert records["environ"] == ["LMCACHE_LOCAL_DISK=file:///mnt/kvcache/lmcache/", "PYTHONHASHSEED=0"]

    def test_writable_space_health(self) -> None:
        text = "notdir\t/tmp/r/mnt/kvcache/lmcache\nyes\t/tmp/r/mnt/kvcache\nno\t/tmp/r/mnt/kvcache/lmcache\n"
        assert vh.parse_writable(text, root="/tmp/r") == {
            "/mnt/kvcache": (True, ""),
            "/mnt/kvcache/lmcache": (False, "/mnt/kvcache/lmcache is not a directory"),
        }
        assert vh.parse_writable("no\t/mnt/kvcache\n") == {"/mnt/kvcache": (False, "no")}
        assert vh.parse_df("      Avail    1B-blocks\n 1929379840  2040373248\n") == {
            "avail": 1929379840,
            "size": 2040373248,
        }
        assert vh.parse_df("df: /mnt/kvcache: No such file or directory\n") == {}
        assert vh.parse_du("1052672\t/mnt/kvcache/lmcache\n") == 1052672
        assert vh.parse_du("") is None
        assert vh.parse_http_status("200\n") == (200, "200")
        assert vh.parse_http_status("000\n") == (0, "000")
        assert vh.parse_http_status("0 <urlopen error [Errno 111] Connection refused>") == (
            0,
            "0 <urlopen error [Errno 111] Connection refused>",
        )

    def test_nvmet_links_and_attributes(self) -> None:
        nqn1, nqn3 = "nqn.2024-01.io.kvpod.lab:target-drive01", "nqn.2024-01.io.kvpod.lab:target-drive03"
        host = "nqn.2014-08.org.nvmexpress:uuid:0ff6365b-5c7c-5b38-9ad2-d567c52d21e5"
        text = (
            f"subsystem\t{nqn1}\tallowed_host\t{host}\n"
            f"port\t1\tsubsystem\t{nqn1}\nport\t1\tsubsystem\t{nqn3}\n"
            "attributes\n"
            f"subsystems/{nqn1}/attr_allow_any_host\x000\n"
            f"subsystems/{nqn1}/namespaces/1/device_path\x00/srv/nvmet/drive1.img\n"
            f"subsystems/{nqn1}/namespaces/1/enable\x001\n"
            f"subsystems/{nqn3}/attr_allow_any_host\x001\n"
            f"subsystems/{nqn3}/namespaces/1/enable\x000\n"
            "ports/1/addr_trtype\x00rdma\nports/1/addr_traddr\x0010.78.0.1\n"
            "ports/1/addr_trsvcid\x004420\nports/1/addr_adrfam\x00ipv4\n"
        )
        state = vp.parse_nvmet(text)
        assert state.present
        assert state.subsystems[nqn1].allowed_hosts == {host}
        assert state.subsystems[nqn1].allow_any_host == "0"
        assert state.subsystems[nqn1].namespaces == {"1": ("/srv/nvmet/drive1.img", "1")}
        assert state.subsystems[nqn3].namespaces == {"1": ("", "0")}
        assert state.subsystems[nqn3].allow_any_host == "1"
        assert state.ports["1"].attrs == {
            "addr_trtype": "rdma",
            "addr_traddr": "10.78.0.1",
            "addr_trsvcid": "4420",
            "addr_adrfam": "ipv4",
        }
        assert state.ports["1"].subsystems == {nqn1, nqn3}
        assert vp.parse_nvmet("attributes\n") == vp.NvmetState(present=True)


class TestNodeState:
    """A whole node's read, as the node's checks see it."""

    def _state(self, node1: NodePlan, lab_plan: Plan, **override: vp.Section) -> vt.NodeState:
        reads = _node_reads(node1, lab_plan)
        nqn = node1.namespace.subsystem_nqn
        sections = {
            "links": vp.Section("links", IP_ADDR, 0),
            "routes": vp.Section("routes", IP_ROUTES, 1, "RTNETLINK answers: Network is unreachable"),
            "rdma": vp.Section("rdma", '[{"ifindex":1,"ifname":"rxe0","port":1,"netdev":"eth1"}]\n', 0),
            "sysctl": vp.Section("sysctl", "net/core/rmem_max\x00134217728\n", 2, "grep: net/core/wmem_max: No such"),
            "file /etc/nvme/hostnqn": vp.Section("file /etc/nvme/hostnqn", node1.host_nqn + "\n", 0),
            "file /etc/nvme/hostid": vp.Section("file /etc/nvme/hostid", "", 1, "/etc/nvme/hostid: no such file"),
            "modules": vp.Section("modules", "loaded\tnvme_rdma\nbuiltin-list\n", 1, "cat: ...: No such file"),
            "modules-load": vp.Section("modules-load", "kvpod.conf\tnvme-rdma\n", 0),
            "controllers": vp.Section(
                "controllers", f"nvme0\trdma\t{nqn}\ttraddr=10.78.0.1,trsvcid=4420,src_addr=10.78.0.3\tlive\n", 0
            ),
            "mount": vp.Section("mount", "mounted=no\n", 0),
            "mount-of": vp.Section("mount-of", "", 1),
            "mount-unit": vp.Section("mount-unit", "mnt-kvcache.mount", 0),
            "units": vp.Section("units", SYSTEMCTL_SHOW, 0),
            "proc-user 1234": vp.Section("proc-user 1234", "vllm\n", 0),
            "proc-data 1234": vp.Section("proc-data 1234", "/proc/1234/cmdline:serve\0/proc/1234/environ:A=1\0", 0),
            "writable": vp.Section("writable", "", 1, "runuser: user vllm does not exist or the user entry ..."),
            "df": vp.Section("df", "      Avail    1B-blocks\n 1929379840  2040373248\n", 0),
            **{
                vs.section_name("health", u): vp.Section(vs.section_name("health", u), "000\n", 0)
                for u in reads.health_urls
            },
            "ping 10.78.0.1": vp.Section("ping 10.78.0.1", "PING 10.78.0.1 ...\n", 1, "ping: local error: mtu=1500"),
        }
        sections.update(override)
        return vt.NodeState(sections, reads)

    def test_reads_of_a_partly_broken_node(self, node1: NodePlan, lab_plan: Plan) -> None:
        state = self._state(node1, lab_plan)
        assert state.links()["eth1.100"]["mtu"] == 9000
        assert state.routes()["10.78.0.1"]["dev"] == "eth1.100"
        assert state.rdma_links()[0]["netdev"] == "eth1"
        assert state.sysctls() == {"net.core.rmem_max": "134217728"}
        assert state.file_text("/etc/nvme/hostnqn") == node1.host_nqn + "\n"
        assert state.file_text("/etc/nvme/hostid") is None
        assert state.module_states()["nvme_rdma"] == "loaded"
        assert state.module_states()["rdma_rxe"] == "absent"
        assert state.modules_load() == {"nvme_rdma": {"kvpod.conf"}}
        assert [c.traddr for c in state.controllers()] == ["10.78.0.1"]
        assert state.mounted() == (None, {"mounted": "no"})
        assert state.mount_of_local_disk() is None
        assert state.unit("mnt-kvcache.mount")["ActiveState"] == "active"
        assert state.unit("kvpod-vllm@0.service")["MainPID"] == "1234"
        assert state.process("1234") == ("vllm", ["serve"], {"A": "1"})
        assert state.writable("/mnt/kvcache") == (False, "runuser: user vllm does not exist or the user entry ...")
        assert state.space() == {"avail": 1929379840, "size": 2040373248, "cache": 0}
        assert state.health(node1.engines[1].health_url) == (0, "000")
        assert state.ping("10.78.0.1") == vt.Probe(1, "PING 10.78.0.1 ...\n", "ping: local error: mtu=1500")

    def test_a_failed_or_missing_command_fails_the_checks_that_read_it(self, node1: NodePlan, lab_plan: Plan) -> None:
        state = self._state(node1, lab_plan, units=vp.Section("units", "Failed to connect to bus: Host is down", 1))
        with pytest.raises(vt.ReadFailed, match="systemctl show: exit 1: Failed to connect to bus"):
            state.unit("kvpod-vllm@0.service")
        with pytest.raises(vt.ReadFailed, match="systemctl show"):  # remembered, raised again
            state.units()
        with pytest.raises(vt.ReadFailed, match=r"ping 10\.78\.0\.2: not in the state read"):
            state.ping("10.78.0.2")
        with pytest.raises(vt.ReadFailed, match=r"nvme discover -t rdma -a 10\.78\.0\.1: not in"):
            state.discovery("rdma", "10.78.0.1", 4420)


def test_nvme_paths_parser_keeps_what_sysfs_showed() -> None:
    text = (
        "iopolicy\tnqn.test:drive01\tround-robin\n"
        "attr\tnvme0\tctrl_loss_tmo\t900\nattr\tnvme0\tfast_io_fail_tmo\toff\nattr\tnvme1\tkato\t10\n"
    )
    paths = vp.parse_nvme_paths(text)
    assert paths.iopolicy == {"nqn.test:drive01": "round-robin"}
    assert paths.attributes == {"nvme0": {"ctrl_loss_tmo": "900", "fast_io_fail_tmo": "off"}, "nvme1": {"kato": "10"}}


def test_dcb_parser_reads_dcb_json_and_ecn() -> None:
    text = 'app {"dscp_prio":[[26,3],[48,6]]}\n\npfc {"prio_pfc":{"0":false,"3":true}}\n\necn roce_np 1\n'
    state = vp.parse_dcb(text)
    assert (state.dscp_prio, state.pfc, state.ecn) == ({26: 3, 48: 6}, {0: False, 3: True}, {"roce_np": "1"})
    assert vp.parse_dcb("app \n") == vp.DcbState()


def test_dcb_is_read_only_on_hardware_nics_with_roce_qos() -> None:
    reference = build_plan(load_spec(Path(__file__).resolve().parents[2] / "inventories/reference/pod.yaml"))
    node = reference.nodes[0]
    assert ve.node_reads(node, reference).dcb == (node.fabric.interface, 3)
    assert "sect dcb dcb_state" in vs.node_script(ve.node_reads(node, reference))
    lab = build_plan(load_spec(Path(__file__).resolve().parents[2] / "inventories/lab/pod.yaml"))
    assert ve.node_reads(lab.nodes[0], lab).dcb is None
    assert ve.dcb_applicable(lab.nodes[0]) == "not applicable (no RoCE QoS planned)"
