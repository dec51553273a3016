"""What vLLM runs (a model id, its extra arguments, versions, the package index, mount options) and the subnets
the fabric may use. Each check returns the value or raises ValueError saying what would be valid. Pure."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

from deploy.spec_paths import check_abs_path

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
