"""A simulated pod for the verify suite: a pytest plugin that answers the suite's state reads without hosts.

Loaded into a suite run with ``-p tests.verify_pod_sim`` (the repository root on ``PYTHONPATH``), it replaces
``testinfra.get_host`` with a host that recognises the scripts the suite sends (the node, target and
controllers-only scripts built from the plan) and answers each with the sections a healthy pod built from
that plan would print, in the formats of the real tools (iproute2 6.1, util-linux 2.38, systemd 252,
nvme-cli 2.4, GNU grep). Environment:

``KVPOD_SIM_LOG``     a file; each command a host answers appends ``<worker pid>\\t<host>\\t<script kind>``
``KVPOD_SIM_BREAKS``  JSON ``{host: [break, ...]}``: ``vlan-mtu`` (the VLAN interface at MTU 1500),
                      ``unmounted`` (the KV cache mount and its unit stopped), ``unreachable`` (SSH fails), and
                      each break of :data:`BREAKS` (one wrong fact in a healthy host's answer)
``KVPOD_SIM_SECRETS`` JSON list of the secrets the plan shows by their display (:func:`sim_secrets`): a healthy
                      host's files hold the secret itself
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra
from testinfra.backend.base import CommandResult

from deploy import secrets
from deploy.nvme_settings import PathSettings, controller_values
from deploy.plan import EnginePlan, NodePlan, Plan, TargetPlan
from deploy.shipped import verify_suite_dir

sys.path.insert(0, str(verify_suite_dir()))

import verify_expect as ve
import verify_parse as vp
import verify_script as vs

PID = "4242"  # engine 0's main process; engine i's is PID + i


def engine_pid(engine: EnginePlan) -> str:
    return str(int(PID) + engine.index)


PLAN_ENV = "KVPOD_PLAN"
SECRETS_ENV = "KVPOD_SIM_SECRETS"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # the revision of a staged model in the hub cache


def sim_secrets() -> str:
    """The secrets this process knows, for :data:`SECRETS_ENV` of a simulated pod in another process."""
    return json.dumps(sorted(secrets._KNOWN))


def revealed(value: Any) -> Any:
    """A secret (or its display, in a plan read from JSON) as the host's file holds it."""
    value = secrets.reveal(value)
    if not secrets.is_display(value):
        return value
    known = set(json.loads(os.environ.get(SECRETS_ENV) or "[]")) | secrets._KNOWN
    return next((s for s in known if secrets.display(s) == value), value)


def _breaks(host: str) -> set[str]:
    return set(json.loads(os.environ.get("KVPOD_SIM_BREAKS") or "{}").get(host, []))


def _sections(*pairs: tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, str]) -> list[vp.Section]:
    return [vp.Section(p[0], p[1], p[2] if len(p) > 2 else 0, p[3] if len(p) > 3 else "") for p in pairs]


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


def env_file_text(node: NodePlan, engine: EnginePlan | None = None) -> str:
    lines = ["# kvpod: LMCache settings for this engine (per tensor-parallel rank)"]
    lm = ve.engine_of(node, engine).lmcache
    if lm.config_mode == "yaml":
        lines.append(f"{ve.CONFIG_FILE_VAR}={lm.config_file}")
    else:
        lines += [f"{ve.env_var(k)}={_env_value(v)}" for k, v in ve.lmcache_settings(node, engine).items()]
    lines.append("PYTHONHASHSEED=0")
    return "\n".join(lines) + "\n"


def _env_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def hf_env_text(node: NodePlan) -> str:
    lines = ["# kvpod: vLLM's Hugging Face settings"]
    return "\n".join(lines + [f"{k}={revealed(v)}" for k, v in node.vllm.hf_env.items()]) + "\n"


def mode_text(node: NodePlan, path: str) -> str:
    """``stat -c '%a %U %G'`` of a file whose mode the state read asks for."""
    if path in ve.weights_cache_dirs(node):
        return f"750 {node.vllm.user} {node.vllm.user}\n"
    return " ".join(ve.credential_file_owner(node)) + "\n"


