"""How messages speak of many things: counted nouns, names in numeric order, long lists cut short."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"(\d+)")
LIST_AT_MOST = 6  # names a message lists before it says "and N more"


def plural(n: int, noun: str) -> str:
    """``1 node``, ``24 nodes``, ``0 switches``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def natural_key(name: str) -> list[int | str]:
    """Sort key putting node2 before node10 and swp2 before swp10."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, in numeric order (node2 before node10)."""
    return sorted(set(names), key=natural_key)


def name_list(names: Iterable[str], at_most: int = LIST_AT_MOST) -> str:
    """``gpu01, gpu02, gpu03`` in numeric order; beyond ``at_most`` names: ``gpu01, ..., gpu06 and 18 more``."""
    ordered = natural_sorted(names)
    if len(ordered) <= at_most:
        return ", ".join(ordered)
    return f"{', '.join(ordered[:at_most])} and {len(ordered) - at_most} more"
