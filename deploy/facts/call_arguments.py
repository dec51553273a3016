"""A fact's ``command()`` arguments as :func:`inspect.getcallargs` gives them, its signature inspected once per class.

A converged fleet's state read names each of its reads by these arguments (:func:`deploy.facts.snapshot.read_key`),
tens of thousands of times for a large pod; inspecting the signature anew each time was most of that cost.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from pyinfra.api import FactBase


@functools.cache
def _signature(cls: type[FactBase]) -> inspect.Signature | None:
    command = cls().command
    return inspect.signature(command) if inspect.ismethod(command) else None


_PLAIN = (str, int, float, bool, type(None))


def call_arguments(cls: type[FactBase], given: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of ``cls().command`` bound to ``given`` or its default; TypeError for a wrong argument.

    Arguments that are plain values or lists of them are bound once per class and value (a list given comes
    back as a list of its own); others are bound each time.
    """
    lists = tuple(k for k, v in given.items() if type(v) is list)
    frozen = tuple((k, tuple(v) if k in lists else v) for k, v in given.items())
    plain = all(type(v) in _PLAIN or (k in lists and all(type(x) in _PLAIN for x in v)) for k, v in frozen)
    if not plain:
        return _bound(cls, given)
    kept = _bound_plain(cls, frozen, lists)
    return {k: list(v) if k in lists else dict(v) if type(v) is dict else v for k, v in kept.items()}


@functools.lru_cache(maxsize=4096)
def _bound_plain(cls: type[FactBase], frozen: tuple[tuple[str, Any], ...], lists: tuple[str, ...]) -> dict:
    bound = _bound(cls, {k: list(v) if k in lists else v for k, v in frozen})
    return {k: tuple(v) if k in lists else v for k, v in bound.items()}


def _bound(cls: type[FactBase], given: dict[str, Any]) -> dict[str, Any]:
    signature = _signature(cls)
    if signature is None:
        merged = inspect.getcallargs(cls().command, **given)
        merged.pop("self", None)
        return merged
    bound = signature.bind(**given)
    bound.apply_defaults()
    return dict(bound.arguments)
