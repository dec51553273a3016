"""The pod map (``kvpod map``): a Graphviz picture of the plan, optionally coloured by a run's results.

Left to right: each switch with its ports, the nodes cabled to them (name, fabric address, VLAN), and each
enclosure with its IOM portals and drives, every drive naming the node it is assigned to (or marked
spare). :func:`build_map` is pure (plan in, :class:`graphviz.Digraph` out, whose ``source`` is the DOT
text); :func:`render_map` is the only function that runs Graphviz's ``dot``.

Colours come from a :class:`MapStatus`, read by :func:`status_from_report` from a ``kvpod up --report``
JSON file or a ``kvpod verify --junit`` XML file.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import graphviz

from deploy.errors import InputError, KvpodError
from deploy.host_status import HostStatus
from deploy.plan import NodePlan, Plan, SwitchPlan, TargetPlan
from deploy.verify_runner import POD_ROW, Cell, parse_junit, report_rows
from deploy.wording import plural

STATUSES = ("ok", "changed", "failed", "unreachable")
FILL = {"ok": "#c8e6c9", "changed": "#fff59d", "failed": "#ef9a9a", "unreachable": "#b0bec5"}
NONE_FILL = "#ffffff"
SPARE_FILL = "#eeeeee"
PORTAL_FILL = "#ede7f6"
HEADER_FILL = {"switch": "#bbdefb", "enclosure": "#d1c4e9"}
FONT = "Helvetica,Arial,sans-serif"
CABLE, PORTAL_CABLE, ASSIGNMENT = "#546e7a", "#5e35b1", "#1e88e5"
FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}

# `kvpod up` host statuses (deploy.engine.HostStatus) -> map statuses; "manual" (a Data24) has none
_RUN_STATUS = {
    HostStatus.UNCHANGED: "ok",
    HostStatus.CHANGED: "changed",
    HostStatus.WOULD_CHANGE: "changed",
    HostStatus.FAILED: "failed",
    HostStatus.UNREACHABLE: "unreachable",
}
# the verify areas that check a node's drive: its namespace, its mount, discovery at its enclosure
DRIVE_AREAS = ("namespace", "kv_mount", "enclosure")


@dataclass(frozen=True)
class MapStatus:
    """Last known status per host and per drive (``(enclosure, slot)``); absent means not in the report."""

    source: str  # what the statuses come from, for the legend
    hosts: dict[str, str] = field(default_factory=dict)
    drives: dict[tuple[str, int], str] = field(default_factory=dict)
    unknown_hosts: tuple[str, ...] = ()  # hosts the report names that the plan does not have


# -- reading reports ---------------------------------------------------------------------------------------


def _held_drives(plan: Plan) -> list[tuple[str, int, str]]:
    return [(t.name, s.drive, s.node) for t in plan.targets for s in t.subsystems if s.node]


def _plan_hosts(plan: Plan) -> set[str]:
    return {n.name for n in plan.nodes} | {t.name for t in plan.targets} | {s.name for s in plan.switches}


def status_from_run_report(data: dict, plan: Plan, source: str = "kvpod up report") -> MapStatus:
    """A ``kvpod up --report`` JSON (:meth:`deploy.engine.RunReport.as_json`): host status; a drive takes
    the status of the node it is assigned to (the node's run connects and mounts it)."""
    hosts_in = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts_in, dict):
        raise InputError(f"{source}: no 'hosts' mapping (not a kvpod up --report file?)")
    hosts: dict[str, str] = {}
    for name, result in hosts_in.items():
        status = _RUN_STATUS.get(result.get("status", "")) if isinstance(result, dict) else None
        if status:
            hosts[name] = status
    drives = {(enc, slot): hosts[node] for enc, slot, node in _held_drives(plan) if node in hosts}
    if data.get("dry"):
        source += " (dry run: changed = would change)"
    unknown = tuple(sorted(set(hosts_in) - _plan_hosts(plan)))
    return MapStatus(source, hosts, drives, unknown)


def _cell_status(cell: Cell) -> str | None:
    return None if cell.status == "none" else cell.status


