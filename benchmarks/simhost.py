"""Simulated converged hosts for the fleet benchmark: they answer kvpod's one-command state read with the
text the real tools would print, from the test suite's simulated node (``benchmarks/kvpod_sim.py``).

``answer(remote, script)`` reads the section headers of a state-read script and prints, per section, what
``stat``, ``sha1sum``, ``systemctl show``, ``ip -j``, ``blkid``, ``dumpe2fs``... would print for the values the
simulated node holds. ``tests/unit/test_benchmark_sim.py`` checks that every section parses back to those
values, so the benchmark measures kvpod's real parsing and comparing, not a shortcut.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl, TmpDir, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from benchmarks.pyinfra_fake import FakeRemote
from deploy.facts import kernel, network, nvme, storage, users
from deploy.facts.python import VenvPackages
from deploy.facts.snapshot import DEVICE_FACTS, END, GROUP, SECTION, fact_class

# the arguments the simulated host's facts take
ARGUMENTS = ("path", "user", "command", "keys", "venv", "interface", "priority")
_HEADER = re.compile(r"^printf '%s\\n' '(@@kvpod-(?:fact|group) .*)'$")
_NAMESPACE = re.compile(r"^kvpod_nqn=(\S+); kvpod_nsid=(\S*)$")


def _mode(kind: str, mode: int) -> str:
    bits = "".join(
        ("r" if d & 4 else "-") + ("w" if d & 2 else "-") + ("x" if d & 1 else "-") for d in map(int, f"{mode:03d}")
    )
    return kind + bits


def _stat_line(path: str, value: dict, kind: str) -> str:
    return (
        f"{path}\tuser={value.get('user', 'root')} group={value.get('group', 'root')} "
        f"mode={_mode(kind, int(value.get('mode') or 644))} atime=0 mtime=0 ctime=0 size={value.get('size') or 0} "
        f"'{path}'"
    )


def _encode(cls: type, args: dict, value: Any) -> list[str]:
    """Lines the real command would print for ``value`` (the fact's ``process`` turns them back into it)."""
    if cls is kernel.LoadedModules:
        return [f"{kind} {name}" for name, kind in value.items()]
    if cls is kernel.RdmaLinks:
        return [f"{dev} {nd or '-'}" for dev, nd in value.items()]
    if cls is network.IpLinks:
        items = []
        for name, link in value.items():
            info: dict = {"info_kind": link["kind"]} if link["kind"] else {}
            if link["kind"] == "vlan":
                info["info_data"] = {"id": link["vlan_id"]}
            addr = [
                {"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                for a in link.get("addresses", [])
            ]
            item = {"ifname": name, "mtu": link["mtu"], "flags": ["UP"] if link["up"] else [], "addr_info": addr}
            if info:
                item["linkinfo"] = info
            if link.get("link"):
                item["link"] = link["link"]
            items.append(item)
        return [json.dumps(items)]
    if cls is network.IpRoutes:
        return [json.dumps(value)]
    if cls is network.NetplanFiles:
        return list(value)
    if cls is Sysctl:
        return [f"{k} = {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()]
    if cls is Which or cls is TmpDir:
        return [value] if value else []
    if cls is nvme.NvmeHostIdentity:
        return [f"{k}\t{v}" for k, v in value.items() if v]
    if cls is nvme.NvmeSubsystems:
        lines = []
        for i, (nqn, entry) in enumerate(value.items()):
            d = entry.get("subsystem") or f"nvme-subsys{i}"
            lines.append(f"subsys\t{d}\t{nqn}")
            if entry.get("iopolicy"):
                lines.append(f"iopolicy\t{d}\t{entry['iopolicy']}")
            for c in entry["controllers"]:
                addr = f"traddr={c['traddr']},trsvcid={c['trsvcid']}"
                lines.append(f"ctrl\t{d}\t{c['name']}\t{c['transport']}\t{addr}\t{c['state']}")
                lines += [f"attr\t{d}\t{c['name']}\t{a}\t{v}" for a, v in c.get("settings", {}).items()]
            for ns in entry["namespaces"]:
                lines.append(f"ns\t{d}\t{ns['name']}\t{ns['nsid']}\t{ns['size'] // 512}")
        return lines
    if cls is network.DcbState:
        if value is None:
            return []
        return [
            "app " + json.dumps({"dscp_prio": [[d, p] for d, p in value["dscp_prio"].items()]}),
            "pfc " + json.dumps({"prio_pfc": {str(p): on for p, on in value["pfc"].items()}}),
            *(f"ecn {kind} {v}" for kind, v in value["ecn"].items()),
        ]
    if cls is users.PasswdEntry:
        return (
            []
            if value is None
            else [f"{value['name']}:x:{value['uid']}:{value['gid']}::{value['home']}:{value['shell']}"]
        )
    if cls is storage.BlockSignature:
        if value is None:
            return ["KVPOD_BLKID_RC=2"]
        return [f"{k}={v}" for k, v in value.items() if k != "ERROR"] + ["KVPOD_BLKID_RC=0"]
    if cls is storage.Ext4Info:
        if value is None:
            return []
        return [
            f"Filesystem volume name:   {value['label'] or '<none>'}",
            f"Filesystem UUID:          {value['uuid']}",
            f"Filesystem features:      {' '.join(value['features'])}",
            f"Block count:              {value['block_count']}",
            f"Block size:               {value['block_size']}",
        ]
    if cls is storage.MountedAt:
        if value is None:
            return []
        opts = ",".join(value["options"])
        return [
            f'SOURCE="{value["source"]}" FSTYPE="{value["fstype"]}" OPTIONS="{opts}"',
            f'KERNEL="{value["device"]}"',
        ]
    if cls is VenvPackages:
        dists = [f"dist {name.replace('-', '_')}-{version}.dist-info" for name, version in value["packages"].items()]
        return (["python"] if value["python"] else []) + dists
    if cls is DebPackages:
        return [f"ii  {name}  {sorted(versions)[0]}  amd64  package" for name, versions in value.items()]
    raise KeyError(f"no encoder for {cls.__name__}")


def _get(remote: FakeRemote, cls: type, args: dict) -> Any:
    """The simulated host's value for one read (a file's checksum from its content)."""
    if cls is Sha1File:
        f = remote.files.get(args["path"])
        return None if f is None else hashlib.sha1(f["content"].encode("utf-8", "surrogateescape")).hexdigest()
    if cls is Which:
        return remote.which.get(args["command"])
    if cls is SystemdStatus or cls is SystemdEnabled:
        return remote.get_fact(cls, services=args["services"])
    if cls is Sysctl:
        return remote.get_fact(cls, keys=args["keys"])
    return remote.get_fact(cls, **args)


def _group_lines(remote: FakeRemote, group: str, members: list[str]) -> list[str]:
    lines: list[str] = []
    for m in members:
        if group == "stat":  # a file's File fact is its only true one; a directory's Directory fact
            if m in remote.files:
                lines.append(_stat_line(m, remote.get_fact(File, path=m), "-"))
            elif d := remote.get_fact(Directory, path=m):
                lines.append(_stat_line(m, d, "d"))
        elif group == "sha1":
            digest = _get(remote, Sha1File, {"path": m})
            if digest:
                lines.append(f"{digest}  {m}")
        elif group == "sysctl":
            lines += _encode(Sysctl, {}, remote.get_fact(Sysctl, keys=[m]))
        else:
            active = remote.get_fact(SystemdStatus, services=[m]).get(m, False)
            enabled = remote.get_fact(SystemdEnabled, services=[m]).get(m, False)
            lines += [f"Id={m}", f"SubState={'running' if active else 'dead'}"]
            lines += [f"UnitFileState={'enabled' if enabled else 'disabled'}", ""]
    return lines


def answer(remote: FakeRemote, script: str) -> list[str]:
    """The output of a state-read ``script`` on the simulated host."""
    out: list[str] = []
    for line in script.splitlines():
        if m := _NAMESPACE.match(line):
            subs = remote.get_fact(nvme.NvmeSubsystems)
            ns = nvme.namespace_of(subs, m.group(1).strip("'"), int(m.group(2)) if m.group(2).strip("'") else None)
            if ns is not None:
                for cls in DEVICE_FACTS:
                    dev = f"/dev/{ns['name']}"
                    out.append(f'{SECTION} {cls.__module__}.{cls.__qualname__} {{"device": "{dev}"}}')
                    try:
                        out += [*_encode(cls, {"device": dev}, remote.get_fact(cls, device=dev)), "", f"{END} 0"]
                    except KeyError:  # the node holds no value: the tool fails (``dumpe2fs`` of a blank device)
                        out += ["", f"{END} 1"]
            continue
        m = _HEADER.match(line)
        if not m:
            continue
        header = m.group(1)
        out.append(header)
        if header.startswith(GROUP):
            _, group, members = header.split(" ", 2)
            out += _group_lines(remote, group, json.loads(members))
        else:
            _, name, args = header.split(" ", 2)
            cls, kwargs = fact_class(name), json.loads(args)
            given = {k: v for k, v in kwargs.items() if v is not None and k in ARGUMENTS}
            out += _encode(cls, kwargs, _get(remote, cls, given))
        out += ["", f"{END} 0"]
    return out