def yaml_text(node: NodePlan, engine: EnginePlan | None = None) -> str:
    import yaml

    return yaml.safe_dump(ve.lmcache_settings(node, engine), sort_keys=False)


def argv(node: NodePlan, engine: EnginePlan | None = None) -> list[str]:
    v = node.vllm
    out = ["/usr/bin/python3", v.executable, "serve", v.model]
    for flag, value in ve.vllm_arguments(node, engine).items():
        if flag != "model":
            out += [flag, json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)]
    return out + list(v.extra_args)


def connector_text(node: NodePlan) -> str:
    """The interpreter of vLLM's executable importing LMCache's connector: the pinned versions, or any."""
    pins = dict(r.split("==", 1) for r in node.vllm.install.requirements) if node.vllm.install else {}
    interpreter = f"{node.vllm.install.venv}/bin/python" if node.vllm.install else "/usr/bin/python3"
    return f"interpreter {interpreter}\nvllm {pins.get('vllm', '0.11.0')}\nlmcache {pins.get('lmcache', '0.5.6')}\n"


def environ(node: NodePlan, engine: EnginePlan | None = None) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/var/lib/vllm", "LANG": "C.UTF-8"}
    env.update({k: _env_value(v) for k, v in ve.lmcache_environment(node, engine).items()})
    env.update({k: revealed(v) for k, v in ve.hf_environment(node).items()})
    return env


def models_text(node: NodePlan) -> str:
    """``GET /v1/models`` of an engine serving the planned model."""
    return json.dumps({"object": "list", "data": [{"id": node.vllm.model, "object": "model"}]}) + "\n"


def unit_block(props: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in props.items())


def units_text(node: NodePlan, mount_unit: str, mounted: bool) -> str:
    """``systemctl show -p ...`` of the engines', connect and mount units (systemd 252 property order)."""
    v = node.vllm
    engines = [
        {
            "MainPID": engine_pid(e),
            "ExecStart": f"{{ path={v.executable} ; argv[]={v.executable} serve {v.model} ... ; ignore_errors=no ; "
            "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
            "EnvironmentFiles": " ".join(
                f"{f} (ignore_errors=no)" for f in [e.lmcache.env_file, *ve.hf_env_files(node)]
            ),
            "User": v.user,
            "Id": e.unit,
            "LoadState": "loaded",
            "ActiveState": "active",
            "SubState": "running",
            "UnitFileState": "enabled",
            "Where": "",
            "What": "",
        }
        for e in node.engines
    ]
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
    return "\n\n".join(unit_block(b) for b in (*engines, connect, mount)) + "\n"


def controllers_text(node: NodePlan) -> str:
    return "".join(
        f"nvme{i}\t{node.namespace.transport}\t{node.namespace.subsystem_nqn}\t"
        f"traddr={p.address},trsvcid={p.trsvcid},src_addr={node.fabric.address}\tlive\n"
        for i, p in enumerate(node.namespace.portals)
    )


def nvme_paths_text(node: NodePlan, breaks: set[str] = frozenset()) -> str:
    """The ``nvme-paths`` section: the planned iopolicy and controller attributes (``iopolicy-numa``: the
    kernel's default policy instead; ``path-settings``: every controller attribute off the plan; ``no-kato``:
    a kernel without the ``kato`` attribute)."""
    ns = node.namespace
    policy = "numa" if "iopolicy-numa" in breaks else ns.iopolicy
    values = {**controller_values(PathSettings.of(ns)), "queue_count": "2"}
    if "path-settings" in breaks:
        values = {a: "99" for a in values}
    if "no-kato" in breaks:
        values.pop("kato")
    lines = [f"iopolicy\t{ns.subsystem_nqn}\t{policy}\n"]
    for i, _ in enumerate(ns.portals):
        lines += [f"attr\tnvme{i}\t{a}\t{v}\n" for a, v in values.items()]
    return "".join(lines)


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