def status_from_junit(xml_text: str, plan: Plan, source: str = "kvpod verify") -> MapStatus:
    """A ``kvpod verify --junit`` XML: each host's checks; a drive takes its node's namespace, mount and
    discovery checks."""
    try:
        report = parse_junit(xml_text, report_rows(plan))
    except ET.ParseError as exc:
        raise InputError(f"{source}: not a JUnit XML file ({exc})") from None
    if not report.checks:
        raise InputError(f"{source}: no test cases (not a kvpod verify JUnit file?)")
    hosts = {}
    for row in report.rows:
        status = _cell_status(report.row_cells(row))
        if status and row in _plan_hosts(plan):
            hosts[row] = status
    drives = {}
    for enc, slot, node in _held_drives(plan):
        cells = [report.cell(node, area) for area in DRIVE_AREAS]
        total = Cell(*(sum(getattr(c, k) for c in cells) for k in ("passed", "failed", "unreachable", "skipped")))
        status = _cell_status(total)
        if status:
            drives[(enc, slot)] = status
    checked = {c.host for c in report.checks} - {POD_ROW, "?"}
    return MapStatus(source, hosts, drives, tuple(sorted(checked - _plan_hosts(plan))))


def status_from_report(text: str, plan: Plan, source: str) -> MapStatus:
    """Either report format, told apart by its first character (``{`` JSON, ``<`` XML)."""
    head = text.lstrip()[:1]
    if head == "{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: invalid JSON ({exc})") from None
        return status_from_run_report(data, plan, f"kvpod up report {source}")
    if head == "<":
        return status_from_junit(text, plan, f"kvpod verify {source}")
    raise InputError(f"{source}: neither a kvpod up --report JSON file nor a kvpod verify --junit XML file")


# -- the graph ---------------------------------------------------------------------------------------------


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _node_id(name: str) -> str:
    return f"node_{name}"


def _fill(status: str | None) -> str:
    return FILL[status] if status else NONE_FILL


def _mark(status: str | None) -> str:
    """The status as words next to its colour, for anything but ok (a green fill says that)."""
    return f' <font point-size="10"><b>{status}</b></font>' if status and status != "ok" else ""


def _small(text: str) -> str:
    return f'<font point-size="10">{_e(text)}</font>'


def _table(rows: list[str], **attrs: str) -> str:
    """An HTML-like Graphviz label: a table with ``rows`` (``<tr>`` elements)."""
    base = {"border": "1", "cellborder": "0", "cellspacing": "0", "cellpadding": "3"} | attrs
    opening = "<table " + " ".join(f'{k}="{v}"' for k, v in base.items()) + ">"
    return f"<{opening}{''.join(rows)}</table>>"


def _vlan_ranges(ids: list[int]) -> str:
    """``[101, 102, 103, 110]`` -> ``101-103, 110``."""
    runs: list[list[int]] = []
    for vid in sorted(ids):
        if runs and runs[-1][1] == vid - 1:
            runs[-1][1] = vid
        else:
            runs.append([vid, vid])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _port_order(plan: Plan) -> dict[str, int]:
    """Peers in the order they stand on the right: per enclosure, its portals then the nodes it serves.

    Listing a switch's ports in this order keeps its cables from crossing each other.
    """
    order: dict[str, int] = {}
    for t in plan.targets:
        for p in t.portals:
            order[f"enclosure:{t.name}/{p.iom}/{p.port}"] = len(order)
        for n in plan.nodes:
            if n.namespace.enclosure == t.name:
                order[f"node:{n.name}"] = len(order)
    return order


def _switch_label(
    sw: SwitchPlan, order: dict[str, int], per_node: bool, status: str | None
) -> tuple[str, dict[str, str]]:
    """The switch as a table: name, kind, VLANs, one row per port; returns the label and port -> cell port."""
    ports = sorted(sw.ports, key=lambda p: (order.get(p.peer, len(order)), _natural(p.port)))
    port_ids = {p.port: f"p{i}" for i, p in enumerate(ports)}
    facts = [sw.kind, f"MTU {sw.mtu}"] + (["RoCE QoS"] if sw.roce_qos else []) + (["routed"] if sw.routed else [])
    storage = sw.vlans[0]
    vlan_line = f"VLAN {storage.id} storage"
    if storage.svi_address:
        vlan_line += f" · SVI {storage.svi_address}/{storage.prefix_length}"
    head_fill = _fill(status) if status else HEADER_FILL["switch"]
    rows = [
        f'<tr><td bgcolor="{head_fill}"><b>{_e(sw.name)}</b>{_mark(status)}</td></tr>',
        f"<tr><td>{_small(' · '.join(facts))}</td></tr>",
        f"<tr><td>{_small(vlan_line)}</td></tr>",
    ]
    node_vlans = [v.id for v in sw.vlans[1:]]
    if per_node and node_vlans:
        rows.append(f"<tr><td>{_small(f'VLAN {_vlan_ranges(node_vlans)} per node')}</td></tr>")
    for p in ports:
        text = p.port + (f"  · VLAN {p.access_vlan}" if per_node else "")
        rows.append(f'<tr><td port="{port_ids[p.port]}" align="left">{_e(text)}</td></tr>')
    return _table(rows), port_ids


