"""A simulated pod for the verify suite: a pytest plugin that answers the suite's state reads without hosts.

Loaded into a suite run with ``-p tests.verify_pod_sim`` (the repository root on ``PYTHONPATH``), it replaces
``testinfra.get_host`` with a host that recognises the scripts the suite sends (the node, target and
controllers-only scripts built from the plan) and answers each with the sections a healthy pod built from
that plan would print, in the formats of the real tools (iproute2 6.1, util-linux 2.38, systemd 252,
nvme-cli 2.4, GNU grep). Environment:

``KVPOD_SIM_LOG``     a file; each command a host answers appends ``<worker pid>\\t<host>\\t<script kind>``
``KVPOD_SIM_BREAKS``  JSON ``{host: [break, ...]}``: ``vlan-mtu`` (the VLAN interface at MTU 1500),
                      ``unmounted`` (the KV cache mount and its unit stopped), ``unreachable`` (SSH fails)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import testinfra
from testinfra.backend.base import CommandResult

from deploy.plan import NodePlan, Plan, TargetPlan
from deploy.shipped import verify_suite_dir

sys.path.insert(0, str(verify_suite_dir()))

import verify_expect as ve
import verify_facts as vf

PID = "4242"
PLAN_ENV = "KVPOD_PLAN"


def _breaks(host: str) -> set[str]:
    return set(json.loads(os.environ.get("KVPOD_SIM_BREAKS") or "{}").get(host, []))


def _sections(*pairs: tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, str]) -> list[vf.Section]:
    return [vf.Section(p[0], p[1], p[2] if len(p) > 2 else 0, p[3] if len(p) > 3 else "") for p in pairs]


# -- a healthy node ------------------------------------------------------------------------------------------


def links_json(node: NodePlan, vlan_mtu: int | None = None) -> str:
    """``ip -d -j addr show`` of a node: loopback, the fabric NIC, its storage VLAN interface."""
    fab = node.fabric
    lo = {
        "ifindex": 1,
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP", "LOWER_UP"],
        "mtu": 65536,
        "qdisc": "noqueue",
        "operstate": "UNKNOWN",
        "group": "default",
        "txqlen": 1000,
        "link_type": "loopback",
        "address": "00:00:00:00:00:00",
        "broadcast": "00:00:00:00:00:00",
        "promiscuity": 0,
        "min_mtu": 0,
        "max_mtu": 0,
        "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo"}],
    }
    nic = {
        "ifindex": 3,
        "ifname": fab.interface,
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "mtu": fab.mtu,
        "qdisc": "pfifo_fast",
        "operstate": "UP",
        "group": "default",
        "txqlen": 1000,
        "link_type": "ether",
        "address": "52:54:00:12:34:03",
        "broadcast": "ff:ff:ff:ff:ff:ff",
        "promiscuity": 0,
        "min_mtu": 68,
        "max_mtu": 65535,
        "num_tx_queues": 1,
        "num_rx_queues": 1,
        "addr_info": [],
    }
    vlan = {
        "ifindex": 4,
        "link": fab.interface,
        "ifname": fab.vlan_interface,
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "mtu": vlan_mtu or fab.mtu,
        "qdisc": "noqueue",
        "operstate": "UP",
        "group": "default",
        "txqlen": 1000,
        "link_type": "ether",
        "address": "52:54:00:12:34:03",
        "broadcast": "ff:ff:ff:ff:ff:ff",
        "promiscuity": 0,
        "min_mtu": 0,
        "max_mtu": 65535,
        "linkinfo": {
            "info_kind": "vlan",
            "info_data": {"protocol": "802.1Q", "id": fab.vlan, "flags": ["REORDER_HDR"]},
        },
        "num_tx_queues": 1,
        "num_rx_queues": 1,
        "addr_info": [
            {
                "family": "inet",
                "local": fab.address,
                "prefixlen": fab.prefix_length,
                "scope": "global",
                "label": fab.vlan_interface,
                "valid_life_time": 4294967295,
                "preferred_life_time": 4294967295,
            },
            {"family": "inet6", "local": "fe80::5054:ff:fe12:3403", "prefixlen": 64, "scope": "link"},
        ],
    }
    return json.dumps([lo, nic, vlan], separators=(",", ":")) + "\n"


def routes_text(node: NodePlan, portals: list[str]) -> str:
    """``ip -force -j -batch -`` of ``route get`` lines: one JSON array per line."""
    return "".join(
        json.dumps(
            [{"dst": a, "dev": node.fabric.vlan_interface, "prefsrc": node.fabric.address, "flags": [], "uid": 0,
              "cache": []}],
            separators=(",", ":"),
        )
        + "\n"
        for a in portals
    )  # fmt: skip


def ping_text(address: str, size: int) -> str:
    return (
        f"PING {address} ({address}) {size}({size + 28}) bytes of data.\n"
        f"{size + 8} bytes from {address}: icmp_seq=1 ttl=64 time=0.412 ms\n\n"
        f"--- {address} ping statistics ---\n"
        "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n"
        "rtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms\n"
    )


def env_file_text(node: NodePlan) -> str:
    lines = ["# kvpod: LMCache settings for this node (per tensor-parallel rank)"]
    lm = node.lmcache
    if lm.config_mode == "yaml":
        lines.append(f"{ve.CONFIG_FILE_VAR}={lm.config_file}")
    else:
        lines += [f"{ve.env_var(k)}={_env_value(v)}" for k, v in ve.lmcache_settings(node).items()]
    lines.append("PYTHONHASHSEED=0")
    return "\n".join(lines) + "\n"


def _env_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def yaml_text(node: NodePlan) -> str:
    import yaml

    return yaml.safe_dump(ve.lmcache_settings(node), sort_keys=False)


def argv(node: NodePlan) -> list[str]:
    v = node.vllm
    out = ["/usr/bin/python3", v.executable, "serve", v.model]
    for flag, value in ve.vllm_arguments(node).items():
        if flag != "model":
            out += [flag, json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)]
    return out + list(v.extra_args)


def connector_text(node: NodePlan) -> str:
    """The interpreter of vLLM's executable importing LMCache's connector: the pinned versions, or any."""
    pins = dict(r.split("==", 1) for r in node.vllm.install.requirements) if node.vllm.install else {}
    interpreter = f"{node.vllm.install.venv}/bin/python" if node.vllm.install else "/usr/bin/python3"
    return f"interpreter {interpreter}\nvllm {pins.get('vllm', '0.11.0')}\nlmcache {pins.get('lmcache', '0.5.6')}\n"


def environ(node: NodePlan) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/var/lib/vllm", "LANG": "C.UTF-8"}
    env.update({k: _env_value(v) for k, v in ve.lmcache_environment(node).items()})
    return env


def unit_block(props: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in props.items())


def units_text(node: NodePlan, mount_unit: str, mounted: bool) -> str:
    """``systemctl show -p ...`` of the vLLM, connect and mount units (systemd 252 property order)."""
    v = node.vllm
    vllm = {
        "MainPID": PID,
        "ExecStart": f"{{ path={v.executable} ; argv[]={v.executable} serve {v.model} ... ; ignore_errors=no ; "
        "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
        "EnvironmentFiles": f"{node.lmcache.env_file} (ignore_errors=no)",
        "User": v.user,
        "Id": v.unit,
        "LoadState": "loaded",
        "ActiveState": "active",
        "SubState": "running",
        "UnitFileState": "enabled",
        "Where": "",
        "What": "",
    }
    connect = {
        "MainPID": "0",
        "ExecStart": "{ path=/usr/local/sbin/kvpod-nvme-connect ; argv[]=/usr/local/sbin/kvpod-nvme-connect ; ... }",
        "User": "",
        "Id": ve.CONNECT_UNIT,
        "LoadState": "loaded",
        "ActiveState": "active",
        "SubState": "exited",
        "UnitFileState": "enabled",
        "Where": "",
        "What": "",
    }
    mount = {
        "Where": node.mount.path,
        "What": f"/dev/disk/by-label/{node.mount.label}",
        "Id": mount_unit,
        "LoadState": "loaded",
        "ActiveState": "active" if mounted else "inactive",
        "SubState": "mounted" if mounted else "dead",
        "UnitFileState": "generated",
        "User": "",
    }
    return "\n\n".join(unit_block(b) for b in (vllm, connect, mount)) + "\n"


def controllers_text(node: NodePlan) -> str:
    return "".join(
        f"nvme{i}\t{node.namespace.transport}\t{node.namespace.subsystem_nqn}\t"
        f"traddr={p.address},trsvcid={p.trsvcid},src_addr={node.fabric.address}\tlive\n"
        for i, p in enumerate(node.namespace.portals)
    )


def discovery_json(node: NodePlan, address: str, trsvcid: int) -> str:
    """``nvme discover -o json`` (nvme-cli 2.4) as the node's own host NQN sees it."""
    base = {"trtype": node.namespace.transport, "adrfam": "ipv4", "treq": "not specified", "portid": 1,
            "trsvcid": str(trsvcid), "traddr": address}  # fmt: skip
    records = [
        {**base, "subtype": "current discovery subsystem", "subnqn": ve.DISCOVERY_NQN},
        {**base, "subtype": "nvme subsystem", "subnqn": node.namespace.subsystem_nqn},
    ]
    if node.namespace.transport == "rdma":
        for r in records:
            r.update(rdma_prtype="not specified", rdma_qptype="connected", rdma_cms="rdma-cm", rdma_pkey="0x0000")
    return json.dumps({"genctr": 2, "records": records}, indent=2) + "\n"


