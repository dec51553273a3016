"""``kvpod plan``'s tables: a compact view that fits 80 columns, and ``--wide`` with every value.

The compact view says once what every node shares (a value all nodes have is a line above the table, a value
that differs is a column), so a row is a node's name, address, switch port and drive.
"""

from __future__ import annotations

from collections.abc import Callable

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from deploy.plan import NodePlan, Plan, SwitchPlan, TargetPlan
from deploy.wording import natural_key, plural

# Per-node values shown once when every node has the same one: label, value.
_SHARED: list[tuple[str, Callable[[NodePlan], str]]] = [
    ("vlan", lambda n: str(n.fabric.vlan)),
    ("mtu", lambda n: str(n.fabric.mtu)),
    ("fabric NIC", lambda n: f"{n.fabric.interface} ({n.fabric.rdma} RDMA)"),
    ("portals", lambda n: " ".join(p.address for p in n.namespace.portals)),
    ("GPUs", lambda n: str(n.gpus)),
    ("engines (port: GPUs)", lambda n: " ".join(f"{e.port}: {e.cuda_visible_devices}" for e in n.engines)),
    ("mount", lambda n: f"{n.mount.path} ({','.join(n.mount.options)})"),
    (
        "LMCache per engine",
        lambda n: (
            f"{n.engines[0].cpu_budget_gib:g} GiB DRAM, {n.engines[0].disk_budget_gib:g} GiB disk "
            f"({n.lmcache.max_local_cpu_size:g} / {n.lmcache.max_local_disk_size:g} per rank)"
        ),
    ),
]


def plan_view(plan: Plan, wide: bool = False) -> list[RenderableType]:
    """The renderables of ``kvpod plan``: the pod, its nodes, targets and switches."""
    if wide:
        return [nodes_wide(plan), targets_table(plan, wide=True), *switch_tables(plan, wide=True)]
    return [pod_summary(plan), nodes_compact(plan), targets_table(plan), *switch_tables(plan)]


def pod_summary(plan: Plan) -> RenderableType:
    f = plan.fabric
    counts = [plural(len(plan.nodes), "node"), plural(len(plan.targets), "enclosure")]
    counts.append(plural(len(plan.switches), "switch"))
    vlan = f"VLAN {f.storage_vlan}" if f.vlan_mode == "shared" else f"per-node VLANs, storage VLAN {f.storage_vlan}"
    lines = [
        Text(f"pod {plan.pod}: {', '.join(counts)}", style="bold"),
        Text(f"fabric: MTU {f.mtu}, {vlan}, {f.subnet}, {f.transport}{', multipath' if f.multipath else ''}"),
    ]
    shared = _shared_values(plan.nodes)
    for label, value in shared.items():
        lines.append(Text(f"every node: {label} {value}"))
    return Group(*lines)


def _shared_values(nodes: list[NodePlan]) -> dict[str, str]:
    out: dict[str, str] = {}
    for label, value in _SHARED:
        values = {value(n) for n in nodes}
        if len(values) == 1:
            out[label] = values.pop()
    return out


def nodes_compact(plan: Plan) -> Table:
    """One row per node: what differs between nodes."""
    shared = _shared_values(plan.nodes)
    varying = [(label, value) for label, value in _SHARED if label not in shared]
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="nodes", title_justify="left")
    for col in ("node", "fabric address", "switch port", "drive", *(label for label, _ in varying)):
        t.add_column(col, overflow="fold")
    for n in plan.nodes:
        t.add_row(
            n.name,
            f"{n.fabric.address}/{n.fabric.prefix_length}",
            f"{n.fabric.switch}/{n.fabric.switch_port}" if n.fabric.switch else "-",
            f"{n.namespace.enclosure}/{n.namespace.drive}",
            *(value(n) for _, value in varying),
        )
    return t


