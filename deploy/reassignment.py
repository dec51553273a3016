"""Namespace reassignment as a pure computation: which node ends up with which drive.

The handover itself is plan-driven (see :mod:`deploy.pipeline.handover`): once the spec says who holds what,
every step compares the live pod with the plan, so an interrupted move is finished by running again.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.assignment import DriveRef, node_drives
from deploy.errors import InputError
from deploy.nodes import expand_nodes
from deploy.spec import PodSpec
from deploy.wording import name_list


@dataclass(frozen=True)
class Reassignment:
    """The result of ``kvpod reassign``: new explicit namespaces and which drives change hands."""

    drive: DriveRef
    to_node: str
    old_holder: str | None  # the node that held ``drive`` before (None: it was a spare)
    released: DriveRef  # the receiving node's previous drive
    swap: bool
    assignments: dict[str, tuple[str, int]]  # node -> (enclosure, slot), written into the spec

    @property
    def moves(self) -> list[tuple[DriveRef, str | None, str | None]]:
        """(drive, from node, to node) for every drive that changes hands."""
        out = [(self.drive, self.old_holder, self.to_node)]
        out.append((self.released, self.to_node, self.old_holder if self.swap else None))
        return out


def parse_drive(text: str) -> DriveRef:
    enclosure, sep, slot = text.partition("/")
    if not sep or not slot.isdigit() or not enclosure:
        raise InputError(f"--drive {text!r}: expected ENCLOSURE/SLOT, e.g. data24/7")
    return DriveRef(enclosure, int(slot))


def plan_reassignment(spec: PodSpec, drive: DriveRef, to_node: str, swap: bool) -> Reassignment:
    """Who holds what after moving ``drive`` to ``to_node``; raises InputError when it cannot be done."""
    nodes = expand_nodes(spec.nodes)
    names = [n.name for n in nodes]
    if to_node not in names:
        raise InputError(f"--to {to_node!r}: no such node (valid: {name_list(names, at_most=24)})")
    drives = {(e.name, d.slot) for e in spec.enclosures for d in e.drive_list()}
    if (drive.enclosure, drive.slot) not in drives:
        raise InputError(f"--drive {drive}: the spec has no such drive")
    held = node_drives(spec, nodes)
    current = held[to_node]
    if current == drive:
        raise InputError(f"{to_node} already holds {drive} in the spec: nothing to move")
    old_holder = next((n for n, d in held.items() if d == drive), None)
    if old_holder is not None and not swap:
        raise InputError(
            f"{drive} is held by {old_holder}; a node holds exactly one drive: use --swap to give {old_holder} "
            f"{current} in exchange, or move {old_holder} to a spare drive first"
        )
    if old_holder is None and swap:
        raise InputError(f"{drive} is a spare (no node holds it): --swap needs a drive held by another node")
    assignments = {to_node: (drive.enclosure, drive.slot)}
    if old_holder is not None:
        assignments[old_holder] = (current.enclosure, current.slot)
    return Reassignment(drive, to_node, old_holder, current, swap, assignments)
