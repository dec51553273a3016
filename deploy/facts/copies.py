"""A served fact value's own copy, quicker than :func:`copy.deepcopy` for the JSON-like values facts hold.

An operation may change what ``get_fact`` gave it, so a value served again is a deep copy. Fact values are
mostly dicts, lists and immutable values (strings, numbers, times): those are copied directly; anything else
(sets, objects) by :func:`copy.deepcopy`, so the result is always what ``deepcopy`` would give.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

_PLAIN = frozenset({str, int, float, bool, type(None), datetime.datetime, datetime.date})  # immutable


def deep_copy(value: Any) -> Any:
    """An independent copy of ``value``, as :func:`copy.deepcopy` makes it."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        if all(type(k) in _PLAIN and type(v) in _PLAIN for k, v in value.items()):
            return dict(value)
        return {k: deep_copy(v) for k, v in value.items()}  # keys are hashable: not changed in place
    if kind is list:
        return [deep_copy(v) for v in value]
    return copy.deepcopy(value)