def node_sections(node: NodePlan, reads: vf.NodeReads, breaks: set[str] = frozenset()) -> list[vf.Section]:
    """The sections a healthy node (with ``breaks`` applied) prints for its state read."""
    mounted = "unmounted" not in breaks
    mount_unit = node.mount.path.strip("/").replace("/", "-") + ".mount"
    files = {
        ve.SYSCTL_FILE: "".join(f"{k} = {v}\n" for k, v in ve.sysctls(node).items()),
        ve.HOSTNQN_FILE: node.host_nqn + "\n",
        ve.HOSTID_FILE: node.host_id + "\n",
        node.lmcache.env_file: env_file_text(node),
    }
    if node.lmcache.config_file:
        files[node.lmcache.config_file] = yaml_text(node)
    mount = (
        "mounted=yes\n"
        f"findmnt=259:1 {node.mount.path} /dev/nvme0n1 {node.mount.filesystem} rw,{','.join(node.mount.options)}\n"
        f"block=nvme0n1\nsubsysnqn={node.namespace.subsystem_nqn}\nsubsystem=nvme-subsys0\nnsid={node.namespace.nsid}\n"
        if mounted
        else "mounted=no\n"
    )
    cmdline = "".join(f"/proc/{PID}/cmdline:{a}\0" for a in argv(node))
    env = "".join(f"/proc/{PID}/environ:{k}={v}\0" for k, v in environ(node).items())
    budget = int(node.mount.disk_budget_gb * ve.GIB)
    out = _sections(
        ("links", links_json(node, 1500 if "vlan-mtu" in breaks else None)),
        ("routes", routes_text(node, list(reads.portals))),
        ("sysctl", "".join(f"{vf.sysctl_path(k)}\0{v}\n" for k, v in ve.sysctls(node).items())),
        *((vf.section_name("file", f), files.get(f, ""), 0 if f in files else 1) for f in reads.files),
        *((vf.section_name("mode", f), " ".join(ve.credential_file_owner(node)) + "\n") for f in reads.modes),
        ("modules", "".join(f"loaded\t{m}\n" for m in reads.modules)),
        ("modules-load", "".join(f"kvpod.conf\t{m}\n" for m in ["# kvpod", *reads.modules])),
        ("controllers", controllers_text(node)),
        ("mount", mount),
        ("mount-of", (node.mount.path if mounted else "/") + "\n"),
        ("mount-unit", mount_unit),
        ("units", units_text(node, mount_unit, mounted)),
        (vf.section_name("proc-user", PID), node.vllm.user + "\n"),
        (vf.section_name("proc-data", PID), cmdline + env),
        ("writable", f"yes\t{node.mount.path}\nyes\t{ve.local_disk_dir(node)}\n"),
        ("df", f"      Avail    1B-blocks\n{budget + 4096} {budget * 2}\n"),
        ("du", f"4096\t{ve.local_disk_dir(node)}\n"),
        ("health", "200\n"),
        ("connector", connector_text(node)),
        *((vf.section_name("ping", a), ping_text(a, reads.ping_size)) for a in reads.portals),
        *((vf.section_name("discover", t, a, s), discovery_json(node, a, s)) for t, a, s in reads.discoveries),
    )
    if reads.rdma:
        netdev = [{"ifindex": 1, "ifname": "rxe0", "port": 1, "state": "ACTIVE", "physical_state": "LINK_UP",
                   "netdev": node.fabric.interface, "netdev_index": 3}]  # fmt: skip
        out.insert(2, vf.Section("rdma", json.dumps(netdev) + "\n", 0))
    return out


