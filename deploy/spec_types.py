"""The types of every host-facing value of the pod spec, each defined once: what it may hold, and a message
saying what is wrong and what would be valid. Pure; used by :mod:`deploy.spec`.

A spec is data: every value that reaches a host (a unit line, a script word, a configfs directory, an
``ssh_config`` option) is typed here so that no value can carry a second line, a shell word or a path that
walks somewhere else. Encoders still quote what they emit; these types refuse what no quoting can save.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import string
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, Field, SecretStr, ValidatorFunctionWrapHandler, WrapValidator

from deploy.secrets import SecretFile

# --- one rule for every string: no control characters --------------------------------------------------

# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators: each can end a line in some
# program that reads what kvpod writes (systemd, bash, ssh_config, YAML, a terminal).
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NO_CONTROL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"


def control_problem(value: str) -> str | None:
    """Why ``value`` cannot be a spec string (it holds a control character), None when it can."""
    m = CONTROL_RE.search(value)
    if m is None:
        return None
    return f"control character U+{ord(m.group()):04X} at position {m.start()} (no spec value may hold one)"


def control_in(value: Any, where: str = "") -> str | None:
    """The first control character in a string, or in the keys and values of nested lists and mappings."""
    if isinstance(value, str):
        why = control_problem(value)
        return f"{where}: {why}" if why and where else why
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            why = control_in(item, f"{where}[{i}]")
            if why:
                return why
    if isinstance(value, dict):
        for key, item in value.items():
            label = f"{where}[{key!r}]"
            why = control_in(key, f"{label} (key)") if isinstance(key, str) else None
            why = why or control_in(item, label)
            if why:
                return why
    return None


def plain_data_problem(value: Any, where: str = "") -> str | None:
    """Why a nested value is not plain data (strings, numbers, booleans, null, lists, string-keyed mappings)."""
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, SecretStr):  # a secret is a string too; the message never shows it
        why = control_problem(value.get_secret_value())
        return f"{where or 'secret'}: {why}" if why else None
    if isinstance(value, list):
        return next((w for i, item in enumerate(value) if (w := plain_data_problem(item, f"{where}[{i}]"))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}[{key!r}]: a key must be a string, not {type(key).__name__}"
            why = plain_data_problem(item, f"{where}[{key!r}]")
            if why:
                return why
        return None
    return f"{where or 'value'}: {type(value).__name__} is not plain data (give a string, number, list or mapping)"


def _text(value: str) -> str:
    why = control_problem(value)
    if why:
        raise ValueError(why)
    return value


def _typed(check: Callable[[str], str], pattern: str | None = None, **extra: Any) -> Any:
    """An annotated ``str``: control characters refused first, then ``check``; ``pattern`` for the schema."""
    schema = dict(extra)
    if pattern:
        schema["pattern"] = pattern
    return Annotated[str, AfterValidator(_text), AfterValidator(check), Field(json_schema_extra=schema or None)]


Text = Annotated[str, AfterValidator(_text), Field(json_schema_extra={"pattern": NO_CONTROL_PATTERN})]

# --- NVMe qualified names -------------------------------------------------------------------------------

NQN_MAX_BYTES = 223
# NVMe Base Specification 2.0, 4.5 "NVMe Qualified Names": nqn.yyyy-mm.<reverse domain>:<identifier>, or the
# UUID form nqn.2014-08.org.nvmexpress:uuid:<uuid>. The identifier is restricted to parts of letters, digits,
# '.', '_' and '-' separated by ':', each starting with a letter, digit or '_' (so never '.', '..' or '-x').
_DATE_DOMAIN = r"nqn\.(19|20)\d\d-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
_ID_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
NQN_PREFIX_RE = re.compile(_DATE_DOMAIN)
NQN_RE = re.compile(rf"{_DATE_DOMAIN}:{_ID_PART}(:{_ID_PART})*")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UUID_NQN_PREFIX = "nqn.2014-08.org.nvmexpress:uuid:"
_NQN_EXAMPLE = "nqn.yyyy-mm.reverse.domain:identifier, e.g. nqn.2024-01.com.example:drive01"


def check_nqn(value: str) -> str:
    """Return ``value`` when it is a well-formed NVMe Qualified Name, else raise ValueError."""
    size = len(value.encode())
    if size > NQN_MAX_BYTES:
        raise ValueError(f"NQN is {size} bytes (at most {NQN_MAX_BYTES})")
    if value.lower().startswith(UUID_NQN_PREFIX):
        if not UUID_RE.fullmatch(value[len(UUID_NQN_PREFIX) :]):
            raise ValueError(
                f"{value!r}: the UUID form is {UUID_NQN_PREFIX}<uuid> with a lower-case "
                "8-4-4-4-12 hex UUID (e.g. ...:uuid:0f8fad5b-d9cb-469f-a165-70867728950e)"
            )
        return value
    if not NQN_RE.fullmatch(value):
        raise ValueError(
            f"malformed NQN {value!r} (expected {_NQN_EXAMPLE}; identifier characters: A-Z a-z 0-9 . _ - :)"
        )
    return value


def check_nqn_prefix(value: str) -> str:
    """``nqn.yyyy-mm.reverse.domain``: the part of a drive NQN before ':'."""
    if ":" in value:
        raise ValueError(f"{value!r}: the prefix is the part before ':' (e.g. nqn.2024-01.com.example)")
    if not NQN_PREFIX_RE.fullmatch(value):
        raise ValueError(
            f"malformed NQN prefix {value!r} (expected nqn.yyyy-mm.reverse.domain, e.g. nqn.2024-01.com.example)"
        )
    if len(value) > NQN_MAX_BYTES - 2:
        raise ValueError(f"NQN prefix is {len(value)} bytes (drive NQNs have at most {NQN_MAX_BYTES})")
    return value


def check_uuid(value: str) -> str:
    if not UUID_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a UUID in canonical form (lower-case 8-4-4-4-12 hex, "
            "e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)"
        )
    return value


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


def _keep_secret_file(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a path as a string, keeping the loader's :class:`SecretFile` (the path with the secret it holds)."""
    checked = handler(value)
    return value if isinstance(value, SecretFile) else checked