def node_sections(node: NodePlan, reads: vs.NodeReads, breaks: set[str] = frozenset()) -> list[vp.Section]:
    """The sections a healthy node (with ``breaks`` applied) prints for its state read."""
    mounted = "unmounted" not in breaks
    mount_unit = node.mount.path.strip("/").replace("/", "-") + ".mount"
    files = {
        ve.SYSCTL_FILE: "".join(f"{k} = {v}\n" for k, v in ve.sysctls(node).items()),
        ve.HOSTNQN_FILE: node.host_nqn + "\n",
        ve.HOSTID_FILE: node.host_id + "\n",
    }
    for e in node.engines:
        files[e.lmcache.env_file] = env_file_text(node, e)
        if e.lmcache.config_file:
            files[e.lmcache.config_file] = yaml_text(node, e)
    for path in ve.hf_env_files(node):
        files[path] = hf_env_text(node)
    mount = (
        "mounted=yes\n"
        f"findmnt=259:1 {node.mount.path} /dev/nvme0n1 {node.mount.filesystem} rw,{','.join(node.mount.options)}\n"
        f"block=nvme0n1\nsubsysnqn={node.namespace.subsystem_nqn}\nsubsystem=nvme-subsys0\nnsid={node.namespace.nsid}\n"
        if mounted
        else "mounted=no\n"
    )
    procs = []
    for e in node.engines:
        pid = engine_pid(e)
        cmdline = "".join(f"/proc/{pid}/cmdline:{a}\0" for a in argv(node, e))
        env = "".join(f"/proc/{pid}/environ:{k}={v}\0" for k, v in environ(node, e).items())
        procs += [
            (vs.section_name("proc-user", pid), node.vllm.user + "\n"),
            (vs.section_name("proc-data", pid), cmdline + env),
        ]
    budget = int(node.mount.disk_budget_gb * ve.GIB)
    out = _sections(
        ("links", links_json(node, 1500 if "vlan-mtu" in breaks else None)),
        ("routes", routes_text(node, list(reads.portals))),
        ("sysctl", "".join(f"{vs.sysctl_path(k)}\0{v}\n" for k, v in ve.sysctls(node).items())),
        *((vs.section_name("file", f), files.get(f, ""), 0 if f in files else 1) for f in reads.files),
        *((vs.section_name("mode", f), mode_text(node, f)) for f in reads.modes),
        ("modules", "".join(f"loaded\t{m}\n" for m in reads.modules)),
        ("modules-load", "".join(f"kvpod.conf\t{m}\n" for m in ["# kvpod", *reads.modules])),
        ("controllers", controllers_text(node)),
        ("nvme-paths", nvme_paths_text(node)),
        ("mount", mount),
        ("mount-of", (node.mount.path if mounted else "/") + "\n"),
        ("mount-unit", mount_unit),
        ("units", units_text(node, mount_unit, mounted)),
        *procs,
        (
            "writable",
            f"yes\t{node.mount.path}\nyes\t{node.lmcache_root}\n"
            + "".join(f"yes\t{ve.local_disk_dir(node, e)}\n" for e in node.engines),
        ),
        ("df", f"      Avail    1B-blocks\n{budget + 4096} {budget * 2}\n"),
        ("du", f"4096\t{node.lmcache_root}\n"),
        *((vs.section_name("health", e.health_url), "200\n") for e in node.engines),
        *((vs.section_name("models", e.models_url), models_text(node)) for e in node.engines),
        ("connector", connector_text(node)),
        *(
            (("model-files", "".join(p.replace("*", SNAPSHOT) + "\n" for p in reads.model_files)),)
            if reads.model_files
            else ()
        ),
        ("gpu-ops", ve.GPU_OPS_NOT_APPLICABLE + "\n"),
        *((vs.section_name("ping", a), ping_text(a, reads.ping_size)) for a in reads.portals),
        *((vs.section_name("discover", t, a, s), discovery_json(node, a, s)) for t, a, s in reads.discoveries),
    )
    if reads.rdma:
        netdev = [{"ifindex": 1, "ifname": "rxe0", "port": 1, "state": "ACTIVE", "physical_state": "LINK_UP",
                   "netdev": node.fabric.interface, "netdev_index": 3}]  # fmt: skip
        out.insert(2, vp.Section("rdma", json.dumps(netdev) + "\n", 0))
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


