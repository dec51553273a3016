"""One round trip per host: every fact a deploy compares against, read by one remote script.

A :class:`Read` names a fact class and its arguments (``File(path=...)``, ``SystemdStatus(services=[...])``,
kvpod's own facts alike). :class:`HostSnapshot` runs the commands of many reads as one shell script, each in
its own subshell with stderr discarded, and splits the output back into sections, each parsed by the fact's
own ``process()``. The result maps :func:`read_key` of each read to the value pyinfra's ``get_fact`` would
have returned, so a deploy served from it compares against exactly what it would have read one by one.

Reads of the same kind are grouped where one process answers them all with the very lines the fact would parse
(:mod:`deploy.facts.snapshot_groups`). The script of a list of reads is kept: alike hosts read alike.

A section is left out (and so read live later) when its command failed or its output could not be parsed:
pyinfra's own handling of those cases (failing the host, logging) then happens as before.

:class:`NamespaceReads` is the one read whose arguments are only known on the host: the block device of a
namespace, found by subsystem NQN in sysfs, with ``BlockSignature`` and ``Ext4Info`` of each device found.
"""

from __future__ import annotations

import functools
import importlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfra.api import FactBase, StringCommand

from deploy.facts.read_keys import fact_arguments, fact_name, read_key, read_key_of
from deploy.facts.snapshot_groups import GROUP_KINDS, GROUPS, MISSING_COMMAND
from deploy.facts.snapshot_groups import STAT_FORMAT as STAT_FORMAT  # where the state read's users find it
from deploy.facts.storage import BlockSignature, Ext4Info

SECTION = "@@kvpod-fact"
GROUP = "@@kvpod-group"
END = "@@kvpod-rc"
DEVICE_PLACEHOLDER = "KVPODDEVICE"
DEVICE_FACTS: tuple[type[FactBase], ...] = (BlockSignature, Ext4Info)


@dataclass(frozen=True)
class Read:
    """One fact read: ``Read(File, path="/etc/x")``."""

    fact: type[FactBase]
    kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, fact: type[FactBase], **kwargs: Any) -> Read:
        return cls(fact, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))

    def arguments(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.kwargs}

    @property
    def key(self) -> str:
        return read_key(self.fact, self.arguments())


@dataclass(frozen=True)
class NamespaceReads:
    """``BlockSignature`` and ``Ext4Info`` of the block device(s) of namespace ``nsid`` of ``subnqn``."""

    subnqn: str
    nsid: int | None = None


def _kept(build: Callable[[Any], Any], most: int = 8192) -> Callable[[Any], Any]:
    """``build`` kept per argument (a read, or a tuple of reads), the ``most`` recent: every host of a fleet reads
    alike. An argument that cannot be hashed is built each time; ``.built`` is ``build`` itself."""
    kept = functools.lru_cache(maxsize=most)(build)

    @functools.wraps(build)
    def get(arg: Any) -> Any:
        try:
            return kept(arg)
        except TypeError:  # unhashable (or refused by ``build``, which then refuses it again)
            return build(arg)

    get.built = build  # type: ignore[attr-defined]
    return get


def _command_text(cls: type[FactBase], arguments: dict[str, Any]) -> str:
    fact = cls()
    command = fact.command(**arguments) if callable(fact.command) else fact.command
    text = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
    requires = fact.requires_command(**arguments) if callable(fact.requires_command) else fact.requires_command
    if requires:
        req = requires.get_raw_value() if isinstance(requires, StringCommand) else str(requires)
        text = f"if command -v {req} >/dev/null 2>&1; then ( {text} ); else echo '{MISSING_COMMAND}'; fi"
    return text


def _section(header: str, command: str) -> str:
    return (
        f"printf '%s\\n' {shlex.quote(header)}\n( {command}\n) 2>/dev/null </dev/null\nprintf '\\n{END} %s\\n' \"$?\""
    )


@_kept
def _namespace_section(read: NamespaceReads) -> str:
    """Finds the namespace's visible block devices in sysfs, then reads each device fact of each."""
    nsid = "" if read.nsid is None else str(int(read.nsid))
    per_device = []
    for cls in DEVICE_FACTS:
        command = _command_text(cls, {"device": DEVICE_PLACEHOLDER}).replace(DEVICE_PLACEHOLDER, '"$kvpod_dev"')
        per_device.append(
            f'printf \'{SECTION} {fact_name(cls)} {{"device": "%s"}}\\n\' "$kvpod_dev"\n'
            f"( {command}\n) 2>/dev/null </dev/null\nprintf '\\n{END} %s\\n' \"$?\""
        )
    body = "\n".join(per_device)
    return (
        f"kvpod_nqn={shlex.quote(read.subnqn)}; kvpod_nsid={shlex.quote(nsid)}\n"
        "for kvpod_s in /sys/class/nvme-subsystem/nvme-subsys*; do\n"
        ' [ "$(cat "$kvpod_s/subsysnqn" 2>/dev/null)" = "$kvpod_nqn" ] || continue\n'
        ' for kvpod_n in "$kvpod_s"/nvme*n* "$kvpod_s"/nvme*/nvme*n*; do\n'
        "  kvpod_b=${kvpod_n##*/}\n"
        '  case "$kvpod_b" in nvme*c*n*|"nvme*n*") continue ;; esac\n'
        '  [ -z "$kvpod_nsid" ] || [ "$(cat "$kvpod_n/nsid" 2>/dev/null)" = "$kvpod_nsid" ] || continue\n'
        "  kvpod_dev=/dev/$kvpod_b\n"
        '  case " $kvpod_seen " in *" $kvpod_dev "*) continue ;; esac\n'
        '  kvpod_seen="$kvpod_seen $kvpod_dev"\n'
        f"{body}\n"
        " done\n"
        "done"
    )


