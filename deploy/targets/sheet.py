"""The target sheet: what each enclosure must be set to, for an operator (text) or a spreadsheet (CSV).

Pure functions of the plan; ``kvpod target sheet SPEC [--csv]`` prints them.
"""

from __future__ import annotations

import csv
import io

from deploy.plan import Plan
from deploy.targets import driver_for
from deploy.targets.section import gb

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
                    "capacity_gb": gb(s.capacity_gb),
                    "device_path": s.device_path or "",
                    "allowed_host_nqn": s.allowed_host_nqn or "",
                    "node": s.node or "",
                    "spare": "no" if s.allowed_host_nqn else "yes",
                }
            )
    return buf.getvalue()