# -- breaks: one wrong fact each --------------------------------------------------------------------------------

Sections = dict[str, vp.Section]


def _replace(sections: Sections, name: str, text: str) -> None:
    """Section ``name`` (when this answer holds it) prints ``text`` instead."""
    s = sections.get(name)
    if s is not None:
        sections[name] = vp.Section(s.name, text, s.rc, s.stderr)


def _edit(sections: Sections, name: str, old: str, new: str) -> None:
    """Replace ``old`` in section ``name`` (a section this answer holds must hold ``old``)."""
    s = sections.get(name)
    if s is None:
        return
    if old not in s.stdout:
        raise AssertionError(f"break: {old!r} not in section {name!r}")
    sections[name] = vp.Section(s.name, s.stdout.replace(old, new), s.rc, s.stderr)


def _links(sections: Sections, change: Callable[[dict[str, dict]], None]) -> None:
    if "links" not in sections:
        return
    links = json.loads(sections["links"].stdout)
    by_name = {link["ifname"]: link for link in links}
    change(by_name)
    sections["links"] = vp.Section("links", json.dumps(list(by_name.values())) + "\n", 0)


def _failed(sections: Sections, name: str, stderr: str) -> None:
    if name in sections:
        sections[name] = vp.Section(name, "", 1, stderr)


def _unit(sections: Sections, unit: str, key: str, value: str) -> None:
    if "units" not in sections:
        return
    blocks = sections["units"].stdout.rstrip("\n").split("\n\n")
    for i, block in enumerate(blocks):
        props = dict(line.split("=", 1) for line in block.splitlines())
        if props.get("Id") == unit:
            props[key] = value
            blocks[i] = unit_block(props)
            break
    else:
        raise AssertionError(f"break: no unit {unit}")
    sections["units"] = vp.Section("units", "\n\n".join(blocks) + "\n", 0)


def _controller(sections: Sections, line: str) -> None:
    s = sections.get("controllers")
    if s is None:
        return
    sections["controllers"] = vp.Section(s.name, s.stdout + line + "\n", s.rc, s.stderr)


def _discovered(sections: Sections, name: str, nqn: str) -> None:
    """One more subsystem in a discovery log (another drive admits this host)."""
    s = sections.get(name)
    if s is None:
        return
    log = json.loads(s.stdout)
    log["records"].append({**log["records"][-1], "subnqn": nqn})
    sections[name] = vp.Section(name, json.dumps(log, indent=2) + "\n", s.rc, s.stderr)


def _other_drive(plan: Plan, node: NodePlan) -> str:
    """The subsystem NQN of another drive of the node's enclosure (a spare when there is one)."""
    target = next(t for t in plan.targets if node.namespace.subsystem_nqn in {s.nqn for s in t.subsystems})
    others = [s for s in target.subsystems if s.nqn != node.namespace.subsystem_nqn]
    return next((s for s in others if s.node is None), others[0]).nqn


