"""The target sheet: what each enclosure must be set to, for an operator (text) or a spreadsheet (CSV).

Pure functions of the plan; ``kvpod target sheet SPEC [--csv]`` prints them.
"""

from __future__ import annotations

import csv
import io

from deploy.plan import Plan, TargetPlan, TargetPortalPlan
from deploy.targets import driver_for

SPARE = "admits no host (spare)"

CSV_COLUMNS = [
    "section",
    "enclosure",
    "kind",
    "iom",
    "port",
    "interface",
    "address",
    "prefix_length",
    "vlan",
    "tagged",
    "mtu",
    "transports",
    "trsvcid",
    "switch",
    "switch_port",
    "destination",
    "gateway",
    "drive",
    "subsystem_nqn",
    "nsid",
    "capacity_gb",
    "device_path",
    "allowed_host_nqn",
    "node",
    "spare",
]


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]


def _vlan(p: TargetPortalPlan) -> str:
    return f"{p.vlan} tagged ({p.vlan_interface})" if p.vlan_interface else f"{p.vlan} untagged"


def _switch_port(p: TargetPortalPlan) -> str:
    return f"{p.switch} {p.switch_port}" if p.switch and p.switch_port else "-"


def _gb(value: float) -> str:
    return f"{value:g}"


def enclosure_section(target: TargetPlan, pod: Plan, notes: list[str]) -> str:
    """One enclosure: notes, fabric ports, routes and subsystems with the one host each admits."""
    where = f"management {target.management_address}" if target.management_address else "no management address"
    if target.ssh:
        where = f"SSH {target.ssh.user}@{target.ssh.host}:{target.ssh.port}"
    lines = [f"== Enclosure {target.name} ({target.kind}), {where} ==", *notes, "", "Fabric ports"]
    with_if = any(p.interface for p in target.portals)
    headers = ["IOM", "PORT", *(["INTERFACE"] if with_if else []), "ADDRESS", "VLAN", "MTU", "TRANSPORTS"]
    headers += ["TRSVCID", "SWITCH PORT"]
    rows = [
        [
            p.iom,
            p.port,
            *([p.interface or "-"] if with_if else []),
            f"{p.address}/{p.prefix_length}",
            _vlan(p),
            str(p.mtu),
            ",".join(p.transports),
            str(p.trsvcid),
            _switch_port(p),
        ]
        for p in target.portals
    ]
    lines += _table(headers, rows)
    if target.routes:
        lines += ["", "Routes (replies to the node subnets go through the switch)"]
        lines += [f"  {dest} via {target.gateway}" for dest in target.routes]
    with_dev = any(s.device_path for s in target.subsystems)
    lines += ["", "Subsystems (one namespace each; each admits only the host listed)"]
    headers = ["DRIVE", "SUBSYSTEM NQN", "NSID", "SIZE GB", *(["DEVICE"] if with_dev else []), "ALLOWED HOST NQN"]
    headers += ["NODE"]
    rows = [
        [
            f"{s.drive:02d}",
            s.nqn,
            str(s.nsid),
            _gb(s.capacity_gb),
            *([s.device_path or "-"] if with_dev else []),
            s.allowed_host_nqn or SPARE,
            s.node or "-",
        ]
        for s in target.subsystems
    ]
    lines += _table(headers, rows)
    return "\n".join(lines) + "\n"


def render_target_sheet(plan: Plan) -> str:
    """Every enclosure of the pod, as its driver presents it, after a fabric summary."""
    f = plan.fabric
    head = [
        f"kvpod target sheet: pod {plan.pod}",
        f"Fabric: MTU {f.mtu}, storage VLAN {f.storage_vlan}, subnet {f.subnet}, transport {f.transport}, "
        f"multipath {'on' if f.multipath else 'off'}",
    ]
    sections = [driver_for(t.kind).sheet(t, plan) for t in plan.targets]
    return "\n".join(head) + "\n\n" + "\n".join(sections)


def render_target_csv(plan: Plan) -> str:
    """One CSV for every enclosure; the ``section`` column says what a row is.

    ``port`` rows fill the fabric columns (iom .. switch_port), ``route`` rows destination and gateway,
    ``subsystem`` rows drive .. spare (a spare, ``spare=yes``, admits no host: ``allowed_host_nqn`` and
    ``node`` are empty). Columns are :data:`CSV_COLUMNS`; a column that does not apply to a row is empty.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for t in plan.targets:
        base = {"enclosure": t.name, "kind": t.kind}
        for p in t.portals:
            w.writerow(
                {
                    **base,
                    "section": "port",
                    "iom": p.iom,
                    "port": p.port,
                    "interface": p.interface or "",
                    "address": p.address,
                    "prefix_length": p.prefix_length,
                    "vlan": p.vlan,
                    "tagged": "yes" if p.vlan_interface else "no",
                    "mtu": p.mtu,
                    "transports": " ".join(p.transports),
                    "trsvcid": p.trsvcid,
                    "switch": p.switch or "",
                    "switch_port": p.switch_port or "",
                }
            )
        for dest in t.routes:
            w.writerow({**base, "section": "route", "destination": dest, "gateway": t.gateway or ""})
        for s in t.subsystems:
            w.writerow(
                {
                    **base,
                    "section": "subsystem",
                    "drive": s.drive,
                    "subsystem_nqn": s.nqn,
                    "nsid": s.nsid,
                    "capacity_gb": _gb(s.capacity_gb),
                    "device_path": s.device_path or "",
                    "allowed_host_nqn": s.allowed_host_nqn or "",
                    "node": s.node or "",
                    "spare": "no" if s.allowed_host_nqn else "yes",
                }
            )
    return buf.getvalue()
