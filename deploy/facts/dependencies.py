"""What a fact read depends on: the parts of a host a command may change to make its value stale.

A read (:func:`deploy.facts.snapshot.read_key`) depends on paths (a file, or what is below a directory) and on
parts of the host: its modules, network links, RDMA links, DCB settings, sysctl keys, systemd units (their
running state, ``unit``, and their enabled state, ``unit-file``), users,
packages, NVMe subsystems, block devices, mounts. A fact not listed here (:func:`depends_on` gives None) depends
on everything. :mod:`deploy.facts.effects` says what each command changes.
"""

from __future__ import annotations

import functools
import json
import posixpath
from dataclasses import dataclass
from typing import Any

Part = tuple[str, str]  # (kind, name): ("unit", "x.service"), ("net", ""), ...; name "*": every part of the kind
ANY = "*"

# where a path's reads are: (path, listing): listing reads depend on what is below the path too
PathRead = tuple[str, bool]

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
NVMET_ROOT = "/sys/kernel/config/nvmet"


@dataclass(frozen=True)
class Dependencies:
    """What a read's value depends on."""

    parts: frozenset[Part] = frozenset()
    paths: tuple[PathRead, ...] = ()


_PATH_FACTS = {
    f"pyinfra.facts.files.{name}"
    for name in ("File", "Directory", "Link", "Sha1File", "Md5File", "Sha256File", "FileContents")
}
_CONSTANT_FACTS = {f"pyinfra.facts.server.{name}" for name in ("TmpDir", "Os", "Arch")}


def parts(*parts: Part) -> frozenset[Part]:
    """A set of parts: ``parts(("net", ""), ("unit", "x.service"))``."""
    return frozenset(parts)


def _units(args: dict[str, Any], kind: str = "unit") -> Dependencies | None:
    """``SystemdStatus`` (the units' running state, ``unit``) or ``SystemdEnabled`` (``unit-file``) of units."""
    if args.get("user_mode") or args.get("machine") is not None or args.get("user_name") is not None:
        return None
    services = args.get("services")
    if isinstance(services, str):
        services = [services]
    names = [ANY] if services is None else [str(s) for s in services]
    return Dependencies(frozenset((kind, n) for n in names))


def _sysctl(args: dict[str, Any]) -> Dependencies:
    keys = args.get("keys")
    names = [ANY] if not isinstance(keys, list) else [str(k) for k in keys]
    return Dependencies(frozenset(("sysctl", n) for n in names))


def _which(args: dict[str, Any]) -> Dependencies | None:
    """``which COMMAND``: the file of that name in each directory of the PATH (and what packages install)."""
    command = args.get("command")
    if not isinstance(command, str) or not command or "/" in command or command in (".", ".."):
        return None
    return Dependencies(parts(("package", "")), tuple((f"{d}/{command}", False) for d in PATH_DIRS))


def clean_path(value: Any) -> str | None:
    """An absolute path, normalised; None for anything else."""
    return posixpath.normpath(value) if isinstance(value, str) and value.startswith("/") else None


@functools.lru_cache(maxsize=16384)
def depends_on(key: str) -> Dependencies | None:
    """What the read ``key`` depends on; None: not known (it depends on everything). Kept per key: every command a
    host runs asks it of every value the host's reader holds."""
    name, _, raw = key.partition(" ")
    try:
        args = json.loads(raw) if raw else {}
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    if name in _PATH_FACTS:
        path = clean_path(args.get("path"))
        return Dependencies(paths=((path, False),)) if path else None
    if name in _CONSTANT_FACTS:
        return Dependencies()
    device = clean_path(args.get("device")) or ""
    table: dict[str, Dependencies | None] = {
        "pyinfra.facts.systemd.SystemdStatus": _units(args),
        "pyinfra.facts.systemd.SystemdEnabled": _units(args, "unit-file"),
        "pyinfra.facts.server.Sysctl": _sysctl(args),
        "pyinfra.facts.server.Which": _which(args),
        "pyinfra.facts.server.Users": Dependencies(parts(("user", ""))),
        "pyinfra.facts.server.Groups": Dependencies(parts(("user", ""))),
        "pyinfra.facts.server.Home": Dependencies(parts(("user", ""))),
        "pyinfra.facts.server.Mounts": Dependencies(parts(("mount", ""))),
        "pyinfra.facts.deb.DebPackages": Dependencies(parts(("package", ""))),
        "deploy.facts.kernel.LoadedModules": Dependencies(parts(("module", ""))),
        "deploy.facts.kernel.RdmaLinks": Dependencies(parts(("rdma", ""), ("net", ""))),
        "deploy.facts.network.IpLinks": Dependencies(parts(("net", ""))),
        "deploy.facts.network.IpRoutes": Dependencies(parts(("net", ""))),
        "deploy.facts.network.NetplanFiles": Dependencies(paths=(("/etc/netplan", True),)),
        "deploy.facts.network.DcbState": Dependencies(
            parts(("dcb", ""), ("net", "")), ((f"/sys/class/net/{args.get('interface')}", True),)
        ),
        "deploy.facts.nvme.NvmeSubsystems": Dependencies(
            parts(("nvme", "")), (("/sys/class/nvme-subsystem", True), ("/sys/class/nvme", True))
        ),
        "deploy.facts.nvme.NvmeHostIdentity": Dependencies(paths=(("/etc/nvme", True),)),
        "deploy.facts.nvme.NvmeCliVersion": Dependencies(parts(("package", ""))),
        "deploy.facts.storage.BlockSignature": Dependencies(parts(("block", device), ("nvme", ""))),
        "deploy.facts.storage.Ext4Info": Dependencies(parts(("block", device), ("nvme", ""))),
        "deploy.facts.storage.MountedAt": Dependencies(parts(("mount", ""))),
        "deploy.facts.users.PasswdEntry": Dependencies(parts(("user", ""))),
        "deploy.facts.python.VenvPackages": (
            Dependencies(paths=((venv, True),)) if (venv := clean_path(args.get("venv"))) else None
        ),
        "deploy.facts.nvmet.NvmetConfig": Dependencies(parts(("module", "")), ((NVMET_ROOT, True),)),
    }
    return table.get(name)


def cacheable(key: str) -> bool:
    """Whether a value read live may be kept and served until a command stales it (its dependencies are known)."""
    return depends_on(key) is not None


def under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or below it."""
    return path == top or path.startswith(top.rstrip("/") + "/")