# --- names --------------------------------------------------------------------------------------------------

USER_RE = re.compile(r"[a-z_][a-z0-9_-]*\$?")
USER_MAX = 32
IFNAMSIZ = 16  # the kernel's buffer, with its terminating NUL: names have at most 15 bytes
IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
NETNS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
NETNS_MAX = 64
# A switch port: swp1, swp1s0, Ethernet1/1, kvl-node1.
SWITCH_PORT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*")
SWITCH_PORT_MAX = 64


def check_user(value: str) -> str:
    """A POSIX portable user name (``[a-z_][a-z0-9_-]*[$]``, at most 32 characters)."""
    if len(value) > USER_MAX or not USER_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a portable user name (lower-case letters, digits, '_' and '-', starting with a "
            f"letter or '_', at most {USER_MAX} characters, e.g. vllm)"
        )
    return value


def check_service_user(value: str) -> str:
    check_user(value)
    if value == "root":
        raise ValueError("vLLM does not run as root (use a system user of its own, e.g. vllm)")
    return value


def ifname_problem(value: str) -> str | None:
    """Why ``value`` is not a Linux interface name (None when it is one)."""
    if len(value.encode()) > IFNAMSIZ - 1:
        return f"{len(value.encode())} bytes (Linux interface names have at most {IFNAMSIZ - 1})"
    if value in (".", "..") or not IFNAME_RE.fullmatch(value):
        return "not a Linux interface name (letters, digits, '_', '.' and '-', not starting with '.' or '-')"
    return None


