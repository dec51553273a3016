"""The settings each supported LMCache version defines, to check ``kvcache.lmcache_extra`` before deploying.

LMCache ignores an ``LMCACHE_<KEY>`` variable it does not define (env mode) and only warns about an unknown
key of its YAML file, so a misspelt setting would otherwise go unnoticed. Each ``<version>.json`` beside
this module lists the settings of one LMCache version as LMCache's engine configuration defines them
(``lmcache.v1.config``: ``_CONFIG_DEFINITIONS``), with the kind of value each takes, and what LMCache does
with the other names it knows (``_CONFIG_ALIASES``, ``_DEPRECATED_CONFIGS``), as its own alias resolution
(``lmcache.v1.config_base._resolve_config_aliases``) treats them: ``renamed`` names are read as their
current setting; ``ignored`` names are dropped (in 0.5.6 an alias that is not also deprecated is dropped as
an unknown key).

To add or refresh a version, install that LMCache without its dependencies (its configuration module
imports without torch) and write the list from it::

    .venv/bin/pip install --no-deps lmcache==X.Y.Z && .venv/bin/python -m deploy.lmcache_keys
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DEFAULT_VERSION = "0.5.6"
KINDS = ("bool", "int", "float", "str", "list", "dict")
# Settings kvpod writes itself, and where in the spec each comes from: lmcache_extra must not repeat them.
KVPOD_SETTINGS = {
    "chunk_size": "kvcache.chunk_size",
    "local_cpu": "kvpod always enables the host-DRAM tier",
    "max_local_cpu_size": "kvcache.cpu_budget_gib",
    "local_disk": "kvcache.path",
    "max_local_disk_size": "kvcache.disk_budget_gib",
}
# extra_config entries that would override what kvpod sizes (LMCache 0.5.6 reads them on MLA models).
KVPOD_EXTRA_CONFIG = {"first_rank_max_local_cpu_size": "kvcache.cpu_budget_gib"}


@dataclass(frozen=True)
class LmcacheKeys:
    """The settings of one LMCache version."""

    version: str
    settings: dict[str, str]  # setting -> kind of value (one of KINDS)
    renamed: dict[str, str]  # earlier name LMCache still reads -> the setting it sets
    ignored: dict[str, str]  # name LMCache knows of but does not read -> why


def known_versions() -> list[str]:
    """The LMCache versions kvpod ships a key list for."""
    return sorted(p.stem for p in HERE.glob("*.json"))


@cache
def keys_for(version: str) -> LmcacheKeys:
    """The key list of ``version``; KeyError when kvpod ships none."""
    path = HERE / f"{version}.json"
    if not path.is_file():
        raise KeyError(version)
    data = json.loads(path.read_text())
    return LmcacheKeys(
        version=data["lmcache"],
        settings=dict(data["settings"]),
        renamed=dict(data["renamed"]),
        ignored=dict(data["ignored"]),
    )


def kind_of(annotation: Any) -> str:
    """The kind of value a setting of LMCache's configuration takes, from its declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = {kind_of(a) for a in typing.get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else "str"
    if annotation in (list, dict) or origin in (list, dict):
        return "list" if list in (annotation, origin) else "dict"
    for kind, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if annotation is typ:
            return kind
    return "str"


def generate() -> dict[str, Any]:
    """The key list of the installed LMCache, from its engine configuration's definitions."""
    from importlib.metadata import version

    from lmcache.v1 import config, config_base  # import without torch (LMCache's CLI-only mode)

    defined, aliases, deprecated = config._CONFIG_DEFINITIONS, config._CONFIG_ALIASES, config._DEPRECATED_CONFIGS
    renamed: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for name in sorted((set(aliases) | set(deprecated)) - set(defined)):
        resolved = config_base._resolve_config_aliases({name: None}, "kvpod", defined, aliases, deprecated)
        target = next((key for key in resolved if key in defined), None)
        if target is not None:
            renamed[name] = target
        elif name in aliases:
            ignored[name] = f"earlier name of {aliases[name]}, dropped as an unknown key: use {aliases[name]}"
        else:
            ignored[name] = deprecated[name]
    return {
        "lmcache": version("lmcache"),
        "source": "lmcache.v1.config: _CONFIG_DEFINITIONS, _CONFIG_ALIASES, _DEPRECATED_CONFIGS",
        "settings": {name: kind_of(d["type"]) for name, d in sorted(defined.items())},
        "renamed": renamed,
        "ignored": ignored,
    }


def main() -> int:
    data = generate()
    path = HERE / f"{data['lmcache']}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{path}: {len(data['settings'])} settings of LMCache {data['lmcache']}")
    return 0
