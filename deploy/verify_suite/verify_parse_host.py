"""Parsers of a state read (pure): process arguments, links and routes, kernel modules, mounts, systemd units,
file modes, disk space, served models and HTTP answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from verify_parse import Section, parse_key_values


def argument_value(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in argv (the last one wins, as argparse does)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def serve_model(argv: list[str]) -> str | None:
    """The model of ``vllm serve MODEL ...`` (the argument after ``serve``)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "serve":
            return argv[i + 1]
    return None


def contains_sequence(argv: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` appears in argv as consecutive arguments."""
    n = len(wanted)
    return any(argv[i : i + n] == wanted for i in range(len(argv) - n + 1))


def parse_json_documents(text: str) -> list[Any]:
    """Concatenated JSON documents (``ip -j -batch`` prints one per command) -> a list of them."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def parse_links(text: str) -> dict[str, dict[str, Any]]:
    """``ip -d -j addr show`` -> ``{ifname: entry}`` (link details and ``addr_info``)."""
    if not text.strip():
        return {}
    return {entry["ifname"]: entry for entry in json.loads(text) if "ifname" in entry}


def ipv4_addresses(link: dict[str, Any] | None) -> set[str]:
    """IPv4 addresses of an ``ip -j addr`` entry as ``address/prefix``."""
    return {
        f"{a['local']}/{a['prefixlen']}"
        for a in (link or {}).get("addr_info", [])
        if a.get("family") == "inet" and "local" in a
    }


def parse_routes(text: str) -> dict[str, dict[str, Any]]:
    """``ip -j -batch`` of ``route get ADDR`` lines -> ``{ADDR: route}`` (by each answer's ``dst``)."""
    out: dict[str, dict[str, Any]] = {}
    for doc in parse_json_documents(text):
        for route in doc if isinstance(doc, list) else [doc]:
            if isinstance(route, dict) and route.get("dst"):
                out.setdefault(route["dst"], route)
    return out


def parse_tab_pairs(text: str) -> dict[str, str]:
    """``KEY\\tVALUE`` lines -> a dict (values stripped)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key] = value.strip()
    return out


def parse_module_states(text: str, wanted: Iterable[str]) -> dict[str, str]:
    """The ``modules`` section -> ``{module: loaded | builtin | absent}`` for each wanted module.

    ``loaded``: in /sys/module; ``builtin``: listed in the running kernel's modules.builtin (names compared
    with ``-`` read as ``_``); ``absent``: neither.
    """
    head, _, builtin_list = text.partition("builtin-list\n")
    loaded = {line.partition("\t")[2].strip() for line in head.splitlines() if line.startswith("loaded\t")}
    builtin = builtin_list.replace("-", "_")
    out = {}
    for name in wanted:
        if name in loaded:
            out[name] = "loaded"
        elif f"/{name}.ko" in builtin:
            out[name] = "builtin"
        else:
            out[name] = "absent"
    return out


def unescape_raw(text: str) -> str:
    """A field of util-linux ``-r`` (raw) output: ``\\x20`` and other hex escapes decoded."""
    if "\\x" not in text:
        return text
    data = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), text.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "replace")


def parse_findmnt_row(line: str) -> dict[str, str] | None:
    """A ``findmnt -n -r -o MAJ:MIN,TARGET,SOURCE,FSTYPE,OPTIONS`` row -> its fields (None for no row)."""
    fields = line.strip().split(" ")
    if len(fields) != 5:
        return None
    majmin, target, source, fstype, options = (unescape_raw(f) for f in fields)
    return {"maj:min": majmin, "target": target, "source": source, "fstype": fstype, "options": options}


def parse_mounted(text: str) -> tuple[dict[str, str] | None, dict[str, str]]:
    """The ``mount`` section -> (findmnt's row or None, the mounted namespace).

    The namespace dict has ``mounted`` (yes/no), ``source``, ``device`` (``/dev/<block>``), and, for an NVMe
    namespace, ``subsysnqn``, ``subsystem`` (nvme-subsysN, or the controller without native multipath) and
    ``nsid``.
    """
    values = parse_key_values(text)
    row = parse_findmnt_row(values.get("findmnt", "").split("\n")[0])
    info = {"mounted": values.get("mounted", "no")}
    if row is not None:
        info["source"] = row["source"]
        info["device"] = f"/dev/{values['block']}" if values.get("block") else row["source"]
    for key in ("subsysnqn", "subsystem", "nsid"):
        if key in values:
            info[key] = values[key]
    return row, info


def parse_unit_blocks(text: str, names: list[str]) -> dict[str, dict[str, str]]:
    """``systemctl show`` of several units (one block each, in order, blank lines between) -> ``{name: props}``.

    Blocks are matched to the names asked for by position; when the count differs, by ``Id``.
    """
    blocks = [parse_key_values(b) for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    if len(blocks) == len(names):
        return dict(zip(names, blocks, strict=True))
    by_id = {b.get("Id", ""): b for b in blocks}
    return {name: by_id[name] for name in names if name in by_id}


def enablement(props: dict[str, str]) -> str:
    """What ``systemctl is-enabled`` says of a unit, from its ``systemctl show`` properties."""
    if props.get("UnitFileState"):
        return props["UnitFileState"]
    if props.get("LoadState") in ("not-found", "masked", "bad-setting", "error"):
        return props["LoadState"]
    return "no unit file" if props else "unknown"


def parse_grep_nul(text: str) -> dict[str, list[str]]:
    """``grep -Haz '' FILE...`` -> ``{file name: [NUL-separated records]}`` (empty records left out).

    The file name is the last path component (``/proc/42/cmdline`` -> ``cmdline``).
    """
    out: dict[str, list[str]] = {}
    for record in text.split("\0"):
        path, sep, value = record.partition(":")
        if sep and value:
            out.setdefault(path.rsplit("/", 1)[-1], []).append(value)
    return out


def parse_process(text: str) -> tuple[list[str], dict[str, str]]:
    """``grep -Haz '' /proc/PID/cmdline /proc/PID/environ`` -> (argv, environment)."""
    records = parse_grep_nul(text)
    environ = {}
    for entry in records.get("environ", []):
        key, sep, value = entry.partition("=")
        if sep:
            environ[key] = value
    return records.get("cmdline", []), environ


def parse_writable(text: str, root: str = "") -> dict[str, tuple[bool, str]]:
    """The ``writable`` section -> ``{directory: (writable, why not)}`` (a directory with no verdict: unknown)."""
    out: dict[str, tuple[bool, str]] = {}
    for line in text.splitlines():
        verdict, _, path = line.partition("\t")
        path = path.removeprefix(root) if root else path
        if verdict == "notdir":
            out[path] = (False, f"{path} is not a directory")
        elif verdict in ("yes", "no") and path not in out:
            out[path] = (verdict == "yes", "" if verdict == "yes" else "no")
    return out


def parse_df(text: str) -> dict[str, int]:
    """``df -B1 --output=avail,size PATH`` -> ``{"avail": bytes, "size": bytes}``."""
    lines = [line.split() for line in text.strip().splitlines()]
    if len(lines) < 2 or len(lines[-1]) != 2 or not all(v.isdigit() for v in lines[-1]):
        return {}
    return {"avail": int(lines[-1][0]), "size": int(lines[-1][1])}


def parse_du(text: str) -> int | None:
    """``du -sb DIR`` -> bytes (None without a total)."""
    first = text.strip().split()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


def parse_models(section: Section) -> tuple[list[str] | None, str]:
    """A ``/v1/models`` answer -> (the ids of ``data``, ""), or (None, why it is not one)."""
    if not section.ok:
        return None, section.why()
    try:
        data = json.loads(section.stdout)
        return [str(m["id"]) for m in data["data"]], ""
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"not a model list: {exc!r}"[:200]


def parse_http_status(text: str) -> tuple[int, str]:
    """The health section (curl's ``%{http_code}``, or the python fallback) -> (status, raw answer)."""
    out = text.strip()
    first = out.split()[0] if out else "0"
    return (int(first) if first.isdigit() else 0), out