def nodes_wide(plan: Plan) -> Table:
    """Every value of every node (``--wide``)."""
    t = Table(title=f"pod {plan.pod}: {plural(len(plan.nodes), 'node')}, fabric MTU {plan.fabric.mtu}")
    for col in (
        "node",
        "ssh",
        "fabric address",
        "vlan",
        "mtu",
        "fabric NIC",
        "switch port",
        "portals",
        "subsystem NQN",
        "host NQN",
        "mount",
        "engines (port: GPUs)",
        "cpu/disk per engine (GiB)",
        "cpu/disk per rank (GiB)",
    ):
        t.add_column(col, overflow="fold")
    for n in plan.nodes:
        t.add_row(
            n.name,
            f"{n.ssh.user}@{n.ssh.host}:{n.ssh.port}",
            f"{n.fabric.address}/{n.fabric.prefix_length}",
            str(n.fabric.vlan),
            str(n.fabric.mtu),
            f"{n.fabric.interface} ({n.fabric.rdma})",
            f"{n.fabric.switch}/{n.fabric.switch_port}" if n.fabric.switch else "-",
            " ".join(p.address for p in n.namespace.portals),
            n.namespace.subsystem_nqn,
            n.host_nqn,
            f"{n.mount.path} ({','.join(n.mount.options)})",
            " ".join(f"{e.port}: {e.cuda_visible_devices}" for e in n.engines),
            f"{n.engines[0].cpu_budget_gib:g} / {n.engines[0].disk_budget_gib:g}",
            f"{n.lmcache.max_local_cpu_size:g} / {n.lmcache.max_local_disk_size:g}",
        )
    return t


def _nqns(target: TargetPlan) -> str:
    """``<prefix>NN`` for an enclosure's drive NQNs (``--wide``: each drive's own)."""
    nqns = [s.nqn for s in target.subsystems]
    if len(nqns) < 2:
        return nqns[0] if nqns else "-"
    common = nqns[0]
    for nqn in nqns[1:]:
        while not nqn.startswith(common):
            common = common[:-1]
    return f"{common.rstrip('0123456789')}NN"


def targets_table(plan: Plan, wide: bool = False) -> Table:
    """Enclosures: kind, portals (one per line), drives and spares, the drives' NQNs."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="enclosures", title_justify="left")
    for col in ("enclosure", "kind", "portals", "drives", "spare drives"):
        t.add_column(col, overflow="fold")
    if wide:
        t.add_column("subsystem NQNs", overflow="fold")
    captions = []
    for tg in plan.targets:
        spares = _ranges([s.drive for s in tg.subsystems if s.node is None])
        row = [
            tg.name,
            tg.kind,
            "\n".join(f"{p.name} {p.address}" for p in tg.portals),
            str(len(tg.subsystems)),
            spares or "-",
        ]
        if wide:
            row.append("\n".join(f"{s.drive}: {s.nqn}" for s in tg.subsystems))
        else:
            captions.append(f"{tg.name} NQNs: {_nqns(tg)}")
        t.add_row(*row)
    if captions:
        t.caption = "\n".join(captions)
        t.caption_justify = "left"
    return t


def _ranges(numbers: list[int]) -> str:
    """``1, 3, 7-24``: runs of consecutive numbers as ranges."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _port_summary(sw: SwitchPlan) -> str:
    nodes = sorted((p.port for p in sw.ports if p.peer.startswith("node:")), key=natural_key)
    portals = sorted((p.port for p in sw.ports if not p.peer.startswith("node:")), key=natural_key)
    parts = []
    if nodes:
        parts.append(f"{plural(len(nodes), 'node')} on {_span(nodes)}")
    if portals:
        parts.append(f"{plural(len(portals), 'portal')} on {_span(portals)}")
    return "\n".join(parts) or "-"


def _span(ports: list[str]) -> str:
    return ports[0] if len(ports) == 1 else f"{ports[0]}..{ports[-1]}"


def _vlans(sw: SwitchPlan) -> str:
    ids = sorted(v.id for v in sw.vlans)
    if not ids:
        return "-"
    if len(ids) > 3 and ids[-1] - ids[0] == len(ids) - 1:
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(str(i) for i in ids)


def switch_tables(plan: Plan, wide: bool = False) -> list[Table]:
    """The switches: kind, MTU, VLANs and what is cabled where (``--wide``: every port)."""
    if not plan.switches:
        return []
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="switches", title_justify="left")
    for col in ("switch", "kind", "mtu", "vlans", "ports"):
        t.add_column(col, overflow="fold")
    for sw in plan.switches:
        kind = sw.kind + (", routed" if sw.routed else "") + (", RoCE QoS" if sw.roce_qos else "")
        t.add_row(sw.name, kind, str(sw.mtu), _vlans(sw), _port_summary(sw))
    if not wide:
        return [t]
    ports = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="switch ports", title_justify="left")
    for col in ("switch", "port", "peer", "vlan", "tagged", "mtu"):
        ports.add_column(col, overflow="fold")
    for sw in plan.switches:
        for p in sorted(sw.ports, key=lambda p: natural_key(p.port)):
            ports.add_row(sw.name, p.port, p.peer, str(p.access_vlan), "yes" if p.tagged else "no", str(p.mtu))
    return [t, ports]
