"""Turn pydantic's validation errors into ``field.path: what is wrong (what would be valid)`` problems."""

from __future__ import annotations

import difflib
import re
import reprlib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from deploy.errors import Problem

# Tags pydantic puts into an error's location that are not keys of the spec: the discriminated unions'
# "[list]"/"[set]" (deploy.spec) and "[key]" for an invalid mapping key.
_UNION_TAGS = {"[list]", "[set]", "[key]"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INPUT = reprlib.Repr()
_INPUT.maxlevel, _INPUT.maxlist, _INPUT.maxdict, _INPUT.maxtuple, _INPUT.maxset = 3, 6, 6, 6, 6
_INPUT.maxstring, _INPUT.maxlong, _INPUT.maxother = 80, 40, 80


def field_path(loc: tuple, prefix: str = "") -> str:
    """``nodes[0].ssh.address`` from a location; a key that is not a plain name shows quoted: ``pod[' x']``."""
    parts: list[str] = [prefix] if prefix else []
    for item in loc:
        if item in _UNION_TAGS:
            continue
        if isinstance(item, str) and _PLAIN_KEY.fullmatch(item):
            parts.append(item)
            continue
        index = f"[{item}]" if isinstance(item, int) else f"[{item!r}]"
        parts[-1:] = [f"{parts[-1]}{index}"] if parts else [index]
    return ".".join(parts)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model that an annotation can hold (through Optional, list, Union, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, dict, typing.Union, types.UnionType) or origin is not None:
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def model_at(model: type[BaseModel], loc: tuple) -> list[type[BaseModel]]:
    """The candidate models whose field holds the key at ``loc`` (for listing valid keys)."""
    current = [model]
    for item in loc[:-1]:
        if isinstance(item, int) or (isinstance(item, str) and item.startswith("[")):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(str(item))
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        current = nxt or current
    return current


def _unknown_key_message(model: type[BaseModel] | None, loc: tuple) -> str:
    key = str(loc[-1])
    if model is None:
        return "unknown key"
    valid = sorted({name for m in model_at(model, loc) for name in m.model_fields})
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} ({hint}valid keys: {', '.join(valid)})"


def shown(value: Any) -> str:
    """A value from the spec as YAML spells it: ``null``, ``true``, ``'text'``, ``[1, 2]`` (cut short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _INPUT.repr(value)


def _model_named(name: str, model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model class ``name`` that pydantic expected at ``loc``."""
    candidates = model_at(model, (*loc, "")) if model else []
    found = [m for m in candidates if m.__name__ == name]
    if found:
        return found[0]
    pending = list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__name__ == name and cls.__module__.startswith("deploy."):
            return cls
        pending.extend(cls.__subclasses__())
    return None


def expected_mapping(cls: type[BaseModel] | None) -> str:
    """``a mapping with keys name (optional: ...)``: what a section of the spec is, in the spec's words."""
    if cls is None:
        return "a mapping"
    required = [n for n, f in cls.model_fields.items() if f.is_required()]
    optional = [n for n, f in cls.model_fields.items() if not f.is_required()]
    keys = f"keys {', '.join(required)}" if required else "keys"
    if optional:
        listed = ", ".join(optional[:6]) + (", ..." if len(optional) > 6 else "")
        keys = f"{keys} (optional: {listed})" if required else f"{keys} {listed}"
    return f"a mapping with {keys}"


def _described(model: type[BaseModel] | None, loc: tuple) -> str:
    """`` (what the field is)`` from the model's description of the field at ``loc``, when it says "no default"."""
    if model is None or not loc:
        return ""
    for m in model_at(model, loc):
        field = m.model_fields.get(str(loc[-1]))
        if field is not None and field.description and "no default" in field.description:
            return f": {field.description}"
    return ""


def _message(err: dict, model: type[BaseModel] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_key_message(model, err["loc"])
    if kind == "missing":
        return f"required but missing{_described(model, err['loc'])}"
    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        cls = _model_named(str(err.get("ctx", {}).get("class_name", "")), model, err["loc"])
        return f"expected {expected_mapping(cls)} (got {shown(err.get('input'))})"
    msg = err["msg"]
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            msg = msg[len(lead) :]
    if kind not in ("value_error", "assertion_error") and "input" in err and not isinstance(err["input"], dict):
        msg = f"{msg} (got {shown(err['input'])})"
    return msg


def problems_from_validation(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """One problem per pydantic error, de-duplicated, in a stable order."""
    seen: dict[str, Problem] = {}
    for err in exc.errors():
        problem = Problem(field_path(err["loc"], prefix) or prefix or "spec", _message(err, model))
        seen.setdefault(str(problem), problem)
    return list(seen.values())