def _node_breaks(plan: Plan, node: NodePlan) -> dict[str, Callable[[Sections], None]]:
    fab, ns, mount = node.fabric, node.namespace, node.mount
    nqn, portals = ns.subsystem_nqn, ns.portals
    neighbour = next(n for n in plan.nodes if n.name != node.name)
    cmdline = f"/proc/{PID}/cmdline:"
    mount_unit = mount.path.strip("/").replace("/", "-") + ".mount"
    return {
        "iopolicy-numa": lambda s: _edit(s, "nvme-paths", f"\t{ns.iopolicy}\n", "\tnuma\n"),
        "path-settings": lambda s: _replace(s, "nvme-paths", nvme_paths_text(node, {"path-settings"})),
        "no-kato": lambda s: _replace(s, "nvme-paths", nvme_paths_text(node, {"no-kato"})),
        "nic-absent": lambda s: _links(s, lambda links: links.pop(fab.interface)),
        "nic-mtu": lambda s: _links(s, lambda links: links[fab.interface].update(mtu=1500)),
        "vlan-id": lambda s: _links(s, lambda links: links[fab.vlan_interface]["linkinfo"]["info_data"].update(id=999)),
        "vlan-down": lambda s: _links(s, lambda links: links[fab.vlan_interface].update(flags=["BROADCAST", "UP"])),
        "address": lambda s: _links(
            s, lambda links: links[fab.vlan_interface]["addr_info"][0].update(local="10.99.0.9")
        ),
        "route": lambda s: _edit(s, "routes", f'"dev":"{fab.vlan_interface}"', '"dev":"eth0"'),
        "ping": lambda s: [
            _failed(s, vs.section_name("ping", p.address), "ping: local error: message too long, mtu=1500")
            for p in portals
        ],
        "rdma": lambda s: _edit(s, "rdma", f'"netdev": "{fab.interface}"', '"netdev": "eth0"'),
        "sysctl": lambda s: _edit(s, "sysctl", "net/core/rmem_max\x00134217728", "net/core/rmem_max\x00212992"),
        "sysctl-file": lambda s: _failed(s, vs.section_name("file", ve.SYSCTL_FILE), "No such file or directory"),
        "fstype": lambda s: _edit(s, "mount", f" {mount.filesystem} rw,", " xfs rw,"),
        "mount-option": lambda s: _edit(s, "mount", ",noatime\n", ",relatime\n"),
        "mount-unit-inactive": lambda s: _unit(s, mount_unit, "ActiveState", "inactive"),
        "mount-unit-transient": lambda s: _unit(s, mount_unit, "UnitFileState", "transient"),
        "mount-not-writable": lambda s: _edit(s, "writable", f"yes\t{mount.path}\n", f"no\t{mount.path}\n"),
        "full": lambda s: _edit(s, "df", f"\n{int(mount.disk_budget_gb * ve.GIB) + 4096} ", "\n4096 "),
        "module-unloaded": lambda s: _edit(s, "modules", "loaded\tnvme_rdma\n", ""),
        "module-not-persisted": lambda s: _edit(s, "modules-load", "kvpod.conf\tnvme_rdma\n", ""),
        "host-nqn": lambda s: _edit(s, vs.section_name("file", ve.HOSTNQN_FILE), node.host_nqn, neighbour.host_nqn),
        "host-id": lambda s: _edit(s, vs.section_name("file", ve.HOSTID_FILE), node.host_id, neighbour.host_id),
        "config-source": lambda s: _edit(
            s, vs.section_name("file", node.lmcache.env_file), "# kvpod:", f"{ve.CONFIG_FILE_VAR}=/x.yaml\n# kvpod:"
        ),
        "setting": lambda s: _edit(
            s, vs.section_name("file", node.lmcache.env_file), "LMCACHE_MAX_LOCAL_DISK_SIZE=", "LMCACHE_UNUSED="
        ),
        "credentials-readable": lambda s: _edit(  # the env file's mode, where the state read has a mode section
            s, vs.section_name("mode", node.lmcache.env_file), "640 root ", "644 root "
        ),
        "hash-seed": lambda s: _edit(s, vs.section_name("file", node.lmcache.env_file), "PYTHONHASHSEED=0", "A=1"),
        "local-disk-off-mount": lambda s: _edit(s, "mount-of", f"{mount.path}\n", "/\n"),
        "local-disk-not-writable": lambda s: _edit(
            s, "writable", f"yes\t{ve.local_disk_dir(node, node.engines[-1])}", "no\t/x"
        ),
        "other-subsystem-mounted": lambda s: _edit(
            s, "mount", f"subsysnqn={nqn}\n", f"subsysnqn={_other_drive(plan, node)}\n"
        ),
        "nsid": lambda s: _edit(s, "mount", f"\nnsid={ns.nsid}\n", f"\nnsid={ns.nsid + 1}\n"),
        "holds-neighbours-drive": lambda s: _controller(
            s,
            f"nvme7\t{ns.transport}\t{neighbour.namespace.subsystem_nqn}\t"
            f"traddr={portals[0].address},trsvcid={portals[0].trsvcid},src_addr={fab.address}\tlive",
        ),
        "portal-down": lambda s: _edit(
            s,
            "controllers",
            f"traddr={portals[-1].address},trsvcid={portals[-1].trsvcid},src_addr={fab.address}\tlive",
            f"traddr={portals[-1].address},trsvcid={portals[-1].trsvcid},src_addr={fab.address}\tconnecting",
        ),
        "duplicate-controller": lambda s: _controller(
            s,
            f"nvme8\t{ns.transport}\t{nqn}\ttraddr={portals[0].address},trsvcid={portals[0].trsvcid},src_addr={fab.address}\tlive",
        ),
        "foreign-portal": lambda s: _controller(
            s,
            f"nvme9\t{ns.transport}\t{nqn}\ttraddr=10.99.0.1,trsvcid={portals[0].trsvcid},src_addr={fab.address}\tlive",
        ),
        "connect-unit-disabled": lambda s: _unit(s, ve.CONNECT_UNIT, "UnitFileState", "disabled"),
        "vllm-disabled": lambda s: _unit(s, node.engines[0].unit, "UnitFileState", "disabled"),
        "vllm-failed": lambda s: _unit(s, node.engines[0].unit, "SubState", "auto-restart"),
        "no-env-file": lambda s: _unit(s, node.engines[0].unit, "EnvironmentFiles", ""),
        "vllm-as-root": lambda s: _edit(s, vs.section_name("proc-user", PID), f"{node.vllm.user}\n", "root\n"),
        "argument": lambda s: _edit(
            s,
            vs.section_name("proc-data", PID),
            f"{cmdline}--max-model-len\0{cmdline}",
            f"{cmdline}--max-model-len\0{cmdline}1",
        ),
        "extra-args": lambda s: _edit(
            s, vs.section_name("proc-data", PID), "".join(f"{cmdline}{a}\0" for a in node.vllm.extra_args), ""
        ),
        "environment": lambda s: _edit(
            s, vs.section_name("proc-data", PID), ":LMCACHE_CHUNK_SIZE=", ":LMCACHE_CHUNK_SIZE=1"
        ),
        "unhealthy": lambda s: _edit(s, vs.section_name("health", node.engines[-1].health_url), "200\n", "503\n"),
        "model-not-served": lambda s: _edit(
            s, vs.section_name("models", node.engines[-1].models_url), f'"{node.vllm.model}"', '"other/model"'
        ),
        "gpu-ops-fallback": lambda s: _failed(s, "gpu-ops", "ImportError: libcudart.so.13: cannot open shared object"),
        "connector": lambda s: _failed(
            s, "connector", "ModuleNotFoundError: No module named 'lmcache.integration.vllm.vllm_v1_adapter'"
        ),
        "hf-env-readable": lambda s: [
            _edit(s, vs.section_name("mode", f), "640 root ", "644 root ") for f in ve.hf_env_files(node)
        ],
        "hf-token-stale": lambda s: [
            _edit(s, vs.section_name("file", f), "HF_TOKEN=", "HF_TOKEN=old") for f in ve.hf_env_files(node)
        ],
        "weights-cache-foreign": lambda s: [
            _edit(s, vs.section_name("mode", d), f" {node.vllm.user} ", " root ") for d in ve.weights_cache_dirs(node)
        ],
        "model-missing": lambda s: s.update({"model-files": vp.Section("model-files", "", 0)}),
        "discovery-extra": lambda s: [
            _discovered(s, vs.section_name("discover", ns.transport, p.address, p.trsvcid), _other_drive(plan, node))
            for p in portals
        ],
    }


