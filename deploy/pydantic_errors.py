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
# "[list]"/"[set]" and "[<kind>]" (deploy.spec, deploy.spec_kinds) and "[key]" for an invalid mapping key.
_UNION_TAG = re.compile(r"\[[a-z0-9-]+\]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INPUT = reprlib.Repr()
_INPUT.maxlevel, _INPUT.maxlist, _INPUT.maxdict, _INPUT.maxtuple, _INPUT.maxset = 3, 6, 6, 6, 6
_INPUT.maxstring, _INPUT.maxlong, _INPUT.maxother = 80, 40, 80


def field_path(loc: tuple, prefix: str = "") -> str:
    """``nodes[0].ssh.address`` from a location; a key that is not a plain name shows quoted: ``pod[' x']``."""
    parts: list[str] = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, str) and _UNION_TAG.fullmatch(item):
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
        if isinstance(item, str) and _UNION_TAG.fullmatch(item):
            current = [m for m in current if _kind(m) == item[1:-1]] or current
            continue
        if isinstance(item, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(str(item))
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        current = nxt or current
    return current


def _kind(model: type[BaseModel]) -> str | None:
    """The kind a switch or enclosure model stands for (its one-value ``kind`` Literal), else None."""
    field = model.model_fields.get("kind")
    values = typing.get_args(field.annotation) if field is not None else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _common_base(models: list[type[BaseModel]]) -> type[BaseModel] | None:
    """The nearest model every one of ``models`` derives from (the shared part of the kinds of a union)."""
    if not models:
        return None
    return next((c for c in models[0].__mro__ if all(issubclass(m, c) for m in models) and c is not BaseModel), None)


def _kind_message(err: dict, model: type[BaseModel] | None) -> tuple[tuple, str]:
    """A switch or enclosure whose ``kind`` names no driver: the location of ``kind`` and the valid kinds."""
    loc, value = err["loc"], err.get("input")
    kinds = [k for m in (model_at(model, (*loc, "")) if model else []) if (k := _kind(m))]
    if not isinstance(value, dict):
        return loc, f"expected {expected_mapping(_common_base(model_at(model, (*loc, ''))) if model else None)} " + (
            f"(got {shown(value)})"
        )
    if "kind" not in value:
        return (*loc, "kind"), "required but missing"
    names = [repr(k) for k in sorted(kinds)]
    valid = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return (*loc, "kind"), f"Input should be {valid} (got {shown(value['kind'])})"


def _sibling_kinds(models: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """The other kinds of the switch or enclosure models in ``models`` (none when they are not kinds)."""
    if len(models) != 1 or not _kind(models[0]):
        return []
    base = next(c for c in models[0].__mro__[1:] if issubclass(c, BaseModel) and not _kind(c))
    pending, found = list(base.__subclasses__()), []
    while pending:
        cls = pending.pop()
        found += [cls] if _kind(cls) and cls not in models else []
        pending.extend(cls.__subclasses__())
    return found


def _owner_kinds(model: type[BaseModel], loc: tuple) -> list[str]:
    """The other kinds that take the key at ``loc``, at the same place in their model: found from the nearest
    switch or enclosure on the way (``enclosures[0]`` for ``enclosures[0].ioms[0].ports[0].interface``)."""
    key = str(loc[-1])
    for depth in range(len(loc) - 1, -1, -1):
        siblings = _sibling_kinds(model_at(model, (*loc[:depth], "")))
        if siblings:
            rest = loc[depth:]
            return sorted(str(_kind(k)) for k in siblings if any(key in m.model_fields for m in model_at(k, rest)))
    return []


def _unknown_key_message(model: type[BaseModel] | None, loc: tuple) -> str:
    key = str(loc[-1])
    if model is None:
        return "unknown key"
    candidates = model_at(model, loc)
    valid = sorted({name for m in candidates for name in m.model_fields})
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    owners = _owner_kinds(model, loc)
    if owners and not close:
        hint = f"a field of kind {' and '.join(owners)} only; "
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
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc, message = _kind_message(err, model)
        else:
            loc, message = err["loc"], _message(err, model)
        problem = Problem(field_path(loc, prefix) or prefix or "spec", message)
        seen.setdefault(str(problem), problem)
    return list(seen.values())
