"""Names in the spec that reach hosts: NVMe qualified names and UUIDs, users, interfaces, namespaces, switch
ports, and name patterns. Each check returns the value or raises ValueError saying what would be valid. Pure."""

from __future__ import annotations

import re
import string

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