def _node_label(n: NodePlan, per_node: bool, status: str | None) -> str:
    """One row: name, fabric address, VLAN (and the gateway with per-node VLANs), its vLLM engines' ports."""
    fab = n.fabric
    cells = [  # minimum widths (points) keep the boxes of a column alike
        ("48", f"<b>{_e(n.name)}</b>{_mark(status)}"),
        ("100", _e(f"{fab.address}/{fab.prefix_length}")),
        ("60", _e(f"VLAN {fab.vlan}")),
    ]
    if per_node and fab.gateway:
        cells.append(("70", _small(f"via {fab.gateway}")))
    ports = ", ".join(f":{e.port}" for e in n.engines)
    cells.append(("70", _small(f"{plural(len(n.engines), 'engine')} {ports}")))
    row = "".join(f'<td width="{width}" align="left">{text}</td>' for width, text in cells)
    return _table([f"<tr>{row}</tr>"], bgcolor=_fill(status))


def _enclosure_label(t: TargetPlan, status: MapStatus | None) -> tuple[str, dict[str, str], dict[int, str]]:
    """The enclosure as a table: name, one row per IOM portal, one row per drive with its node or spare."""
    portal_ids = {p.name: f"iom{i}" for i, p in enumerate(t.portals)}
    drive_ids = {s.drive: f"d{s.drive}" for s in t.subsystems}
    host_status = status.hosts.get(t.name) if status else None
    about = t.kind + (f" · {t.management_address}" if t.management_address else "")
    head_fill = _fill(host_status) if host_status else HEADER_FILL["enclosure"]
    rows = [
        f'<tr><td colspan="3" bgcolor="{head_fill}"><b>{_e(t.name)}</b>  {_small(about)}{_mark(host_status)}</td></tr>'
    ]
    for p in t.portals:
        text = f"{p.iom} {p.port}  {p.address}/{p.prefix_length}  VLAN {p.vlan}"
        rows.append(
            f'<tr><td port="{portal_ids[p.name]}" align="left" colspan="3" bgcolor="{PORTAL_FILL}">{_e(text)}</td></tr>'
        )
    for s in t.subsystems:
        drive_status = status.drives.get((t.name, s.drive)) if status else None
        if s.node is None:
            fill, holder = SPARE_FILL, "<i>spare</i>"
        else:
            fill, holder = _fill(drive_status), _e(s.node) + _mark(drive_status)
        rows.append(
            f'<tr><td port="{drive_ids[s.drive]}" align="right" bgcolor="{fill}">{s.drive:02d}</td>'
            f'<td align="left" bgcolor="{fill}">{_small(f"{s.capacity_gb:g} GB")}</td>'
            f'<td align="left" bgcolor="{fill}">{holder}</td></tr>'
        )
    return _table(rows), portal_ids, drive_ids


def _legend(status: MapStatus | None) -> str:
    rows = ['<tr><td colspan="2" align="left"><b>legend</b></td></tr>']
    for colour, glyph, meaning in (
        (CABLE, "──", "cable: switch port to node"),
        (PORTAL_CABLE, "━━", "cable: switch port to enclosure portal"),
        (ASSIGNMENT, "╌╌", "drive assigned to node"),
    ):
        rows.append(f'<tr><td><font color="{colour}">{glyph}</font></td><td align="left">{meaning}</td></tr>')
    rows.append(f'<tr><td bgcolor="{SPARE_FILL}"> </td><td align="left">spare drive (admits no host)</td></tr>')
    if status:
        rows.append(f'<tr><td colspan="2" align="left">status from {_e(status.source)}</td></tr>')
        for s in STATUSES:
            rows.append(f'<tr><td bgcolor="{FILL[s]}"> </td><td align="left">{s}</td></tr>')
        rows.append(f'<tr><td bgcolor="{NONE_FILL}"> </td><td align="left">not in the report</td></tr>')
    return _table(rows, border="0", cellborder="1")


