"""Host-side lossless RoCE with iproute2's ``dcb`` (pure): read the NIC's DCB, and the commands that set it.

What ``dcb`` sets (dcb-app(8), dcb-pfc(8), iproute2 6.1 as Debian 12 ships it):

- ``dcb app replace dev NIC dscp-prio D:P``: DSCP ``D`` maps to priority ``P`` (an IEEE APP entry with the DSCP
  selector). On mlx5 NICs the first DSCP entry also switches the port's trust state to DSCP; ``dcb apptrust``
  (iproute2 6.2+, few drivers) and the NIC's own tool (``mlnx_qos --trust dscp``) are the other ways.
- ``dcb pfc set dev NIC prio-pfc 0:off ... P:on ...``: PFC on the lossless priority only.
- ECN is not a DCB setting: ``dcb`` cannot set it. mlx5 exposes RoCE congestion control per priority in sysfs
  (``/sys/class/net/NIC/ecn/roce_np/enable/P`` for marking as notification point, ``roce_rp`` as reaction
  point); kvpod writes those when the NIC has them and reports ECN as not readable otherwise.

The state read prints ``app <json>``, ``pfc <json>`` and ``ecn <kind> <value>`` lines (:data:`READ_SCRIPT`).
"""

from __future__ import annotations

import json
from typing import Any

ECN_KINDS = ("roce_np", "roce_rp")
PRIORITIES = range(8)

# $1: the NIC, $2: the lossless priority. Prints nothing and fails when dcb or the NIC's DCB is missing.
READ_SCRIPT = (
    'printf "app "; dcb -j app show dev "$1" dscp-prio || exit 1; echo; '
    'printf "pfc "; dcb -j pfc show dev "$1" prio-pfc || exit 1; echo; '
    "for k in roce_np roce_rp; do f=/sys/class/net/$1/ecn/$k/enable/$2; "
    '[ -r "$f" ] && printf "ecn %s %s\\n" "$k" "$(cat "$f")"; done; true'
)


def _pairs(value: Any) -> list[tuple[int, int]]:
    """``[[26, 3]]`` or ``[{"dscp": 26, "prio": 3}]`` -> ``[(26, 3)]``."""
    out = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, list | tuple) and len(item) == 2:
            out.append((int(item[0]), int(item[1])))
        elif isinstance(item, dict) and "prio" in item:
            key = next((item[k] for k in ("dscp", "protocol", "key") if k in item), None)
            if key is not None:
                out.append((int(key), int(item["prio"])))
    return out


def parse_dcb(lines: list[str]) -> dict | None:
    """The read script's lines -> ``{"dscp_prio": {dscp: prio}, "pfc": {prio: on}, "ecn": {kind: "1"}}``; None
    when the NIC's DCB could not be read (no ``dcb``, no DCB support, no such NIC)."""
    out: dict = {"dscp_prio": {}, "pfc": {}, "ecn": {}}
    seen = set()
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if word in ("app", "pfc"):
            try:
                data = json.loads(rest)
            except ValueError:
                return None
            seen.add(word)
            if word == "app" and isinstance(data, dict):
                out["dscp_prio"].update(dict(_pairs(data.get("dscp_prio"))))
            elif word == "pfc" and isinstance(data, dict):
                prio_pfc = data.get("prio_pfc", {})
                items = prio_pfc.items() if isinstance(prio_pfc, dict) else _pairs(prio_pfc)
                out["pfc"].update({int(p): bool(on) for p, on in items})
        elif word == "ecn":
            kind, _, value = rest.partition(" ")
            out["ecn"][kind] = value.strip()
    return out if seen == {"app", "pfc"} else None


def pfc_map(priority: int) -> list[str]:
    """``prio-pfc`` words: on for ``priority``, off for every other one."""
    return [f"{p}:{'on' if p == priority else 'off'}" for p in PRIORITIES]


def wanted_commands(nic: str, priority: int, dscp: list[int], ecn: bool, state: dict) -> list[list[str]]:
    """The argv of each change that brings ``state`` (:func:`parse_dcb`) to the planned settings ([] when none)."""
    out = []
    stale = [d for d in dscp if state["dscp_prio"].get(d) != priority]
    if stale:
        out.append(["dcb", "app", "replace", "dev", nic, "dscp-prio", *(f"{d}:{priority}" for d in stale)])
    if {p for p, on in state["pfc"].items() if on} != {priority}:
        out.append(["dcb", "pfc", "set", "dev", nic, "prio-pfc", *pfc_map(priority)])
    want = "1" if ecn else "0"
    for kind in ECN_KINDS:
        if kind in state["ecn"] and state["ecn"][kind] != want:
            out.append(["ecn", kind, want])  # a sysfs write, see ecn_path
    return out


def ecn_path(nic: str, kind: str, priority: int) -> str:
    return f"/sys/class/net/{nic}/ecn/{kind}/enable/{priority}"
