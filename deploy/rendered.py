"""A template's text kept per template and values: the alike hosts of a fleet render the same files alike.

:func:`render` gives exactly what :func:`deploy.encode.render` gives. Values made only of strings, numbers, bools,
None, lists, tuples and dicts (in their order) are frozen into a key that tells each type and each float's sign
apart; a render with any other value is not kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from deploy import encode

_SCALARS = (str, int, bool, type(None))


def frozen(value: Any) -> Hashable | None:
    """A key equal only for values that render alike (None: a value of another kind)."""
    kind = type(value)
    if kind in _SCALARS:
        return kind, value
    if kind is float:
        return kind, repr(value)  # -0.0 == 0.0, but they print differently
    if kind is list or kind is tuple:
        items = tuple(frozen(v) for v in value)
        return None if None in items else (kind, items)
    if kind is dict:
        pairs = tuple((frozen(k), frozen(v)) for k, v in value.items())
        return None if any(k is None or v is None for k, v in pairs) else (kind, pairs)
    return None


_KEPT: dict[tuple[str, Hashable], str] = {}
KEEP_AT_MOST = 4096  # texts; then they are forgotten and kept anew


def render(template_file: str, /, **variables: Any) -> str:
    """:func:`deploy.encode.render` of ``template_file`` with ``variables``, kept when they are plain values (a
    render that fails is not kept: it fails again)."""
    frozen_variables = frozen(variables)
    if frozen_variables is None:
        return encode.render(template_file, **variables)
    key = (str(template_file), frozen_variables)
    text = _KEPT.get(key)
    if text is None:
        text = encode.render(template_file, **variables)
        if len(_KEPT) >= KEEP_AT_MOST:
            _KEPT.clear()
        _KEPT[key] = text
    return text
