"""One rule for every string of the spec (no control characters), plain data, and how a typed string is made.

Pure; the types themselves are in :mod:`deploy.spec_types`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr

# --- one rule for every string: no control characters --------------------------------------------------

# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators: each can end a line in some
# program that reads what kvpod writes (systemd, bash, ssh_config, YAML, a terminal).
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NO_CONTROL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"


def control_problem(value: str) -> str | None:
    """Why ``value`` cannot be a spec string (it holds a control character), None when it can."""
    m = CONTROL_RE.search(value)
    if m is None:
        return None
    return f"control character U+{ord(m.group()):04X} at position {m.start()} (no spec value may hold one)"


def control_in(value: Any, where: str = "") -> str | None:
    """The first control character in a string, or in the keys and values of nested lists and mappings."""
    if isinstance(value, str):
        why = control_problem(value)
        return f"{where}: {why}" if why and where else why
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            why = control_in(item, f"{where}[{i}]")
            if why:
                return why
    if isinstance(value, dict):
        for key, item in value.items():
            label = f"{where}[{key!r}]"
            why = control_in(key, f"{label} (key)") if isinstance(key, str) else None
            why = why or control_in(item, label)
            if why:
                return why
    return None


def plain_data_problem(value: Any, where: str = "") -> str | None:
    """Why a nested value is not plain data (strings, numbers, booleans, null, lists, string-keyed mappings)."""
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, SecretStr):  # a secret is a string too; the message never shows it
        why = control_problem(value.get_secret_value())
        return f"{where or 'secret'}: {why}" if why else None
    if isinstance(value, list):
        return next((w for i, item in enumerate(value) if (w := plain_data_problem(item, f"{where}[{i}]"))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}[{key!r}]: a key must be a string, not {type(key).__name__}"
            why = plain_data_problem(item, f"{where}[{key!r}]")
            if why:
                return why
        return None
    return f"{where or 'value'}: {type(value).__name__} is not plain data (give a string, number, list or mapping)"


def _text(value: str) -> str:
    why = control_problem(value)
    if why:
        raise ValueError(why)
    return value


def typed_str(check: Callable[[str], str], pattern: str | None = None, **extra: Any) -> Any:
    """An annotated ``str``: control characters refused first, then ``check``; ``pattern`` for the schema."""
    schema = dict(extra)
    if pattern:
        schema["pattern"] = pattern
    return Annotated[str, AfterValidator(_text), AfterValidator(check), Field(json_schema_extra=schema or None)]


Text = Annotated[str, AfterValidator(_text), Field(json_schema_extra={"pattern": NO_CONTROL_PATTERN})]
