"""Parsers of a state read (pure): its sections, the NVMe controllers and paths, nvmet's configfs, DCB,
discovery logs and the configuration files kvpod writes (env files, sysctl.d, modules-load.d)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deploy.dcb import parse_dcb as dcb_lines

# -- sections ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One command's answer in a state read."""

    name: str
    stdout: str
    rc: int
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """A one-line account of a failed command: its exit status and the last line of its stderr (else stdout)."""
        lines = [line for line in (self.stderr.strip() or self.stdout.strip()).splitlines() if line.strip()]
        return f"exit {self.rc}" + (f": {lines[-1].strip()}" if lines else "")


def split_sections(text: str, boundary: str) -> tuple[dict[str, Section], bool]:
    """A state read's output -> ({name: section}, whether the script reached its end) (pure)."""
    sections: dict[str, Section] = {}
    done = False
    name: str | None = None
    stdout = ""
    for part in text.split("\n" + boundary + " ")[1:]:
        head, _, body = part.partition("\n")
        kind, _, arg = head.partition(" ")
        if kind == "begin":
            name, stdout = arg, body
        elif kind == "end" and name is not None:
            rc = int(arg) if arg.strip().lstrip("-").isdigit() else -1
            sections[name] = Section(name, stdout, rc, body)
            name = None
        elif kind == "done":
            done = True
    return sections, done


def render_sections(sections: Iterable[Section], boundary: str, done: bool = True) -> str:
    """The output a script gives for these sections (the inverse of :func:`split_sections`)."""
    out = [f"\n{boundary} begin {s.name}\n{s.stdout}\n{boundary} end {s.rc}\n{s.stderr}" for s in sections]
    return "".join(out) + (f"\n{boundary} done\n" if done else "")


def new_boundary() -> str:
    return "@kvpod-" + secrets.token_hex(8)


@dataclass(frozen=True)
class Controller:
    """One NVMe controller as /sys/class/nvme shows it."""

    name: str
    transport: str
    subsysnqn: str
    traddr: str
    trsvcid: str
    state: str

    @property
    def fabric(self) -> bool:
        """Reached over a fabric (not a local PCIe drive)."""
        return self.transport not in ("pcie", "")


@dataclass
class NvmetSubsystem:
    allow_any_host: str | None = None
    allowed_hosts: set[str] = field(default_factory=set)
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # nsid -> (device_path, enable)


@dataclass
class NvmetPort:
    attrs: dict[str, str] = field(default_factory=dict)  # addr_trtype, addr_traddr, addr_trsvcid, addr_adrfam
    subsystems: set[str] = field(default_factory=set)


@dataclass
class NvmetState:
    """The kernel NVMe target's configuration (configfs); ``present`` is False without nvmet."""

    present: bool
    subsystems: dict[str, NvmetSubsystem] = field(default_factory=dict)
    ports: dict[str, NvmetPort] = field(default_factory=dict)


def parse_address(text: str) -> dict[str, str]:
    """``traddr=10.0.0.1,trsvcid=4420,src_addr=...`` -> a dict."""
    out = {}
    for part in text.strip().split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_controllers(text: str) -> list[Controller]:
    """Tab-separated ``name transport subsysnqn address state`` lines -> controllers."""
    out = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 5:
            continue
        name, transport, nqn, address, state = (f.strip() for f in fields)
        addr = parse_address(address)
        out.append(Controller(name, transport, nqn, addr.get("traddr", ""), addr.get("trsvcid", ""), state))
    return out


@dataclass(frozen=True)
class NvmePaths:
    """Multipath policies by subsystem NQN and controller attributes by controller name, as sysfs shows them
    (an attribute the kernel does not have is absent)."""

    iopolicy: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)


def parse_nvme_paths(text: str) -> NvmePaths:
    """``iopolicy NQN POLICY`` and ``attr CTRL NAME VALUE`` lines (tab-separated) -> :class:`NvmePaths`."""
    out = NvmePaths()
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("\t")]
        if fields[0] == "iopolicy" and len(fields) == 3:
            out.iopolicy[fields[1]] = fields[2]
        elif fields[0] == "attr" and len(fields) == 4:
            out.attributes.setdefault(fields[1], {})[fields[2]] = fields[3]
    return out


@dataclass(frozen=True)
class DcbState:
    """A NIC's DCB as ``dcb -j`` shows it: DSCP -> priority entries, PFC per priority, ECN per direction."""

    dscp_prio: dict[int, int] = field(default_factory=dict)
    pfc: dict[int, bool] = field(default_factory=dict)
    ecn: dict[str, str] = field(default_factory=dict)  # roce_np / roce_rp -> "1" / "0" (mlx5 sysfs)


def parse_dcb(text: str) -> DcbState:
    """The ``dcb`` section (``app {json}``, ``pfc {json}``, ``ecn KIND VALUE`` lines, as
    :data:`deploy.dcb.READ_SCRIPT` prints them) -> :class:`DcbState`; empty when ``dcb`` printed no JSON."""
    state = dcb_lines(text.splitlines())
    if state is None:
        return DcbState()
    return DcbState(dscp_prio=state["dscp_prio"], pfc=state["pfc"], ecn=state["ecn"])


