"""A read's key (:func:`deploy.facts.snapshot.read_key`) kept per fact class and plain arguments.

A host's reader names every fact read it serves by its key; a large fleet's survey does so tens of thousands of
times, with the same few hundred arguments on every host.
"""

from __future__ import annotations

import functools
from typing import Any

from pyinfra.api import FactBase

from deploy.facts.snapshot import read_key

_PLAIN = (str, int, float, bool, type(None))


def read_key_of(cls: type[FactBase], kwargs: dict[str, Any]) -> str:
    """:func:`deploy.facts.snapshot.read_key`, kept per class and plain arguments for the next read."""
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