# -- a healthy target ----------------------------------------------------------------------------------------


def nvmet_text(target: TargetPlan) -> str:
    """The ``nvmet`` section of a Linux target configured as planned."""
    links, attrs = [], []
    for s in target.subsystems:
        if s.allowed_host_nqn:
            links.append(f"subsystem\t{s.nqn}\tallowed_host\t{s.allowed_host_nqn}\n")
        attrs.append(f"subsystems/{s.nqn}/attr_allow_any_host\x000\n")
        attrs.append(f"subsystems/{s.nqn}/namespaces/{s.nsid}/device_path\x00{s.device_path or '/dev/nvme0n1'}\n")
        attrs.append(f"subsystems/{s.nqn}/namespaces/{s.nsid}/enable\x001\n")
    for p in target.portals:
        for t in p.transports:
            pid = str(p.port_id)
            links += [f"port\t{pid}\tsubsystem\t{s.nqn}\n" for s in target.subsystems]
            attrs += [
                f"ports/{pid}/addr_trtype\x00{t}\n",
                f"ports/{pid}/addr_traddr\x00{p.address}\n",
                f"ports/{pid}/addr_trsvcid\x00{p.trsvcid}\n",
                f"ports/{pid}/addr_adrfam\x00ipv4\n",
            ]
    return "".join(links) + "attributes\n" + "".join(attrs)