def parse_words(text: str) -> dict[str, str]:
    """``name value`` lines -> a dict (the connector check's interpreter and versions)."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name and value:
            out[name] = value.strip()
    return out


def parse_key_values(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``systemctl show``, the suite's scripts) -> a dict; the first ``=`` splits.

    A key given more than once (``systemctl show`` prints one ``EnvironmentFiles=`` line per file) keeps all
    its values, one per line.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            key, value = key.strip(), value.strip()
            out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


def parse_env_file(text: str) -> dict[str, str]:
    """A systemd EnvironmentFile / shell env file -> variables (comments, ``export`` and quotes handled)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\(["\\\\`$])', r"\1", value[1:-1])
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def parse_sysctl_file(text: str) -> dict[str, str]:
    """A sysctl.d file -> ``{key: value}`` (keys with ``/`` normalised to ``.``)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.lstrip("-").partition("=")
        if sep:
            out[key.strip().replace("/", ".")] = value.strip()
    return out


def parse_modules_load(text: str) -> dict[str, set[str]]:
    """``<file>\\t<line>`` pairs from modules-load.d -> ``{module (with _): {files listing it}}``."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        name, sep, entry = line.partition("\t")
        entry = entry.split("#", 1)[0].strip()
        if sep and entry and not entry.startswith(";"):
            out.setdefault(entry.replace("-", "_"), set()).add(name)
    return out


def parse_discovery(text: str) -> list[dict[str, Any]]:
    """``nvme discover -o json`` -> the records of NVMe subsystems (discovery entries and referrals left out)."""
    if not text.strip():
        return []
    records = json.loads(text).get("records") or []
    return [
        {key: str(value).strip() for key, value in r.items()}
        for r in records
        if str(r.get("subtype", "")).strip() == "nvme subsystem"
    ]


def parse_nvmet(text: str) -> NvmetState:
    """The suite's dump of /sys/kernel/config/nvmet -> :class:`NvmetState`.

    Tab-separated lines name the links (``subsystem NQN allowed_host HOSTNQN``, ``port ID subsystem NQN``);
    after an ``attributes`` line come ``grep -HZ`` lines, ``<path under the root>\\0<value>``, of the
    attribute files (``subsystems/NQN/attr_allow_any_host``, ``subsystems/NQN/namespaces/NSID/device_path``
    and ``enable``, ``ports/ID/addr_*``).
    """
    if text.strip() == "missing":
        return NvmetState(present=False)
    state = NvmetState(present=True)
    links, _, attributes = text.partition("attributes\n")
    namespaces: dict[tuple[str, str], dict[str, str]] = {}
    for line in links.splitlines():
        fields = line.split("\t")
        if fields[0] == "subsystem" and len(fields) == 4:
            sub = state.subsystems.setdefault(fields[1], NvmetSubsystem())
            if fields[2] == "attr_allow_any_host":
                sub.allow_any_host = fields[3].strip()
            elif fields[2] == "allowed_host":
                sub.allowed_hosts.add(fields[3].strip())
        elif fields[0] == "namespace" and len(fields) == 5:
            sub = state.subsystems.setdefault(fields[1], NvmetSubsystem())
            sub.namespaces[fields[2]] = (fields[3].strip(), fields[4].strip())
        elif fields[0] == "port" and len(fields) == 4:
            port = state.ports.setdefault(fields[1], NvmetPort())
            if fields[2] == "subsystem":
                port.subsystems.add(fields[3].strip())
            else:
                port.attrs[fields[2]] = fields[3].strip()
    for line in attributes.splitlines():
        path, sep, value = line.partition("\0")
        parts = path.split("/")
        if not sep:
            continue
        if parts[0] == "subsystems" and len(parts) == 3 and parts[2] == "attr_allow_any_host":
            state.subsystems.setdefault(parts[1], NvmetSubsystem()).allow_any_host = value.strip()
        elif parts[0] == "subsystems" and len(parts) == 5 and parts[2] == "namespaces":
            state.subsystems.setdefault(parts[1], NvmetSubsystem())
            namespaces.setdefault((parts[1], parts[3]), {})[parts[4]] = value.strip()
        elif parts[0] == "ports" and len(parts) == 3:
            state.ports.setdefault(parts[1], NvmetPort()).attrs[parts[2]] = value.strip()
    for (nqn, nsid), attrs in namespaces.items():
        state.subsystems[nqn].namespaces[nsid] = (attrs.get("device_path", ""), attrs.get("enable", ""))
    return state


def parse_grep_values(text: str) -> dict[str, str]:
    """``grep -HZ '' FILE...`` of one-line files -> ``{file: value}``."""
    out = {}
    for line in text.splitlines():
        path, sep, value = line.partition("\0")
        if sep:
            out[path] = value.strip()
    return out