def _target_breaks(target: TargetPlan) -> dict[str, Callable[[str], str]]:
    first, second, *_ = target.subsystems
    spare = next((s for s in target.subsystems if s.node is None), target.subsystems[-1])
    holder = next(s.allowed_host_nqn for s in target.subsystems if s.allowed_host_nqn)
    portal_a, portal_b = target.portals[0], target.portals[-1]
    attr = "subsystems/{}/attr_allow_any_host\x00"
    return {
        "extra-subsystem": lambda t: t.replace(
            "attributes\n", "attributes\n" + attr.format("nqn.2099-01.io.x:stray") + "0\n"
        ),
        "any-host": lambda t: t.replace(attr.format(second.nqn) + "0", attr.format(second.nqn) + "1"),
        "stale-host": lambda t: f"subsystem\t{spare.nqn}\tallowed_host\t{holder}\n" + t,
        "namespace-disabled": lambda t: t.replace(
            f"subsystems/{first.nqn}/namespaces/{first.nsid}/enable\x001",
            f"subsystems/{first.nqn}/namespaces/{first.nsid}/enable\x000",
        ),
        "port-tcp": lambda t: t.replace(
            f"ports/{portal_b.port_id}/addr_trtype\x00rdma", f"ports/{portal_b.port_id}/addr_trtype\x00tcp"
        ),
        "port-unlinked": lambda t: t.replace(f"port\t{portal_a.port_id}\tsubsystem\t{second.nqn}\n", ""),
    }


