"""Pod-wide rules that no single field can check. Runs before any host is touched.

Every rule reports ``Problem(field.path, "what is wrong (what would be valid)")``; all problems are
collected so the user fixes the spec in one pass.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from pathlib import Path

from deploy.addressing import plan_addresses, routed_switch
from deploy.assignment import all_drives, host_nqn, node_drives, subsystem_nqn
from deploy.capacity import ext4_usable_gib
from deploy.compat import is_standin, lookup, working
from deploy.errors import Problem, SpecError
from deploy.lmcache_keys import KVPOD_EXTRA_CONFIG, KVPOD_SETTINGS, keys_for, known_versions
from deploy.names import WHEELHOUSE_DEST
from deploy.nodes import collapse_generated, expand_nodes
from deploy.secrets import reveal
from deploy.spec import Enclosure, Node, PodSpec, Vllm, VllmInstall
from deploy.spec_types import check_nqn, ifname_problem, inside
from deploy.wording import name_list, natural_key, plural


def check_pod(spec: PodSpec) -> list[Problem]:
    """Every pod-wide problem of a structurally valid spec (empty list: the spec is usable)."""
    try:
        nodes = expand_nodes(spec.nodes)
    except SpecError as exc:
        return exc.problems
    node_path = _node_paths(spec, nodes)
    problems: list[Problem] = []
    rules = (
        _names,
        _switches,
        _enclosures,
        _namespaces,
        _host_identity,
        _gpus,
        _budgets,
        _lmcache,
        _vlans,
        _fabric,
        _install,
        _target_servers,
        _interface_names,
        _host_paths,
        _model_files,
    )
    for rule in rules:
        problems.extend(rule(spec, nodes, node_path))
    problems.extend(Problem(p, m) for p, m in plan_addresses(spec, nodes).problems)
    return in_order(collapse_generated(problems))


def in_order(problems: list[Problem]) -> list[Problem]:
    """Without repeats, by path in numeric order (nodes[2] before nodes[10], gpu2 before gpu10)."""
    return sorted(set(problems), key=lambda p: (natural_key(p.path), p.message))


def _generated(path: str) -> bool:
    return path.startswith("nodes.generate[")


def _written_first(path: str) -> tuple:
    """Sort key: a field the spec writes out (an override, an explicit node) before a generated one."""
    return (_generated(path), natural_key(path))


def _node_paths(spec: PodSpec, nodes: list[Node]) -> dict[str, str]:
    if isinstance(spec.nodes, list):
        return {n.name: f"nodes[{i}]" for i, n in enumerate(nodes)}
    overridden = spec.nodes.overrides
    return {n.name: f"nodes.overrides.{n.name}" if n.name in overridden else f"nodes.generate[{n.name}]" for n in nodes}


def _duplicates(items: list[tuple[str, object]]) -> dict[object, list[str]]:
    """Group paths by value, keeping only values that occur more than once."""
    seen: dict[object, list[str]] = defaultdict(list)
    for path, value in items:
        seen[value].append(path)
    return {v: paths for v, paths in seen.items() if len(paths) > 1}


def _names(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for kind, names in (
        ("node", [n.name for n in nodes]),
        ("switch", [s.name for s in spec.switches]),
        ("enclosure", [e.name for e in spec.enclosures]),
    ):
        for name, count in {x: names.count(x) for x in names}.items():
            if count > 1:
                section = {"node": "nodes", "switch": "switches", "enclosure": "enclosures"}[kind]
                out.append(
                    Problem(
                        f"{section}.{name}", f"duplicate {kind} name {name!r} ({count} times; names must be unique)"
                    )
                )
    ssh = _duplicates([(n.name, (n.ssh.address, n.ssh.port)) for n in nodes])
    for (addr, port), names in ssh.items():
        paths = [f"{np[n]}.ssh" for n in names]
        if all(_generated(p) for p in paths):
            out.append(
                Problem(
                    "nodes.generate.ssh_address_step",
                    f"{len(names)} nodes share the SSH endpoint {addr}:{port} ({name_list(names)}; each node needs "
                    "its own: give ssh_address_step or ssh_port_step above 0)",
                )
            )
            continue
        out.append(
            Problem(
                min(paths, key=_written_first),
                f"SSH endpoint {addr}:{port} is shared by {len(names)} nodes: {name_list(names)} "
                "(each node needs its own)",
            )
        )
    return out


def _switches(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    names = {s.name: s for s in spec.switches}
    valid = ", ".join(names) or "none defined under switches"
    attachments: list[tuple[str, tuple[str, str]]] = []
    for n in nodes:
        if n.switch is not None:
            if n.switch not in names:
                out.append(Problem(f"{np[n.name]}.switch", f"unknown switch {n.switch!r} (valid: {valid})"))
            if n.switch_port is None:
                out.append(Problem(f"{np[n.name]}.switch_port", "required when switch is set (e.g. swp1)"))
            else:
                attachments.append((f"{np[n.name]}.switch_port", (n.switch, n.switch_port)))
    for ei, enc in enumerate(spec.enclosures):
        for ii, iom in enumerate(enc.ioms):
            for pi, port in enumerate(iom.ports):
                path = f"enclosures[{ei}].ioms[{ii}].ports[{pi}]"
                if port.switch is not None:
                    if port.switch not in names:
                        out.append(Problem(f"{path}.switch", f"unknown switch {port.switch!r} (valid: {valid})"))
                    if port.switch_port is None:
                        out.append(Problem(f"{path}.switch_port", "required when switch is set"))
                    else:
                        attachments.append((f"{path}.switch_port", (port.switch, port.switch_port)))
    out.extend(_shared_ports(spec, _duplicates(attachments)))
    for si, sw in enumerate(spec.switches):
        out.extend(sw.problems(f"switches[{si}]", spec))
    return out


def _shared_ports(spec: PodSpec, shared: dict[object, list[str]]) -> list[Problem]:
    """One problem per switch port cabled to several devices; a generator's port without ``{n}`` says so."""
    out: list[Problem] = []
    gen = spec.nodes.generate if not isinstance(spec.nodes, list) else None
    for (sw, port), paths in shared.items():
        generated = [p for p in paths if _generated(p)]
        if gen is not None and gen.switch_port and "{n" not in gen.switch_port and len(generated) > 1:
            out.append(
                Problem(
                    "nodes.generate.switch_port",
                    f"{len(generated)} nodes get the same port {gen.switch_port!r} on {sw} "
                    f"(use {{n}} for the node number, e.g. {gen.switch_port.rstrip('0123456789') + '{n}'!r})",
                )
            )
            if len(generated) == len(paths):
                continue
        devices = [_device(p) for p in paths]
        out.append(
            Problem(
                min(paths, key=_written_first),
                f"switch port {sw}/{port} is cabled to {len(paths)} devices: {name_list(devices)} "
                "(one device per port)",
            )
        )
    return out


