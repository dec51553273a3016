"""What a command may change, as data (:class:`Effect`), and whether that stales a read (:func:`stales`);
:class:`ReadInvalidation` keeps one host's served values true by it. Which command has which effect:
:mod:`deploy.facts.effects`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from deploy.facts.dependencies import ANY, Dependencies, Part, PathRead, depends_on
from deploy.facts.dependencies import under as _under


@dataclass(frozen=True)
class PathTouch:
    """A path a command changes; ``tree``: what is below it too; ``parents``: it may create its parents."""

    path: str
    tree: bool = False
    parents: bool = False
    pattern: bool = False  # ``path`` is a glob (``*`` within one name): the paths it matches and what is below them


@dataclass(frozen=True)
class Effect:
    """What one command may change on its host."""

    everything: bool = False
    parts: frozenset[Part] = frozenset()
    paths: tuple[PathTouch, ...] = ()
    unsettled: frozenset[Part] = frozenset()  # parts it may still change after it returns
    spares: tuple[str, ...] = ()  # with ``everything``: kinds of parts and trees of paths it leaves alone


EVERYTHING = Effect(everything=True)
NOTHING = Effect()


def _path_stales(touch: PathTouch, read: PathRead) -> bool:
    path, listing = read
    if touch.pattern:
        below = fnmatch.fnmatchcase(path, touch.path) or fnmatch.fnmatchcase(path, touch.path + "/*")
        return below or (listing and fnmatch.fnmatchcase(touch.path, path.rstrip("/") + "/*"))
    if path == touch.path:
        return True
    if touch.tree and _under(path, touch.path):
        return True
    if touch.parents and _under(touch.path, path):
        return True
    return listing and (_under(touch.path, path) or _under(path, touch.path))


def _part_stales(touched: Part, read: Part) -> bool:
    return touched == read or (touched[0] == read[0] and ANY in (touched[1], read[1]))


def _spared(effect: Effect, deps: Dependencies) -> bool:
    """Whether ``deps`` lie wholly in what an ``everything`` effect spares."""
    spared_parts = all(kind in effect.spares for kind, _ in deps.parts)
    spared_paths = all(any(_under(path, top) for top in effect.spares if top.startswith("/")) for path, _ in deps.paths)
    return bool(deps.parts or deps.paths) and spared_parts and spared_paths


def touches(effect: Effect, deps: Dependencies | None) -> bool:
    """Whether ``effect`` may change a value with dependencies ``deps`` (None: unknown, always)."""
    if deps is None:
        return True
    if effect.everything and not _spared(effect, deps):
        return True
    if any(_part_stales(t, r) for t in effect.parts for r in deps.parts):
        return True
    return any(_path_stales(t, r) for t in effect.paths for r in deps.paths)


def stales(effect: Effect, key: str) -> bool:
    """Whether a command with ``effect`` may change the value of the read ``key``."""
    return touches(effect, depends_on(key))


def _both(first: Effect, then: Effect) -> Effect:
    """What two commands run one after the other may change."""
    if first.everything and then.everything and first.spares != then.spares:
        return EVERYTHING
    spares = (first if first.everything else then).spares
    every = first.everything or then.everything
    paths, unsettled = first.paths + then.paths, first.unsettled | then.unsettled
    return Effect(every, first.parts | then.parts, paths, unsettled, spares)


class ReadInvalidation:
    """One host's served values kept true to the host: what each command may change goes stale.

    :meth:`ran` drops the values a command may change; :meth:`keep` says whether a value just read live may be
    served again (a known read no unsettled command touched).
    """

    def __init__(self) -> None:
        self.unsettled: set[Part] = set()

    def ran(self, values: dict[str, Any], effect: Effect) -> None:
        if effect.everything and not effect.spares:
            values.clear()
        else:
            for key in [k for k in values if stales(effect, k)]:
                del values[key]
        self.unsettled |= effect.unsettled

    def keep(self, key: str | None) -> bool:
        if key is None:
            return False
        deps = depends_on(key)
        return deps is not None and not any(_part_stales(u, r) for u in self.unsettled for r in deps.parts)
