"""Paths in the spec: absolute and normalised, of plain components, outside the system's own directories.
Each check returns the value or raises ValueError saying what would be valid. Pure."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from pydantic import ValidatorFunctionWrapHandler

from deploy.secrets import SecretFile
from deploy.spec_names import check_pattern

# --- paths --------------------------------------------------------------------------------------------------

# One component of a path kvpod writes on a host: no blanks, quotes or shell metacharacters. ':' for
# /dev/disk/by-path names, '@', '+', ',' and '=' for the names udev and vendors use.
PATH_PART_RE = re.compile(r"[A-Za-z0-9._+,:=@-]+")
PATH_MAX = 4095
# Directories no kvpod path may be inside: the operating system's own trees, and what kvpod itself keeps on
# hosts (its lock and state under /var/lib/kvpod, the wheelhouse it pushes under /var/cache/kvpod).
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var/cache",
    "/var/lib/kvpod",
    "/var/lock",
    "/var/log",
    "/var/run",
    "/var/tmp",
)
# Directories that hold others: a mount or an environment there would hide or mix with what they hold.
CONTAINER_DIRS = ("/home", "/media", "/mnt", "/opt", "/srv", "/var", "/var/lib", "/var/opt", "/var/spool", "/var/mail")


def inside(path: str, tree: str) -> bool:
    """``path`` is ``tree`` or below it (both absolute and normalised)."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def path_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute normalised path of plain components (None when it is one)."""
    if not value.startswith("/"):
        return "not an absolute path (start it with /)"
    if len(value) > PATH_MAX:
        return f"{len(value)} characters (at most {PATH_MAX})"
    if value != "/" and value.endswith("/"):
        return f"trailing '/' (write {value.rstrip('/') or '/'})"
    if "//" in value:
        return "empty component ('//')"
    for part in value.split("/")[1:]:
        if part in (".", ".."):
            return f"'{part}' component (write the path it means: {posixpath.normpath(value)})"
        if part and not PATH_PART_RE.fullmatch(part):
            bad = next(c for c in part if not PATH_PART_RE.fullmatch(c))
            return f"character {bad!r} in {part!r} (path components hold letters, digits and . _ - + , : = @)"
    return None


def check_abs_path(value: str) -> str:
    why = path_problem(value)
    if why:
        raise ValueError(f"{value!r}: {why}")
    return value


PLACE_EXAMPLES = "/mnt/kvcache, /data/kvcache, /opt/kvpod/vllm"


def check_place(value: str, examples: str = PLACE_EXAMPLES) -> str:
    """A mount point or an install directory: a normalised path that is no system directory, inside none,
    and no parent of one (mounting there would hide the system's files; installing there would mix with them)."""
    check_abs_path(value)
    valid = f"use a directory of its own, e.g. {examples}"
    for tree in SYSTEM_TREES:
        if inside(value, tree):
            raise ValueError(f"{value} is inside the system directory {tree} ({valid})")
        if inside(tree, value):
            raise ValueError(f"{value} holds the system directory {tree} ({valid})")
    if value in CONTAINER_DIRS:
        raise ValueError(f"{value} holds other directories ({valid})")
    return value


def check_cache_place(value: str) -> str:
    """A directory of downloaded or staged model weights: a place of its own (:func:`check_place`)."""
    return check_place(value, "/srv/hf, /data/hf-cache")


def check_device_path(value: str) -> str:
    """A block device under /dev, or a backing file outside the system's directories."""
    check_abs_path(value)
    if inside(value, "/dev"):
        if value == "/dev" or inside(value, "/dev/shm") or inside(value, "/dev/mqueue"):
            raise ValueError(f"{value} is not a block device path (e.g. /dev/nvme0n1, /dev/disk/by-id/...)")
        return value
    valid = "a block device under /dev, or a file such as /srv/nvmet/drive1.img"
    for tree in SYSTEM_TREES:
        if inside(value, tree):
            raise ValueError(f"{value} is inside the system directory {tree} ({valid})")
    if value.count("/") < 2:
        raise ValueError(f"{value} is a top-level directory ({valid})")
    return value


def check_device_pattern(value: str) -> str:
    """A device path pattern: ``{slot}`` is required (each drive its own path) and every result a device path."""
    check_pattern(value, "slot")
    if "{slot" not in value:
        raise ValueError(
            f"{value!r} has no {{slot}}: every drive would get the same path (e.g. /srv/nvmet/drive{{slot}}.img)"
        )
    check_device_path(value.format(slot=1))
    return value


def check_local_path(value: str) -> str:
    """A file on the machine running kvpod (an SSH key, a known-hosts file, a wheelhouse): any path that an
    ``ssh_config`` line can hold quoted; ``~/`` at its start is the operator's home directory."""
    if not value:
        raise ValueError("empty path (give a file, e.g. ~/.ssh/id_ed25519)")
    if '"' in value:
        raise ValueError(f"{value!r}: '\"' cannot be written in an ssh_config value (rename the file)")
    if "${" in value:
        raise ValueError(f"{value!r}: ssh expands '${{' in an ssh_config value as a variable (write the path itself)")
    if value != value.strip():
        raise ValueError(f"{value!r}: leading or trailing blanks (remove them)")
    if value.startswith("~") and not (value == "~" or value.startswith("~/")):
        raise ValueError(f"{value!r}: only ~/ (your home) is expanded, not ~user (write the full path)")
    return value


def keep_secret_file(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a path as a string, keeping the loader's :class:`SecretFile` (the path with the secret it holds)."""
    checked = handler(value)
    return value if isinstance(value, SecretFile) else checked
