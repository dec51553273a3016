"""One enclosure's section of the target sheet: its ports, routes and subsystems as text tables.

Drivers build their ``sheet()`` from it; :mod:`deploy.targets.sheet` puts the sections together.
"""

from __future__ import annotations

from deploy.plan import Plan, TargetPlan, TargetPortalPlan

SPARE = "admits no host (spare)"


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]


def _vlan(p: TargetPortalPlan) -> str:
    return f"{p.vlan} tagged ({p.vlan_interface})" if p.vlan_interface else f"{p.vlan} untagged"


def _switch_port(p: TargetPortalPlan) -> str:
    return f"{p.switch} {p.switch_port}" if p.switch and p.switch_port else "-"


def gb(value: float) -> str:
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
            gb(s.capacity_gb),
            *([s.device_path or "-"] if with_dev else []),
            s.allowed_host_nqn or SPARE,
            s.node or "-",
        ]
        for s in target.subsystems
    ]
    lines += _table(headers, rows)
    return "\n".join(lines) + "\n"
