"""The ground of the pod spec: the strict base model, names, addresses and host names, SSH and management.

Pure; every spec model builds on :class:`Strict`. The spec itself is :mod:`deploy.spec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from netaddr import AddrFormatError, IPAddress
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from deploy.spec_types import CONTROL_RE, LocalPath, UserName, control_in

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Upper bound of every size in GB (capacities, budgets, GPU memory): 1 PB, far above any drive or node.
MAX_GB = 1_000_000
# RFC 1123 host names: dot-separated labels of 1-63 letters, digits and '-', not starting or ending with '-',
# at most 253 characters, the last label not all-numeric (that would be an IPv4 address).
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
HOST_LABEL_MAX = 63
HOST_NAME_MAX = 253
DOTTED_NUMERIC_RE = re.compile(r"[0-9]+(\.[0-9]+)*")


class Strict(BaseModel):
    """Base for every spec model: unknown keys are errors, values are not coerced silently, numbers are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """One rule for every string of the spec, in lists and mappings too: no control characters (no spec
        value is multi-line). Typed fields say so first, with the exact item; this catches every other one."""
        if isinstance(value, str):
            if CONTROL_RE.search(value) is None:  # the common case, cheaply: validation runs per field
                return value
        elif not isinstance(value, list | tuple | dict):
            return value
        why = control_in(value)
        if why:
            raise ValueError(why)
        return value


def earlier_names(data: Any, renamed: dict[str, str]) -> Any:
    """Accept a field under its earlier name (``{earlier: current}``); giving both names is an error."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for earlier, current in renamed.items():
        if earlier in out:
            if current in out:
                raise ValueError(f"{earlier} is the earlier name of {current}: give only {current}")
            out[current] = out.pop(earlier)
    return out


def check_name(value: str) -> str:
    """Names become hostnames, unit names and NQN parts: lower-case DNS labels only."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case letters, digits and '-', 1-63 chars)")
    return value


def ipv4_problem(value: str) -> str | None:
    """Why an all-numeric dotted value (meant as an IPv4 address) is not one; None when it is not of that form."""
    if not DOTTED_NUMERIC_RE.fullmatch(value):
        return None
    octets = value.split(".")
    if len(octets) != 4:
        return f"{len(octets)} part{'s' if len(octets) != 1 else ''} (an IPv4 address has 4: a.b.c.d)"
    for octet in octets:
        digits = octet.lstrip("0") or "0"
        if len(digits) > 3 or int(digits) > 255:
            return f"octet {octet if len(octet) <= 12 else octet[:12] + '...'} is above 255"
    for octet in octets:
        if len(octet) > 1 and octet.startswith("0"):
            return f"octet {octet} has a leading zero (ambiguous: octal or decimal)"
    return None


def check_address(value: str) -> str:
    """Return a canonical IPv4/IPv6 address string, or raise ValueError."""
    try:
        return str(IPAddress(value))
    except (AddrFormatError, ValueError, TypeError):
        why = ipv4_problem(value)
        if why:
            raise ValueError(f"{value!r} is not a valid IPv4 address: {why}") from None
        raise ValueError(f"{value!r} is not an IP address") from None


def host_name_problem(value: str) -> str | None:
    """Why ``value`` is not a host name under RFC 1123 (None when it is one); one trailing dot is allowed."""
    name = value[:-1] if value.endswith(".") else value
    if not name:
        return "empty host name"
    if len(name) > HOST_NAME_MAX:
        return f"{len(name)} characters (a host name has at most {HOST_NAME_MAX})"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "empty label (two dots in a row, or a leading dot)"
        if len(label) > HOST_LABEL_MAX:
            return f"label {label[:20]!r}... is {len(label)} characters (at most {HOST_LABEL_MAX})"
        if not HOST_LABEL_RE.fullmatch(label):
            if label.startswith("-") or label.endswith("-"):
                return f"label {label!r} starts or ends with '-'"
            return f"label {label!r} has characters other than letters, digits and '-'"
    if labels[-1].isdigit():
        return f"the last label {labels[-1]!r} is all-numeric (a host name ends in a label with a letter)"
    return None


def check_host(value: str) -> str:
    """An SSH or management address: an IP address, or a host name (RFC 1123)."""
    try:
        return str(IPAddress(value))
    except (AddrFormatError, ValueError, TypeError):
        pass
    why = ipv4_problem(value)
    if why:
        raise ValueError(f"{value!r} is not a valid IPv4 address: {why}")
    if ":" in value:
        raise ValueError(f"{value!r} is not a valid IPv6 address (nor a host name: ':' is not allowed)")
    why = host_name_problem(value)
    if why:
        raise ValueError(f"{value!r} is neither an IP address nor a valid host name: {why}")
    return value


# The JSON Schema (``kvpod schema``) carries the name and NQN patterns for editors; the validators above
# remain the rule and give the messages.
Name = Annotated[str, AfterValidator(lambda v: check_name(v)), Field(json_schema_extra={"pattern": NAME_RE.pattern})]
Address = Annotated[str, AfterValidator(lambda v: check_address(v))]
Host = Annotated[str, AfterValidator(lambda v: check_host(v))]
Mtu = Annotated[int, Field(ge=1280, le=9216, description="IP MTU in bytes (1280-9216)")]
VlanId = Annotated[int, Field(ge=1, le=4094, description="802.1Q VLAN ID (1-4094)")]


class Ssh(Strict):
    """How kvpod reaches a host over SSH."""

    address: Host = Field(description="IP address or host name")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    user: UserName = Field("root", description="login user (a portable user name)")
    key: LocalPath | None = Field(
        None, description="private key file on this machine, ~/ for your home (default: the SSH agent and default keys)"
    )
    sudo: bool = Field(False, description="run commands through sudo (a non-root user)")
    known_hosts_file: LocalPath | None = Field(None, description="file on this machine (default: ~/.ssh/known_hosts)")
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = Field(
        "accept-new", description="OpenSSH StrictHostKeyChecking"
    )


class PodMeta(Strict):
    """The pod's identity."""

    name: Name = Field(description="pod name (lower-case DNS label); derived host NQNs and VLAN names use it")


class Management(Strict):
    """Out-of-band management of a switch or enclosure."""

    address: Host | None = Field(None, description="management address (shown on the target sheet)")
    ssh: Ssh | None = Field(None, description="SSH access, for hosts kvpod configures")


def list_or_set(value: Any) -> str:
    """The tag of a field written either as a list or as its compact mapping form."""
    return "[set]" if isinstance(value, dict) else "[list]"