def check_ifname(value: str) -> str:
    why = ifname_problem(value)
    if why:
        raise ValueError(f"{value!r}: {why}")
    return value


def check_netns(value: str) -> str:
    if len(value) > NETNS_MAX or not NETNS_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a network namespace name (letters, digits, '_', '.' and '-', at most {NETNS_MAX}, "
            "not starting with '.' or '-')"
        )
    return value


def check_switch_port(value: str) -> str:
    if len(value) > SWITCH_PORT_MAX or not SWITCH_PORT_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a switch port name (letters, digits, '_', '.', '/' and '-', starting with a letter "
            "or digit, e.g. swp1 or Ethernet1/1)"
        )
    return value


# Format specs allowed in name patterns ({n}, {n:02d}, {slot:3}): a width of one digit, nothing else.
PATTERN_SPEC_RE = re.compile(r"0?[0-9]?d?")


def check_pattern(value: str, field: str) -> str:
    """A name pattern such as ``gpu{n:02d}``: only ``{field}`` is replaced, optionally padded to at most 9."""
    example = f"{{{field}}} or {{{field}:02d}}"
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a valid pattern: {exc} (use {example}; '{{{{' for a literal brace)"
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name != field or conversion is not None or not PATTERN_SPEC_RE.fullmatch(spec or ""):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{value!r}: {shown[:40]} is not a placeholder kvpod fills in (use {example})")
    return value


# --- what vLLM runs -----------------------------------------------------------------------------------------

HUB_PART_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?")
HUB_PART_MAX = 96
# Options of `vllm serve` that kvpod sets itself from the spec (roles/vllm exec_start), and their aliases.
KVPOD_VLLM_OPTIONS = {
    "--model": "vllm.model",
    "--tensor-parallel-size": "vllm.tensor_parallel_size",
    "-tp": "vllm.tensor_parallel_size",
    "--gpu-memory-utilization": "vllm.gpu_memory_utilization",
    "--max-model-len": "vllm.max_model_len",
    "--port": "vllm.port",
    "--kv-transfer-config": "kvcache (kvpod writes LMCache's connector)",
}


def check_model(value: str) -> str:
    """A Hugging Face hub repository id (``org/name`` or ``name``, the hub's own grammar), or an absolute
    normalised local path on the node."""
    if value.startswith("/"):
        return check_abs_path(value)
    valid = "a hub id such as meta-llama/Llama-3.1-8B-Instruct, or an absolute path on the node"
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"{value!r} has {len(parts) - 1} '/' (a hub id is org/name: {valid})")
    for part in parts:
        why = hub_part_problem(part)
        if why:
            raise ValueError(f"{value!r} is not {valid}: {why}")
    return value


def hub_part_problem(part: str) -> str | None:
    """Why ``part`` cannot be the organisation or name of a hub id (None when it can)."""
    if not part:
        return "an empty part (write org/name)"
    if len(part) > HUB_PART_MAX:
        return f"{len(part)} characters in one part (at most {HUB_PART_MAX})"
    bad = next((c for c in part if not (c.isascii() and (c.isalnum() or c in "._-"))), None)
    if bad is not None:
        return f"character {bad!r} in {part!r} (parts hold A-Z a-z 0-9 . _ -)"
    if not HUB_PART_RE.fullmatch(part):
        return f"{part!r} starts or ends with '.' or '-'"
    if ".." in part or "--" in part:
        return f"{part!r} holds '..' or '--' (the hub refuses both)"
    if part.endswith(".git"):
        return f"{part!r} ends in '.git' (the hub refuses it)"
    return None


def check_extra_arg(value: str) -> str:
    """One word of vLLM's command line that does not set what kvpod sets."""
    if not value:
        raise ValueError("empty argument (remove it)")
    if value.startswith("-"):
        option = value.split("=", 1)[0].replace("_", "-")
        for own, source in KVPOD_VLLM_OPTIONS.items():
            # argparse takes unambiguous prefixes (--po for --port): refuse those too
            if option == own or (option.startswith("--") and len(option) > 2 and own.startswith(option)):
                raise ValueError(f"{value!r} sets {own}, which kvpod sets from {source} (set that instead)")
    return value


