"""Pod-wide rules of the storage: drives and their NQNs, one node per drive, host identities, budgets, target
servers."""

from __future__ import annotations

from collections import defaultdict

from deploy.assignment import all_drives, host_nqn, node_drives, subsystem_nqn
from deploy.capacity import ext4_usable_gib
from deploy.errors import Problem
from deploy.spec import Enclosure, Node, PodSpec
from deploy.spec_types import check_nqn
from deploy.validate_common import duplicates, written_first
from deploy.wording import name_list, plural


def enclosure_drives(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for ei, enc in enumerate(spec.enclosures):
        drives = enc.drive_list()
        slots = [d.slot for d in drives]
        for slot in sorted({s for s in slots if slots.count(s) > 1}):
            out.append(Problem(f"enclosures[{ei}].drives", f"slot {slot} is listed twice (slots must be unique)"))
        out.extend(enc.problems(f"enclosures[{ei}]", spec))
        nqns = duplicates([(f"enclosures[{ei}].drives[slot {d.slot}].nqn", subsystem_nqn(enc, d)) for d in drives])
        for nqn, paths in nqns.items():
            out.append(Problem(paths[0], f"subsystem NQN {nqn} is used by {len(paths)} drives (NQNs must be unique)"))
    return out


def namespace_holders(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
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
                    min((f"{np[name]}.namespace" for name in names), key=written_first),
                    f"drive {enc}/{slot} is assigned to {len(names)} nodes: {name_list(names)} "
                    "(ext4 is not a cluster filesystem: give each node its own drive)",
                )
            )
    return out


def host_identities(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for nqn, names in duplicates([(n.name, host_nqn(spec, n)) for n in nodes]).items():
        out.append(
            Problem(
                min((f"{np[n]}.host_nqn" for n in names), key=written_first),
                f"host NQN {nqn} is shared by {len(names)} nodes: {name_list(names)} (each node needs its own)",
            )
        )
    ids = [(n.name, n.host_id) for n in nodes if n.host_id]
    for hid, names in duplicates(ids).items():
        out.append(
            Problem(
                min((f"{np[n]}.host_id" for n in names), key=written_first),
                f"host ID {hid} is shared by {len(names)} nodes: {name_list(names)} (each node needs its own)",
            )
        )
    return out


def disk_budgets(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
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


def _server(enc: Enclosure) -> tuple:
    """The machine serving an enclosure: enclosures reached through one SSH endpoint share one (as the plan
    numbers their ports and the runner configures them), others are each their own."""
    ssh = enc.management.ssh
    return ("ssh", ssh.address, ssh.port) if ssh else ("enclosure", enc.name)


def target_servers(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
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
            device = d.backing_path()
            if device:
                where = f"enclosures[{ei}].drives[{di}].device_path" if explicit else f"enclosures[{ei}].drives"
                devices.append((where, (_server(enc), device, ei)))
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