def apply_breaks(plan: Plan, host: str, sections: list[vp.Section], breaks: set[str]) -> list[vp.Section]:
    """A healthy host's sections with each named break applied to those this answer holds (unknown names are an
    error)."""
    node = next((n for n in plan.nodes if n.name == host), None)
    target = next((t for t in plan.targets if t.name == host), None)
    by_name = {s.name: s for s in sections}
    for name in sorted(breaks - {"vlan-mtu", "unmounted", "unreachable"}):
        if node is not None:
            edits = _node_breaks(plan, node)
            if name not in edits:
                raise AssertionError(f"unknown break {name!r} for node {host} (known: {sorted(edits)})")
            edits[name](by_name)
        elif target is not None:
            changes = _target_breaks(target)
            if name not in changes:
                raise AssertionError(f"unknown break {name!r} for target {host} (known: {sorted(changes)})")
            s = by_name["nvmet"]
            text = changes[name](s.stdout)
            if text == s.stdout:
                raise AssertionError(f"break {name!r} changed nothing on {host}")
            by_name["nvmet"] = vp.Section("nvmet", text, s.rc, s.stderr)
    return [by_name[s.name] for s in sections]


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

    def _answer(self, script: str) -> tuple[str, list[vp.Section]]:
        breaks = _breaks(self.name)
        for node in self.plan.nodes:
            if node.name == self.name:
                reads = ve.node_reads(node, self.plan)
                if script == vs.node_script(reads):
                    return "node", apply_breaks(self.plan, self.name, node_sections(node, reads, breaks), breaks)
                if script == vs.controllers_script():
                    found = [vp.Section("controllers", controllers_text(node), 0)]
                    return "controllers", apply_breaks(self.plan, self.name, found, breaks)
        for target in self.plan.targets:
            if target.name == self.name and script == vs.target_script(ve.target_reads()):
                found = [vp.Section("nvmet", nvmet_text(target), 0)]
                return "target", apply_breaks(self.plan, self.name, found, breaks)
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
        out_text = vp.render_sections(sections, boundary)
        return CommandResult(_Backend(), 0, b"sh", out_text.encode(), b"")


def pytest_configure(config: Any) -> None:
    path = config.getoption("--kvpod-plan", None) or os.environ.get(PLAN_ENV)
    plan = Plan.model_validate_json(Path(path).read_text())
    testinfra.get_host = lambda spec, **kw: SimHost(plan, spec.split("://", 1)[1])