def build_map(plan: Plan, status: MapStatus | None = None) -> graphviz.Digraph:
    """The pod map of ``plan`` (pure): switches -> nodes -> enclosures (portals and drives)."""
    fab = plan.fabric
    per_node = fab.vlan_mode == "per-node"
    drives = sum(len(t.subsystems) for t in plan.targets)
    vlans = f"storage VLAN {fab.storage_vlan} {fab.subnet}" + (", one VLAN per node" if per_node else "")
    paths = "every node connects through each portal of its enclosure" if fab.multipath else "first portal only"
    title = (
        f"pod {plan.pod}: {plural(len(plan.nodes), 'node')}, {plural(drives, 'drive')}\n"
        f"fabric {fab.transport}, MTU {fab.mtu}, {vlans}; {paths}"
    )
    host = (lambda name: status.hosts.get(name)) if status else (lambda name: None)

    g = graphviz.Digraph(name=plan.pod, comment=f"kvpod map of pod {plan.pod}")
    g.attr(rankdir="LR", label=title, labelloc="t", fontname=FONT, fontsize="16")
    g.attr(nodesep="0.08", ranksep="1.2", newrank="true")
    g.attr("node", shape="plain", fontname=FONT, fontsize="12")
    g.attr("edge", arrowhead="none", color=CABLE)

    order = _port_order(plan)
    switch_ports: dict[str, tuple[str, dict[str, str]]] = {}
    for i, sw in enumerate(plan.switches):
        label, port_ids = _switch_label(sw, order, per_node, host(sw.name))
        switch_ports[sw.name] = (f"switch_{i}", port_ids)
        g.node(f"switch_{i}", label=label)

    # one cluster of nodes per enclosure they draw drives from: cables to the next enclosure pass between
    groups = [(t.name, [n for n in plan.nodes if n.namespace.enclosure == t.name]) for t in plan.targets]
    for i, (enclosure, members) in enumerate(grp for grp in groups if grp[1]):
        title = f"nodes ({len(members)})" if len(plan.targets) == 1 else f"nodes on {enclosure} ({len(members)})"
        with g.subgraph(name=f"cluster_nodes_{i}") as c:
            c.attr(label=title, style="rounded", color="#9e9e9e", fontname=FONT)
            for n in members:
                c.node(_node_id(n.name), label=_node_label(n, per_node, host(n.name)))

    enclosure_ports: dict[str, tuple[str, dict[str, str], dict[int, str]]] = {}
    for i, t in enumerate(plan.targets):
        label, portal_ids, drive_ids = _enclosure_label(t, status)
        enclosure_ports[t.name] = (f"enclosure_{i}", portal_ids, drive_ids)
        g.node(f"enclosure_{i}", label=label)

    for n in plan.nodes:  # cables: switch port -> node
        if n.fabric.switch in switch_ports:
            sid, port_ids = switch_ports[n.fabric.switch]
            port = port_ids.get(n.fabric.switch_port or "")
            g.edge(f"{sid}:{port}:e" if port else sid, f"{_node_id(n.name)}:w")
    for t in plan.targets:  # cables: switch port -> enclosure portal
        eid, portal_ids, _ = enclosure_ports[t.name]
        for p in t.portals:
            if p.switch in switch_ports:
                sid, port_ids = switch_ports[p.switch]
                port = port_ids.get(p.switch_port or "")
                tail = f"{sid}:{port}:e" if port else sid
                g.edge(tail, f"{eid}:{portal_ids[p.name]}:w", color=PORTAL_CABLE, penwidth="1.6")
    for n in plan.nodes:  # assignments: node -> its drive
        eid, _, drive_ids = enclosure_ports[n.namespace.enclosure]
        g.edge(f"{_node_id(n.name)}:e", f"{eid}:{drive_ids[n.namespace.drive]}:w", style="dashed", color=ASSIGNMENT)

    with g.subgraph(name="legend_rank") as c:  # the legend in the enclosures' column, below the last one
        c.attr(rank="same")
        c.node("legend", label=_legend(status))
        if plan.targets:
            c.edge(f"enclosure_{len(plan.targets) - 1}", "legend", style="invis")
    return g


# -- rendering (the edge) ----------------------------------------------------------------------------------


class DotMissing(KvpodError):
    """Graphviz's ``dot`` is not installed."""


def output_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown picture format {path.suffix or '(none)'!r} (use .svg, .png, or .dot)")
    return fmt


def render_map(graph: graphviz.Digraph, path: Path) -> None:
    """Write the map as SVG, PNG (by ``dot``) or DOT source, chosen by ``path``'s suffix."""
    fmt = output_format(path)
    if fmt == "dot":
        path.write_text(graph.source)
        return
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DotMissing(
            "Graphviz's dot is not installed (Debian/Ubuntu: apt-get install graphviz); a .dot output needs no Graphviz"
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        raise KvpodError(f"dot failed: {detail or exc}") from None
    path.write_bytes(data)
