"""A read's key: ``module.Fact {"arg": value}`` (:func:`read_key`), and the same kept per fact class and plain
arguments (:func:`read_key_of`).

A host's reader names every fact read it serves by its key; a large fleet's survey does so tens of thousands of
times, with the same few hundred arguments on every host.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pyinfra.api import FactBase

from deploy.facts.call_arguments import call_arguments

_PLAIN = (str, int, float, bool, type(None))


def fact_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def fact_arguments(cls: type[FactBase], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The fact's arguments as pyinfra passes them to ``command()``: defaults filled in, globals dropped."""
    given = {k: v for k, v in kwargs.items() if not k.startswith("_")}
    if not given:
        return {}
    return call_arguments(cls, given)  # inspect.getcallargs, the signature inspected once per class


def read_key(cls: type[FactBase], kwargs: dict[str, Any]) -> str:
    """A stable key for one fact read: ``module.Fact {"arg": value}``."""
    args = json.dumps(fact_arguments(cls, kwargs), sort_keys=True, default=repr)
    return f"{fact_name(cls)} {args}"


def read_key_of(cls: type[FactBase], kwargs: dict[str, Any]) -> str:
    """:func:`read_key`, kept per class and plain arguments for the next read."""
    try:
        frozen = tuple((k, tuple(v) if type(v) is list else v) for k, v in kwargs.items())
        hash(frozen)
    except TypeError:
        return read_key(cls, kwargs)
    if not all(type(v) in _PLAIN or type(v) is tuple for _, v in frozen):
        return read_key(cls, kwargs)
    return _read_key(cls, frozen)


@functools.lru_cache(maxsize=8192)
def _read_key(cls: type[FactBase], frozen: tuple[tuple[str, Any], ...]) -> str:
    return read_key(cls, {k: list(v) if type(v) is tuple else v for k, v in frozen})
