"""Every command-line value checked in one place, before any host is contacted.

Each parser returns the typed value or raises :class:`InputError` naming the option and what would be valid
(the command line prints ``error: ...`` and exits 1). They read no spec and reach no host: the spec-dependent
ones (``--limit``, ``--wipe``, ``--drive``/``--to``) take the plan, the paths look at this machine's filesystem
only. Commands call them first thing, so a mistake never costs a lock, an SSH connection or a run directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.bench import parse_size
from deploy.errors import InputError
from deploy.wording import name_list, natural_sorted

if TYPE_CHECKING:
    from deploy.plan import Plan

_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def size(option: str, text: str) -> int:
    """A size in bytes (``64M``, ``1G``, ``1GiB``); the message names ``option``."""
    try:
        return parse_size(text)
    except InputError as exc:
        raise InputError(str(exc).replace("--size", option, 1)) from None


def duration(option: str, text: str, *, at_most: int = 24 * 3600) -> int:
    """Whole seconds from ``30``, ``30s``, ``5m`` or ``1h``: at least 1, at most ``at_most``."""
    m = _DURATION.match(str(text))
    seconds = int(m.group(1)) * _SECONDS[(m.group(2) or "").lower()] if m else 0
    if not m or not 1 <= seconds <= at_most:
        raise InputError(
            f"{option} {text!r}: expected a duration from 1 second to {at_most // 3600} h, like 30, 30s, 5m or 1h"
        )
    return seconds


def output_file(option: str, path: Path | None) -> Path | None:
    """A file the run will write: its directory exists and is writable, and it is not itself a directory."""
    if path is None:
        return None
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory (give a file name, e.g. {path / 'report.json'})")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: directory {parent} does not exist (create it, or give another path)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: directory {parent} is not writable (give a path you can write)")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: the file exists and is not writable (give a path you can write)")
    return path


def limit(plan: Plan, names: Iterable[str] | None) -> list[str] | None:
    """``--limit``: nodes of the plan (None: every node)."""
    if not names:
        return None
    names = list(dict.fromkeys(names))
    known = {n.name for n in plan.nodes}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"--limit: unknown node {', '.join(unknown)} (valid: {name_list(known, at_most=24)})")
    return names


def drives_of(plan: Plan) -> list[str]:
    """Every drive of the plan as ``ENCLOSURE/SLOT``, in numeric order."""
    return natural_sorted(f"{t.name}/{s.drive}" for t in plan.targets for s in t.subsystems)


def wipe(plan: Plan, values: Iterable[str] | None) -> set[str]:
    """``--wipe``: drives of the plan, as ``ENCLOSURE/SLOT``."""
    drives = drives_of(plan)
    bad = [w for w in values or () if w not in drives]
    if bad:
        example = drives[0] if drives else "data24/1"
        raise InputError(f"--wipe: unknown drive {', '.join(bad)} (valid: ENCLOSURE/SLOT, e.g. {example})")
    return set(values or ())


def node(plan: Plan, option: str, name: str) -> str:
    """An option naming one node of the plan (``reassign --to``)."""
    known = [n.name for n in plan.nodes]
    if name not in known:
        raise InputError(f"{option} {name!r}: no such node (valid: {name_list(known, at_most=24)})")
    return name


def drive(plan: Plan, option: str, text: str) -> str:
    """An option naming one drive of the plan as ``ENCLOSURE/SLOT`` (``reassign --drive``)."""
    drives = drives_of(plan)
    enclosure, sep, slot = text.partition("/")
    if not sep or not enclosure or not slot.isdigit():
        raise InputError(f"{option} {text!r}: expected ENCLOSURE/SLOT, e.g. {drives[0] if drives else 'data24/7'}")
    if f"{enclosure}/{int(slot)}" not in drives:
        raise InputError(f"{option} {text}: the spec has no such drive (valid: {name_list(drives, at_most=8)})")
    return f"{enclosure}/{int(slot)}"