# -- the fake backend ----------------------------------------------------------------------------------------


class _Backend:
    @staticmethod
    def decode(data: bytes) -> str:
        return data.decode("utf-8")

    @staticmethod
    def encode(data: str) -> bytes:
        return data.encode("utf-8")


class SimHost:
    """A host of the simulated pod: answers the suite's scripts and logs each command."""

    def __init__(self, plan: Plan, name: str):
        self.plan = plan
        self.name = name

    def _answer(self, script: str) -> tuple[str, list[vf.Section]]:
        breaks = _breaks(self.name)
        for node in self.plan.nodes:
            if node.name == self.name:
                reads = ve.node_reads(node, self.plan)
                if script == vf.node_script(reads):
                    return "node", node_sections(node, reads, breaks)
                if script == vf.controllers_script():
                    return "controllers", [vf.Section("controllers", controllers_text(node), 0)]
        for target in self.plan.targets:
            if target.name == self.name and script == vf.target_script(ve.target_reads()):
                return "target", [vf.Section("nvmet", nvmet_text(target), 0)]
        raise AssertionError(f"{self.name}: the simulated pod does not know this script:\n{script[:2000]}")

    def run(self, command: str, *args: str) -> CommandResult:
        assert command == "sh -c %s sh %s", command
        script, boundary = args
        kind, sections = self._answer(script)
        log = os.environ.get("KVPOD_SIM_LOG")
        if log:
            with open(log, "a") as out:
                out.write(f"{os.getpid()}\t{self.name}\t{kind}\n")
        if "unreachable" in _breaks(self.name):
            down = CommandResult(_Backend(), 255, b"ssh", b"", b"ssh: connect to host 127.0.0.1 port 22: refused\n")
            raise RuntimeError(down)
        out_text = vf.render_sections(sections, boundary)
        return CommandResult(_Backend(), 0, b"sh", out_text.encode(), b"")


def pytest_configure(config: Any) -> None:
    path = config.getoption("--kvpod-plan", None) or os.environ.get(PLAN_ENV)
    plan = Plan.model_validate_json(Path(path).read_text())
    testinfra.get_host = lambda spec, **kw: SimHost(plan, spec.split("://", 1)[1])
