"""The reads one process answers together in a host's state read (:mod:`deploy.facts.snapshot`).

``File``/``Directory`` of many paths by one ``stat``, ``Sha1File`` by one ``sha1sum``, ``SystemdStatus`` and
``SystemdEnabled`` of single units by one ``systemctl show`` (one block per unit, in order), ``Sysctl`` of single
keys by one ``sysctl``. Each group's lines are still parsed by the fact classes themselves; the keys of the
values (and the ``Sha1File`` fact of a path) are kept, as every host of a fleet reads the same members.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfra.api import FactBase
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from deploy.facts.read_keys import read_key

MISSING_COMMAND = "##PYINFRA_NOCMD##"  # what pyinfra's requires_command guard prints (pyinfra.api.facts)
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_@+=:,./-]*$")
_SAFE_UNIT = re.compile(r"^[A-Za-z0-9_@:.\\-]+$")
_SAFE_SYSCTL = re.compile(r"^[A-Za-z0-9_.-]+$")
STAT_FACTS: tuple[type[FactBase], ...] = (File, Directory)
UNIT_FACTS: tuple[type[FactBase], ...] = (SystemdStatus, SystemdEnabled)
# What pyinfra's File and Directory facts have ``stat`` print on Linux and parse back (its LINUX_STAT_COMMAND).
STAT_FORMAT = "user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N"

Values = dict[str, Any]


@dataclass(frozen=True)
class GroupKind:
    """Reads one process answers together: which reads it takes (each is a member: a path, a key, a unit),
    the command for all members (plain words: each matched a safe pattern) and how its lines become values."""

    name: str
    member: Callable[[type[FactBase], dict[str, Any]], str | None]  # (fact, its arguments) -> member or None
    command: Callable[[str], str]  # the members, space-separated -> the shell command
    store: Callable[[Values, list[str], list[str]], None]  # (values, members, output lines)


def _path_of(facts: tuple[type[FactBase], ...]) -> Callable[[type[FactBase], dict[str, Any]], str | None]:
    def member(fact: type[FactBase], args: dict[str, Any]) -> str | None:
        path = args.get("path")
        return path if fact in facts and _SAFE_PATH.match(str(path or "")) else None

    return member


def _sysctl_key(fact: type[FactBase], args: dict[str, Any]) -> str | None:
    keys = args.get("keys")
    single = fact is Sysctl and isinstance(keys, list) and len(keys) == 1
    return keys[0] if single and _SAFE_SYSCTL.match(str(keys[0])) else None


def _unit(fact: type[FactBase], args: dict[str, Any]) -> str | None:
    services = args.get("services")
    plain = not args.get("user_mode") and args.get("machine") is None and args.get("user_name") is None
    single = fact in UNIT_FACTS and plain and isinstance(services, list) and len(services) == 1
    return services[0] if single and _SAFE_UNIT.match(str(services[0])) else None


@functools.lru_cache(maxsize=16384)
def _member_key(cls: type[FactBase], name: str, member: str, listed: bool) -> str:
    """:func:`read_key` of a group member's read (``{name: member}``, or ``{name: [member]}`` when ``listed``),
    kept: every host of a fleet reads the same paths, units and keys."""
    return read_key(cls, {name: [member] if listed else member})


@functools.lru_cache(maxsize=4096)
def _sha1_fact(path: str) -> Sha1File:
    """A ``Sha1File`` fact given ``path`` (its ``command()`` keeps the path for ``process()``), kept per path:
    every host of a fleet sums the same paths, and ``process()`` changes nothing in the fact."""
    fact = Sha1File()
    fact.command(path)
    return fact


def _sha1_of(path: str, line: str) -> str | None:
    """``Sha1File`` of ``path`` parsed from ``sha1sum``'s line."""
    return _sha1_fact(path).process([line])


def _store_stat(values: Values, members: list[str], lines: list[str]) -> None:
    found = dict(line.split("\t", 1) for line in lines if "\t" in line)
    for path in members:
        for cls in STAT_FACTS:
            values[_member_key(cls, "path", path, False)] = cls().process([found[path]]) if path in found else None


def _store_sha1(values: Values, members: list[str], lines: list[str]) -> None:
    sums = {}
    for line in lines:
        digest, _, path = line.partition("  ")
        if len(digest) == 40:
            sums[path] = line
    for path in members:
        values[_member_key(Sha1File, "path", path, False)] = _sha1_of(path, sums[path]) if path in sums else None


def _store_sysctl(values: Values, members: list[str], lines: list[str]) -> None:
    for key in members:
        mine = [line for line in lines if line.partition("=")[0].strip() == key]
        values[_member_key(Sysctl, "keys", key, True)] = Sysctl().process(mine) if mine else Sysctl().default()


def _store_units(values: Values, members: list[str], lines: list[str]) -> None:
    if lines == [MISSING_COMMAND]:
        blocks: list[list[str]] = [[] for _ in members]
    else:
        blocks = [[]]
        for line in lines:
            if line.strip():
                blocks[-1].append(line)
            elif blocks[-1]:
                blocks.append([])
        blocks = [b for b in blocks if b]
    if len(blocks) != len(members):
        return  # not one block per unit: read each live
    for unit, block in zip(members, blocks, strict=True):
        for cls in UNIT_FACTS:
            values[_member_key(cls, "services", unit, True)] = cls().process(block) if block else cls().default()


_STAT_LINE = "%n\t" + STAT_FORMAT  # each path's line starts with its name
_UNIT_PROPERTIES = "--property Id --property SubState --property UnitFileState"
GROUP_KINDS: tuple[GroupKind, ...] = (
    GroupKind(
        "stat",
        _path_of(STAT_FACTS),
        lambda words: f"stat -c {shlex.quote(_STAT_LINE)} {words} 2>/dev/null; true",
        _store_stat,
    ),
    GroupKind("sha1", _path_of((Sha1File,)), lambda words: f"sha1sum {words} 2>/dev/null; true", _store_sha1),
    GroupKind("sysctl", _sysctl_key, lambda words: f"sysctl {words} 2>/dev/null; true", _store_sysctl),
    GroupKind(
        "systemd",
        _unit,
        lambda words: (
            f"if command -v systemctl >/dev/null 2>&1; then systemctl show --all {_UNIT_PROPERTIES} {words}; "
            f"else echo '{MISSING_COMMAND}'; fi"
        ),
        _store_units,
    ),
)
GROUPS = {kind.name: kind for kind in GROUP_KINDS}