@_kept
def _grouping(read: Read) -> tuple[str, str] | None:
    """``(group, member)`` when one grouped process can answer ``read`` exactly, else None."""
    args = fact_arguments(read.fact, read.arguments())
    for kind in GROUP_KINDS:
        member = kind.member(read.fact, args)
        if member is not None:
            return kind.name, member
    return None


@_kept
def _read_section(read: Read) -> str:
    """The section of a read that is not grouped."""
    args = fact_arguments(read.fact, read.arguments())
    header = f"{SECTION} {fact_name(read.fact)} {json.dumps(args, sort_keys=True)}"
    return _section(header, _command_text(read.fact, fact_arguments(read.fact, read.arguments())))


def _group_section(group: str, members: list[str]) -> str:
    header = shlex.quote(f"{GROUP} {group} {json.dumps(members)}")
    command = GROUPS[group].command(" ".join(members))
    return f"printf '%s\\n' {header}\n( {command}\n) 2>/dev/null </dev/null\nprintf '\\n{END} %s\\n' \"$?\""


def snapshot_script(reads: list[Read | NamespaceReads]) -> str:
    """The remote script: one section per read or group, each after a header line, closed by its exit code
    (kept per list of reads, and each read's part of it per read: alike hosts read alike)."""
    return _script(tuple(reads))


@functools.partial(_kept, most=128)  # whole scripts (about 11 kB for a node)
def _script(reads: tuple[Read | NamespaceReads, ...]) -> str:
    parts = ["kvpod_seen="]
    groups: dict[str, list[str]] = {}
    for read in reads:
        grouping = _grouping(read) if isinstance(read, Read) else None
        if grouping is not None:
            members = groups.setdefault(grouping[0], [])
            if grouping[1] not in members:
                members.append(grouping[1])
    parts += [_group_section(group, members) for group, members in groups.items()]
    for read in reads:
        if isinstance(read, NamespaceReads):
            parts.append(_namespace_section(read))
        elif _grouping(read) is None:
            parts.append(_read_section(read))
    parts.append("true")
    return "\n".join(parts)


FACT_PACKAGES = ("pyinfra.facts.", "deploy.facts.", "deploy.switches.")


@functools.lru_cache(maxsize=1024)
def fact_class(name: str) -> type[FactBase] | None:
    """The fact class a section header names (only pyinfra's and kvpod's own fact modules), else None."""
    module, _, attr = name.rpartition(".")
    if not module.startswith(FACT_PACKAGES):
        return None
    try:
        cls = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    return cls if isinstance(cls, type) and issubclass(cls, FactBase) else None


def parse_snapshot(output: list[str]) -> dict[str, Any]:
    """``{read_key: value}`` for every section that ran and parsed; others are left out."""
    values: dict[str, Any] = {}
    current: tuple[type[FactBase], dict[str, Any]] | None = None
    group: tuple[str, list[str]] | None = None
    lines: list[str] = []
    for line in output:
        if line.startswith(GROUP + " "):
            name, _, members = line[len(GROUP) + 1 :].partition(" ")
            try:
                group, current = (name, json.loads(members)), None
            except ValueError:
                group = None
            lines = []
        elif line.startswith(SECTION + " "):
            group = None
            name, _, args = line[len(SECTION) + 1 :].partition(" ")
            cls = fact_class(name)
            try:
                current = (cls, json.loads(args)) if cls is not None else None
            except ValueError:
                current = None
            lines = []
        elif line.startswith(END + " "):
            if lines and lines[-1] == "":
                lines.pop()  # the newline printed before the end marker
            if group is not None and group[0] in GROUPS and line[len(END) + 1 :].strip() == "0":
                GROUPS[group[0]].store(values, group[1], lines)
            group = None
            if current is not None:
                _store(values, current[0], current[1], lines, line[len(END) + 1 :].strip())
            current = None
        elif current is not None or group is not None:
            lines.append(line)
    return values


def _store(values: dict[str, Any], cls: type[FactBase], args: dict[str, Any], lines: list[str], rc: str) -> None:
    if rc != "0":
        return  # read live later, where pyinfra handles the failure as it always does
    fact = cls()
    if not lines or lines == [MISSING_COMMAND]:
        values[read_key_of(cls, args)] = fact.default()
        return
    try:
        if callable(fact.command):
            fact.command(**fact_arguments(cls, args))  # some facts keep their arguments for process()
        values[read_key_of(cls, args)] = fact.process(lines)
    except Exception:  # a parse problem: left to the live read, which reports it
        return


class SnapshotReads(tuple):
    """The reads :class:`HostSnapshot` takes, printed as their count where pyinfra prints a fact's arguments (its
    log lines; each read is in the script)."""

    def __repr__(self) -> str:
        return f"<{len(self)} reads>"

    __str__ = __repr__


class HostSnapshot(FactBase[dict]):
    """
    The values of many fact reads, read in one command (see the module's docstring).

    .. code:: python

        {'deploy.facts.kernel.LoadedModules {}': {"nvme_rdma": "loaded"},
         'pyinfra.facts.files.File {"path": "/etc/kvpod/lmcache.env"}': {"mode": 644, ...}}
    """

    default = dict

    def command(self, reads: tuple) -> str:
        return snapshot_script(list(reads))

    def process(self, output: list[str]) -> dict:
        return parse_snapshot(output)
