"""One round trip per host: every fact a deploy compares against, read by one remote script.

A :class:`Read` names a fact class and its arguments (``File(path=...)``, ``SystemdStatus(services=[...])``,
kvpod's own facts alike). :class:`HostSnapshot` runs the commands of many reads as one shell script, each in
its own subshell with stderr discarded, and splits the output back into sections, each parsed by the fact's
own ``process()``. The result maps :func:`read_key` of each read to the value pyinfra's ``get_fact`` would
have returned, so a deploy served from it compares against exactly what it would have read one by one.

Reads of the same kind are grouped where one process answers them all with the very lines the fact
would parse: ``File``/``Directory`` of many paths by one ``stat``, ``Sha1File`` by one ``sha1sum``, and
``SystemdStatus``/``SystemdEnabled`` of single units by one ``systemctl show`` (one block per unit, in
order), ``Sysctl`` of single keys by one ``sysctl``. Each group's lines are still parsed by the fact classes themselves.

A section is left out (and so read live later) when its command failed or its output could not be parsed:
pyinfra's own handling of those cases (failing the host, logging) then happens as before.

:class:`NamespaceReads` is the one read whose arguments are only known on the host: the block device of a
namespace, found by subsystem NQN in sysfs, with ``BlockSignature`` and ``Ext4Info`` of each device found.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfra.api import FactBase, StringCommand
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from deploy.facts.call_arguments import call_arguments
from deploy.facts.storage import BlockSignature, Ext4Info

SECTION = "@@kvpod-fact"
GROUP = "@@kvpod-group"
END = "@@kvpod-rc"
MISSING_COMMAND = "##PYINFRA_NOCMD##"  # what pyinfra's requires_command guard prints (pyinfra.api.facts)
DEVICE_PLACEHOLDER = "KVPODDEVICE"
DEVICE_FACTS: tuple[type[FactBase], ...] = (BlockSignature, Ext4Info)


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


def _store_stat(values: Values, members: list[str], lines: list[str]) -> None:
    found = dict(line.split("\t", 1) for line in lines if "\t" in line)
    for path in members:
        for cls in STAT_FACTS:
            values[read_key(cls, {"path": path})] = cls().process([found[path]]) if path in found else None


def _store_sha1(values: Values, members: list[str], lines: list[str]) -> None:
    sums = {}
    for line in lines:
        digest, _, path = line.partition("  ")
        if len(digest) == 40:
            sums[path] = line
    for path in members:
        fact = Sha1File()
        fact.command(path)
        values[read_key(Sha1File, {"path": path})] = fact.process([sums[path]]) if path in sums else None


def _store_sysctl(values: Values, members: list[str], lines: list[str]) -> None:
    for key in members:
        mine = [line for line in lines if line.partition("=")[0].strip() == key]
        values[read_key(Sysctl, {"keys": [key]})] = Sysctl().process(mine) if mine else Sysctl().default()


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
            values[read_key(cls, {"services": [unit]})] = cls().process(block) if block else cls().default()


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


def _grouping(read: Read) -> tuple[str, str] | None:
    """``(group, member)`` when one grouped process can answer ``read`` exactly, else None."""
    args = fact_arguments(read.fact, read.arguments())
    for kind in GROUP_KINDS:
        member = kind.member(read.fact, args)
        if member is not None:
            return kind.name, member
    return None


def _group_section(group: str, members: list[str]) -> str:
    header = shlex.quote(f"{GROUP} {group} {json.dumps(members)}")
    command = GROUPS[group].command(" ".join(members))
    return f"printf '%s\\n' {header}\n( {command}\n) 2>/dev/null </dev/null\nprintf '\\n{END} %s\\n' \"$?\""


def snapshot_script(reads: list[Read | NamespaceReads]) -> str:
    """The remote script: one section per read or group, each after a header line, closed by its exit code."""
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
            continue
        if _grouping(read) is not None:
            continue
        args = read.arguments()
        header = f"{SECTION} {fact_name(read.fact)} {json.dumps(fact_arguments(read.fact, args), sort_keys=True)}"
        parts.append(_section(header, _command_text(read.fact, fact_arguments(read.fact, args))))
    parts.append("true")
    return "\n".join(parts)


FACT_PACKAGES = ("pyinfra.facts.", "deploy.facts.", "deploy.switches.")


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
        values[read_key(cls, args)] = fact.default()
        return
    try:
        if callable(fact.command):
            fact.command(**fact_arguments(cls, args))  # some facts keep their arguments for process()
        values[read_key(cls, args)] = fact.process(lines)
    except Exception:  # a parse problem: left to the live read, which reports it
        return


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