def _device(path: str) -> str:
    """``node gpu01`` for a node's field path, else the path without its last key."""
    match = re.match(r"nodes\.(?:generate\[|overrides\.)([^\].]+)", path)
    return f"node {match.group(1)}" if match else path.rsplit(".", 1)[0]


def _enclosures(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for ei, enc in enumerate(spec.enclosures):
        drives = enc.drive_list()
        slots = [d.slot for d in drives]
        for slot in sorted({s for s in slots if slots.count(s) > 1}):
            out.append(Problem(f"enclosures[{ei}].drives", f"slot {slot} is listed twice (slots must be unique)"))
        out.extend(enc.problems(f"enclosures[{ei}]", spec))
        nqns = _duplicates([(f"enclosures[{ei}].drives[slot {d.slot}].nqn", subsystem_nqn(enc, d)) for d in drives])
        for nqn, paths in nqns.items():
            out.append(Problem(paths[0], f"subsystem NQN {nqn} is used by {len(paths)} drives (NQNs must be unique)"))
    return out


def _namespaces(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    drives = all_drives(spec)
    if len(nodes) > len(drives):
        out.append(
            Problem(
                "nodes",
                f"{plural(len(nodes), 'node')} but only {plural(len(drives), 'drive')} (one drive per node; add drives "
                "or remove nodes)",
            )
        )
    known = {(e.name, d.slot) for e, d in drives}
    encs = {e.name: e for e in spec.enclosures}
    holders: dict[tuple[str, int], list[str]] = defaultdict(list)
    for node, ref in node_drives(spec, nodes).items():
        path = f"{np[node]}.namespace"
        if ref.enclosure not in encs:
            out.append(Problem(f"{path}.enclosure", f"unknown enclosure {ref.enclosure!r} (valid: {', '.join(encs)})"))
            continue
        if (ref.enclosure, ref.slot) not in known:
            slots = sorted(d.slot for d in encs[ref.enclosure].drive_list())
            out.append(
                Problem(
                    f"{path}.drive",
                    f"enclosure {ref.enclosure} has no drive {ref.slot} (valid: {slots[0]}-{slots[-1]})",
                )
            )
            continue
        holders[(ref.enclosure, ref.slot)].append(node)
    for (enc, slot), names in holders.items():
        if len(names) > 1:
            out.append(
                Problem(
                    min((f"{np[name]}.namespace" for name in names), key=_written_first),
                    f"drive {enc}/{slot} is assigned to {len(names)} nodes: {name_list(names)} "
                    "(ext4 is not a cluster filesystem: give each node its own drive)",
                )
            )
    return out


def _host_identity(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for nqn, names in _duplicates([(n.name, host_nqn(spec, n)) for n in nodes]).items():
        out.append(
            Problem(
                min((f"{np[n]}.host_nqn" for n in names), key=_written_first),
                f"host NQN {nqn} is shared by {len(names)} nodes: {name_list(names)} (each node needs its own)",
            )
        )
    ids = [(n.name, n.host_id) for n in nodes if n.host_id]
    for hid, names in _duplicates(ids).items():
        out.append(
            Problem(
                min((f"{np[n]}.host_id" for n in names), key=_written_first),
                f"host ID {hid} is shared by {len(names)} nodes: {name_list(names)} (each node needs its own)",
            )
        )
    return out


def _gpus(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    tp = spec.vllm.tensor_parallel_size
    return [
        Problem(
            f"{np[n.name]}.gpus",
            f"{n.gpus} GPUs cannot run tensor parallel size {tp} "
            f"(GPU count must be a multiple of vllm.tensor_parallel_size, e.g. {tp})",
        )
        for n in nodes
        if n.gpus % tp != 0
    ] + [
        Problem(
            f"{np[n.name]}.gpus",
            f"{n.gpus // tp} engines need ports {spec.vllm.port}..{spec.vllm.port + n.gpus // tp - 1} "
            f"(vllm.port + engine index must stay at or below 65535)",
        )
        for n in nodes
        if n.gpus % tp == 0 and spec.vllm.port + n.gpus // tp - 1 > 65535
    ]


def _budgets(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    budget = spec.kvcache.disk_budget_gib
    encs = {e.name: e for e in spec.enclosures}
    too_small: dict[float, list[tuple[str, object]]] = defaultdict(list)  # capacity -> (node, drive)
    for node, ref in node_drives(spec, nodes).items():
        enc = encs.get(ref.enclosure)
        drive = next((d for d in enc.drive_list() if d.slot == ref.slot), None) if enc else None
        if drive is not None and budget > ext4_usable_gib(drive.capacity_gb):
            too_small[drive.capacity_gb].append((node, ref))
    for capacity, held in sorted(too_small.items()):
        usable = ext4_usable_gib(capacity)
        most = int(usable * 100) / 100
        if len(held) == 1:
            ((node, ref),) = held
            what = f"drive {ref} of node {node}"
        else:
            what = f"the drives of {len(held)} nodes ({name_list(n for n, _ in held)})"
        out.append(
            Problem(
                "kvcache.disk_budget_gib",
                f"{budget:g} GiB does not fit {what}: {capacity:g} GB (decimal) holds about {usable:.2f} GiB "
                f"after ext4 overhead (use at most {most:.2f})",
            )
        )
    return out


_KIND_CHECKS = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str | int | float) and not isinstance(v, bool), "a string"),
    "list": (lambda v: isinstance(v, list | str), "a list (or a comma-separated string)"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
}
# Names people reach for to switch LMCache's usage reporting: it is an environment variable, not a setting.
_TELEMETRY_WORDS = ("usage", "track", "telemetry", "stats")


def _lmcache(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """``kvcache.lmcache_extra`` against the settings of the LMCache version the spec targets."""
    kv = spec.kvcache
    try:
        keys = keys_for(kv.lmcache_version)
    except KeyError:
        return [
            Problem(
                "kvcache.lmcache_version",
                f"kvpod has no list of LMCache {kv.lmcache_version}'s settings "
                f"(known: {', '.join(known_versions())}; README, 'LMCache version', tells how to add one)",
            )
        ]
    out: list[Problem] = []
    version = f"LMCache {keys.version}"
    for key, value in kv.lmcache_extra.items():
        path = f"kvcache.lmcache_extra.{key}"
        setting = keys.renamed.get(key, key)
        if setting in KVPOD_SETTINGS:
            source = KVPOD_SETTINGS[setting]
            where = f"set {source} instead" if source.startswith("kvcache.") else source
            out.append(Problem(path, f"kvpod writes {setting} itself ({where}): give it once"))
        elif key in keys.renamed:
            out.append(Problem(path, f"{key} is the deprecated name of {setting} in {version} (use {setting})"))
        elif key in keys.ignored:
            out.append(Problem(path, f"{version} does not read {key} ({keys.ignored[key]})"))
        elif key not in keys.settings:
            if any(word in str(key).lower() for word in _TELEMETRY_WORDS):
                hint = "usage reporting is kvcache.lmcache_telemetry"
            else:
                close = difflib.get_close_matches(str(key), keys.settings, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"settings: deploy/lmcache_keys/{keys.version}.json"
            out.append(Problem(path, f"{version} has no setting {key!r} ({hint})"))
        else:
            kind = keys.settings[key]
            check, wanted = _KIND_CHECKS[kind]
            value = reveal(value)
            if value is None:
                out.append(Problem(path, f"no value (give {wanted}, or leave {key} out for LMCache's default)"))
            elif not check(value):
                out.append(Problem(path, f"{version} takes {wanted} for {key}, not {kv.lmcache_extra[key]!r}"))
            elif key == "extra_config":
                for inner, source in KVPOD_EXTRA_CONFIG.items():
                    if inner in value:
                        out.append(Problem(f"{path}.{inner}", f"kvpod sizes it from {source}: set that instead"))
    return out


def _vlans(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    fab = spec.fabric
    out: list[Problem] = []
    if fab.vlan_mode == "per-node" and fab.node_vlans is not None:
        if fab.node_vlans.size < len(nodes):
            out.append(
                Problem(
                    "fabric.node_vlans",
                    f"range {fab.node_vlans.start}-{fab.node_vlans.end} has "
                    f"{plural(fab.node_vlans.size, 'VLAN')} for {plural(len(nodes), 'node')} "
                    f"(need end >= {fab.node_vlans.start + len(nodes) - 1})",
                )
            )
        if fab.node_vlans.start <= fab.storage_vlan <= fab.node_vlans.end:
            out.append(
                Problem(
                    "fabric.node_vlans", f"range contains the storage VLAN {fab.storage_vlan} (use a disjoint range)"
                )
            )
        if not routed_switch(spec):
            out.append(
                Problem(
                    "fabric.vlan_mode",
                    "per-node VLANs reach the storage VLAN through a switch SVI: "
                    "set routed: true on a switch (or use vlan_mode: shared)",
                )
            )
    return out


def _fabric(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    if spec.fabric.transport == "tcp":
        for ei, enc in enumerate(spec.enclosures):
            for ii, iom in enumerate(enc.ioms):
                for pi, port in enumerate(iom.ports):
                    if "tcp" not in port.transports:
                        out.append(
                            Problem(
                                f"enclosures[{ei}].ioms[{ii}].ports[{pi}].transports",
                                "fabric.transport is tcp but this portal offers only "
                                f"{', '.join(port.transports)} (add tcp)",
                            )
                        )
    return out


def project_name(name: str) -> str:
    """A distribution's normalized name (PEP 503): ``LMCache`` -> ``lmcache``, ``lm_cache`` -> ``lm-cache``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    """The normalized project name of a wheel file (``lmcache-0.5.6-py3-none-any.whl`` -> ``lmcache``)."""
    return project_name(filename.split("-", 1)[0])


def _install(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    inst = spec.vllm.install
    if inst is None:
        return []
    problems = []
    if spec.vllm.executable != Vllm.model_fields["executable"].default:
        problems.append(
            Problem(
                "vllm.executable",
                f"{spec.vllm.executable} is set together with vllm.install, whose environment provides "
                f"{inst.venv}/bin/vllm (remove one of them)",
            )
        )
    problems.extend(_broken_pair(spec))
    return problems


def _installed_pair(spec: PodSpec, inst: VllmInstall) -> tuple[str, str, str]:
    """The vLLM and LMCache versions ``vllm.install`` installs, and the field the LMCache version comes from."""
    if inst.lmcache_version is not None:
        return inst.vllm_version, inst.lmcache_version, "vllm.install.lmcache_version"
    return inst.vllm_version, spec.kvcache.lmcache_version, "kvcache.lmcache_version"


def _working_pairs() -> str:
    return ", ".join(f"vllm {p.vllm} with lmcache {p.lmcache}" for p in working())


def _broken_pair(spec: PodSpec) -> list[Problem]:
    """A vLLM and LMCache pair the compatibility table (deploy/compat/table.toml) marks broken is refused."""
    inst = spec.vllm.install
    if inst is None or is_standin(inst.vllm_version, inst.wheelhouse):
        return []
    vllm, lmcache, lmcache_field = _installed_pair(spec, inst)
    row = lookup(vllm, lmcache)
    if row is None or row.status != "broken":
        return []
    return [
        Problem(
            "vllm.install.vllm_version",
            f"vLLM {vllm} with LMCache {lmcache} ({lmcache_field}) is known broken: {row.reason} "
            f"(working pairs: {_working_pairs()})",
        )
    ]


def warnings(spec: PodSpec) -> list[Problem]:
    """What a valid spec asks that kvpod cannot vouch for: a vLLM and LMCache pair the compatibility table does
    not know (the lab's stand-in is known)."""
    inst = spec.vllm.install
    if inst is None or is_standin(inst.vllm_version, inst.wheelhouse):
        return []
    vllm, lmcache, lmcache_field = _installed_pair(spec, inst)
    if lookup(vllm, lmcache) is not None:
        return []
    return [
        Problem(
            "vllm.install.vllm_version",
            f"vLLM {vllm} with LMCache {lmcache} ({lmcache_field}) is not in the compatibility table: "
            f"whether LMCache's compiled ops link is unknown (proven pairs: {_working_pairs()}; "
            "python3 -m deploy.compat.gather checks a pair)",
        )
    ]


def wheelhouse_problems(wheelhouse: str | None) -> list[str]:
    """What is wrong with ``vllm.install.wheelhouse`` on this machine (checked before ``kvpod up`` touches a host;
    ``kvpod validate`` may run where the wheels are not)."""
    if wheelhouse is None:
        return []
    where = Path(wheelhouse).expanduser()
    if not where.is_dir():
        return [f"vllm.install.wheelhouse: {wheelhouse} is not a directory here"]
    found = {wheel_project(w.name) for w in where.glob("*.whl")}
    missing = [p for p in ("vllm", "lmcache") if p not in found]
    if missing:
        return [
            f"vllm.install.wheelhouse: {wheelhouse} has no wheel of {', '.join(missing)} "
            "(fill it with `pip download --dest DIR vllm==X lmcache==Y`)"
        ]
    return []


def _server(enc: Enclosure) -> tuple:
    """The machine serving an enclosure: enclosures reached through one SSH endpoint share one (as the plan
    numbers their ports and the runner configures them), others are each their own."""
    ssh = enc.management.ssh
    return ("ssh", ssh.address, ssh.port) if ssh else ("enclosure", enc.name)


def _target_servers(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """Subsystem NQNs are unique in the pod (an NQN names one subsystem: hosts join equal NQNs as paths of one),
    device paths unique on each target server (two subsystems on one file would share its blocks)."""
    out: list[Problem] = []
    nqns: list[tuple[str, object]] = []
    devices: list[tuple[str, object]] = []
    for ei, enc in enumerate(spec.enclosures):
        explicit = isinstance(enc.drives, list)
        for di, d in enumerate(enc.drive_list()):
            nqn = subsystem_nqn(enc, d)
            path = f"enclosures[{ei}].drives[{di}].nqn" if explicit and d.nqn else f"enclosures[{ei}].nqn_prefix"
            try:
                check_nqn(nqn)
            except ValueError as exc:
                if not any(p.path == path for p in out):  # once per field, not once per drive
                    out.append(Problem(path, f"drive {d.slot} gets NQN {nqn[:60]}...: {exc}"))
            nqns.append((path, (nqn, ei)))
            if d.device_path:
                where = f"enclosures[{ei}].drives[{di}].device_path" if explicit else f"enclosures[{ei}].drives"
                devices.append((where, (_server(enc), d.device_path, ei)))
    first: dict[str, tuple[str, int]] = {}
    for path, (nqn, ei) in nqns:
        if nqn in first and first[nqn][1] != ei:
            out.append(Problem(path, f"subsystem NQN {nqn} is also used by {first[nqn][0]} (NQNs must be unique)"))
        first.setdefault(nqn, (path, ei))
    seen: dict[tuple, str] = {}
    for path, (server, device, _) in devices:
        key = (server, device)
        if key in seen and seen[key] != path:
            out.append(
                Problem(path, f"device {device} is also backing {seen[key]} on the same target server (one each)")
            )
        seen.setdefault(key, path)
    return out


def _interface_names(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """Interfaces kvpod creates are named <interface>.<vlan>: that name too must fit Linux's 15 bytes."""
    out: list[Problem] = []
    fab = spec.fabric
    per_node = fab.vlan_mode == "per-node" and fab.node_vlans is not None
    overrides = {} if isinstance(spec.nodes, list) else spec.nodes.overrides
    reported: set[str] = set()
    for i, n in enumerate(nodes):
        vlan = fab.node_vlans.start + i if per_node else fab.storage_vlan
        why = ifname_problem(f"{n.fabric_interface}.{vlan}")
        generated = not isinstance(spec.nodes, list) and "fabric_interface" not in overrides.get(n.name, {})
        path = "nodes.generate.fabric_interface" if generated else f"{np[n.name]}.fabric_interface"
        if why and path not in reported:  # once per field, not once per generated node
            reported.add(path)
            out.append(
                Problem(
                    path,
                    f"its VLAN interface {n.fabric_interface}.{vlan} is {why.split(' (')[0]} "
                    "(Linux allows 15: use a shorter name)",
                )
            )
    for ei, enc in enumerate(spec.enclosures):
        for ii, iom in enumerate(enc.ioms):
            for pi, port in enumerate(iom.ports):
                if port.interface and ifname_problem(f"{port.interface}.{fab.storage_vlan}"):
                    out.append(
                        Problem(
                            f"enclosures[{ei}].ioms[{ii}].ports[{pi}].interface",
                            f"its VLAN interface {port.interface}.{fab.storage_vlan} is longer than 15 bytes "
                            "(use a shorter name)",
                        )
                    )
    bridges = {s.name for s in spec.switches if s.ports_are_interfaces}
    attached = [(f"{np[n.name]}.switch_port", n.switch, n.switch_port) for n in nodes]
    attached += [
        (f"enclosures[{ei}].ioms[{ii}].ports[{pi}].switch_port", port.switch, port.switch_port)
        for ei, enc in enumerate(spec.enclosures)
        for ii, iom in enumerate(enc.ioms)
        for pi, port in enumerate(iom.ports)
    ]
    for path, switch, port in attached:
        if switch in bridges and port is not None:
            why = ifname_problem(port)
            if why:
                out.append(Problem(path, f"a port of Linux bridge {switch} is an interface: {port!r} {why}"))
    return out


def _host_paths(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """The KV-cache mount, the vLLM environment and kvpod's own files on a node do not overlap."""
    out: list[Problem] = []
    mount = spec.kvcache.path
    inst = spec.vllm.install
    places: list[tuple[str, str]] = []  # kvpod's lock and state: inside SYSTEM_TREES, refused by the type
    if inst is not None:
        places.append(("vllm.install.venv", inst.venv))
        if inst.wheelhouse:
            places.append(("the wheelhouse kvpod pushes", WHEELHOUSE_DEST))
    for what, where in places:
        if inside(mount, where) or inside(where, mount):
            out.append(
                Problem(
                    "kvcache.path", f"{mount} overlaps {what} at {where} (give the KV-cache mount its own directory)"
                )
            )
    if inside(spec.vllm.executable, mount):
        out.append(
            Problem(
                "vllm.executable", f"{spec.vllm.executable} is inside the KV-cache mount {mount} (install it elsewhere)"
            )
        )
    if inst is not None and inside(inst.python, inst.venv):
        out.append(
            Problem("vllm.install.python", f"{inst.python} is inside the environment {inst.venv} it is to create")
        )
    return out


def _model_files(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """The weights lie off the KV-cache mount (a drive kvpod may move to another node, whose LMCache directory it
    empties before every start), and an offline pod names where they are staged."""
    out: list[Problem] = []
    v, mount = spec.vllm, spec.kvcache.path
    local = v.model.startswith("/")
    if v.weights_cache_dir and (inside(v.weights_cache_dir, mount) or inside(mount, v.weights_cache_dir)):
        out.append(
            Problem(
                "vllm.weights_cache_dir",
                f"{v.weights_cache_dir} overlaps the KV-cache mount {mount}, a drive that holds only LMCache's "
                "files and may move to another node (give the weights a directory of their own, e.g. /srv/hf)",
            )
        )
    if local and inside(v.model, mount):
        out.append(
            Problem(
                "vllm.model",
                f"{v.model} is on the KV-cache mount {mount}, a drive that holds only LMCache's files and may move "
                "to another node (stage the weights elsewhere, e.g. /srv/models/NAME)",
            )
        )
    if v.offline and not local and v.weights_cache_dir is None:
        org_name = v.model.replace("/", "--")
        out.append(
            Problem(
                "vllm.offline",
                f"offline, vLLM cannot download {v.model}: its weights must be staged on every node, and without "
                f"vllm.weights_cache_dir they would have to be in vllm.user's home cache, which kvpod creates "
                f"empty (give vllm.weights_cache_dir, the cache holding <dir>/hub/models--{org_name}/snapshots/"
                "<revision>/, or give vllm.model as the absolute path of the weights on the node)",
            )
        )
    return out