def check_version(value: str) -> str:
    """A PEP 440 version to pin (``0.11.0``, ``1.0rc1``)."""
    try:
        Version(value)
    except InvalidVersion:
        ok = False
    else:
        ok = bool(re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", value))
    if not ok:
        raise ValueError(f"{value!r} is not a version to pin (a PEP 440 version, e.g. 0.11.0)")
    return value


def check_index_url(value: str) -> str:
    valid = "an http(s) URL such as https://pypi.org/simple"
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} has blanks ({valid})")
    try:
        url = urlsplit(value)
        host = url.hostname
    except ValueError:
        host = None
        url = None
    if url is None or url.scheme not in ("http", "https") or not host:
        raise ValueError(f"{value!r} is not {valid}")
    return value


def check_mount_option(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:=/+-]*", value):
        raise ValueError(
            f"{value!r} is not one mount option (letters, digits and _ . : = / + -, no ',' or blanks; "
            "one option per item, e.g. noatime)"
        )
    return value


# --- subnets ------------------------------------------------------------------------------------------------

# Ranges a storage subnet may not touch: this-network, loopback, link-local, multicast, reserved (which
# holds the limited broadcast address), and IPv6's unspecified, loopback, link-local and multicast.
NOT_UNICAST = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fe80::/10",
        "ff00::/8",
    )
)


def subnet_problem(cidr: str) -> str | None:
    """Why a subnet in CIDR form cannot carry unicast hosts (None when it can)."""
    net = ipaddress.ip_network(cidr, strict=False)
    for bad in NOT_UNICAST:
        if bad.version == net.version and net.overlaps(bad):
            return f"overlaps {bad}, which is not unicast host space (use a private range such as 10.78.0.0/24)"
    return None


# --- the types ----------------------------------------------------------------------------------------------

Nqn = _typed(check_nqn, pattern=f"^{NQN_RE.pattern}$", maxLength=NQN_MAX_BYTES)
NqnPrefix = _typed(check_nqn_prefix, pattern=f"^{NQN_PREFIX_RE.pattern}$")
Uuid = _typed(check_uuid, pattern=f"^{UUID_RE.pattern}$")
AbsPath = _typed(check_abs_path, pattern="^/")
PlacePath = _typed(check_place, pattern="^/")
CachePath = _typed(check_cache_place, pattern="^/")
DevicePath = _typed(check_device_path, pattern="^/")
DevicePattern = _typed(check_device_pattern, pattern="^/")
LocalPath = _typed(check_local_path)
# A file on the machine running kvpod that holds a secret: the loader reads it (deploy.loader.read_secret_files)
SecretFilePath = Annotated[LocalPath, WrapValidator(_keep_secret_file)]
UserName = _typed(check_user, pattern=f"^{USER_RE.pattern}$", maxLength=USER_MAX)
ServiceUser = _typed(check_service_user, pattern=f"^{USER_RE.pattern}$", maxLength=USER_MAX)
IfName = _typed(check_ifname, pattern=f"^{IFNAME_RE.pattern}$", maxLength=IFNAMSIZ - 1)
NetnsName = _typed(check_netns, pattern=f"^{NETNS_RE.pattern}$", maxLength=NETNS_MAX)
SwitchPort = _typed(check_switch_port, pattern=f"^{SWITCH_PORT_RE.pattern}$", maxLength=SWITCH_PORT_MAX)
ModelId = _typed(check_model)
ExtraArg = _typed(check_extra_arg, minLength=1)
PipVersion = _typed(check_version, pattern="^[0-9]")
IndexUrl = _typed(check_index_url, pattern="^https?://")
MountOption = _typed(check_mount_option)
