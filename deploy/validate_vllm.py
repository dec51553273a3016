"""Pod-wide rules of what the nodes run: GPUs and engines, LMCache settings, the vLLM install and its versions,
and the places of the mount, the environment and the weights."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from deploy.compat import is_standin, lookup, working
from deploy.errors import Problem
from deploy.lmcache_keys import KVPOD_EXTRA_CONFIG, KVPOD_SETTINGS, keys_for, known_versions
from deploy.names import WHEELHOUSE_DEST
from deploy.secrets import reveal
from deploy.spec import Node, PodSpec, Vllm, VllmInstall
from deploy.spec_types import inside


def gpu_counts(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    tp = spec.vllm.tensor_parallel_size
    return [
        Problem(
            f"{np[n.name]}.gpus",
            f"{n.gpus} GPUs cannot run tensor parallel size {tp} "
            f"(GPU count must be a multiple of vllm.tensor_parallel_size, e.g. {tp})",
        )
        for n in nodes
        if n.gpus % tp != 0
    ] + [
        Problem(
            f"{np[n.name]}.gpus",
            f"{n.gpus // tp} engines need ports {spec.vllm.port}..{spec.vllm.port + n.gpus // tp - 1} "
            f"(vllm.port + engine index must stay at or below 65535)",
        )
        for n in nodes
        if n.gpus % tp == 0 and spec.vllm.port + n.gpus // tp - 1 > 65535
    ]


_KIND_CHECKS = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str | int | float) and not isinstance(v, bool), "a string"),
    "list": (lambda v: isinstance(v, list | str), "a list (or a comma-separated string)"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
}
# Names people reach for to switch LMCache's usage reporting: it is an environment variable, not a setting.
_TELEMETRY_WORDS = ("usage", "track", "telemetry", "stats")


def lmcache_settings(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """``kvcache.lmcache_extra`` against the settings of the LMCache version the spec targets."""
    kv = spec.kvcache
    try:
        keys = keys_for(kv.lmcache_version)
    except KeyError:
        return [
            Problem(
                "kvcache.lmcache_version",
                f"kvpod has no list of LMCache {kv.lmcache_version}'s settings "
                f"(known: {', '.join(known_versions())}; README, 'LMCache version', tells how to add one)",
            )
        ]
    out: list[Problem] = []
    version = f"LMCache {keys.version}"
    for key, value in kv.lmcache_extra.items():
        path = f"kvcache.lmcache_extra.{key}"
        setting = keys.renamed.get(key, key)
        if setting in KVPOD_SETTINGS:
            source = KVPOD_SETTINGS[setting]
            where = f"set {source} instead" if source.startswith("kvcache.") else source
            out.append(Problem(path, f"kvpod writes {setting} itself ({where}): give it once"))
        elif key in keys.renamed:
            out.append(Problem(path, f"{key} is the deprecated name of {setting} in {version} (use {setting})"))
        elif key in keys.ignored:
            out.append(Problem(path, f"{version} does not read {key} ({keys.ignored[key]})"))
        elif key not in keys.settings:
            if any(word in str(key).lower() for word in _TELEMETRY_WORDS):
                hint = "usage reporting is kvcache.lmcache_telemetry"
            else:
                close = difflib.get_close_matches(str(key), keys.settings, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"settings: deploy/lmcache_keys/{keys.version}.json"
            out.append(Problem(path, f"{version} has no setting {key!r} ({hint})"))
        else:
            kind = keys.settings[key]
            check, wanted = _KIND_CHECKS[kind]
            value = reveal(value)
            if value is None:
                out.append(Problem(path, f"no value (give {wanted}, or leave {key} out for LMCache's default)"))
            elif not check(value):
                out.append(Problem(path, f"{version} takes {wanted} for {key}, not {kv.lmcache_extra[key]!r}"))
            elif key == "extra_config":
                for inner, source in KVPOD_EXTRA_CONFIG.items():
                    if inner in value:
                        out.append(Problem(f"{path}.{inner}", f"kvpod sizes it from {source}: set that instead"))
    return out


def project_name(name: str) -> str:
    """A distribution's normalized name (PEP 503): ``LMCache`` -> ``lmcache``, ``lm_cache`` -> ``lm-cache``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    """The normalized project name of a wheel file (``lmcache-0.5.6-py3-none-any.whl`` -> ``lmcache``)."""
    return project_name(filename.split("-", 1)[0])


def install_settings(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    inst = spec.vllm.install
    if inst is None:
        return []
    problems = []
    if spec.vllm.executable != Vllm.model_fields["executable"].default:
        problems.append(
            Problem(
                "vllm.executable",
                f"{spec.vllm.executable} is set together with vllm.install, whose environment provides "
                f"{inst.venv}/bin/vllm (remove one of them)",
            )
        )
    problems.extend(_broken_pair(spec))
    return problems


def _installed_pair(spec: PodSpec, inst: VllmInstall) -> tuple[str, str, str]:
    """The vLLM and LMCache versions ``vllm.install`` installs, and the field the LMCache version comes from."""
    if inst.lmcache_version is not None:
        return inst.vllm_version, inst.lmcache_version, "vllm.install.lmcache_version"
    return inst.vllm_version, spec.kvcache.lmcache_version, "kvcache.lmcache_version"


def _working_pairs() -> str:
    return ", ".join(f"vllm {p.vllm} with lmcache {p.lmcache}" for p in working())


def _broken_pair(spec: PodSpec) -> list[Problem]:
    """A vLLM and LMCache pair the compatibility table (deploy/compat/table.toml) marks broken is refused."""
    inst = spec.vllm.install
    if inst is None or is_standin(inst.vllm_version, inst.wheelhouse):
        return []
    vllm, lmcache, lmcache_field = _installed_pair(spec, inst)
    row = lookup(vllm, lmcache)
    if row is None or row.status != "broken":
        return []
    return [
        Problem(
            "vllm.install.vllm_version",
            f"vLLM {vllm} with LMCache {lmcache} ({lmcache_field}) is known broken: {row.reason} "
            f"(working pairs: {_working_pairs()})",
        )
    ]


def warnings(spec: PodSpec) -> list[Problem]:
    """What a valid spec asks that kvpod cannot vouch for: a vLLM and LMCache pair the compatibility table does
    not know (the lab's stand-in is known)."""
    inst = spec.vllm.install
    if inst is None or is_standin(inst.vllm_version, inst.wheelhouse):
        return []
    vllm, lmcache, lmcache_field = _installed_pair(spec, inst)
    if lookup(vllm, lmcache) is not None:
        return []
    return [
        Problem(
            "vllm.install.vllm_version",
            f"vLLM {vllm} with LMCache {lmcache} ({lmcache_field}) is not in the compatibility table: "
            f"whether LMCache's compiled ops link is unknown (proven pairs: {_working_pairs()}; "
            "python3 -m deploy.compat.gather checks a pair)",
        )
    ]


def wheelhouse_problems(wheelhouse: str | None) -> list[str]:
    """What is wrong with ``vllm.install.wheelhouse`` on this machine (checked before ``kvpod up`` touches a host;
    ``kvpod validate`` may run where the wheels are not)."""
    if wheelhouse is None:
        return []
    where = Path(wheelhouse).expanduser()
    if not where.is_dir():
        return [f"vllm.install.wheelhouse: {wheelhouse} is not a directory here"]
    found = {wheel_project(w.name) for w in where.glob("*.whl")}
    missing = [p for p in ("vllm", "lmcache") if p not in found]
    if missing:
        return [
            f"vllm.install.wheelhouse: {wheelhouse} has no wheel of {', '.join(missing)} "
            "(fill it with `pip download --dest DIR vllm==X lmcache==Y`)"
        ]
    return []


def host_paths(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """The KV-cache mount, the vLLM environment and kvpod's own files on a node do not overlap."""
    out: list[Problem] = []
    mount = spec.kvcache.path
    inst = spec.vllm.install
    places: list[tuple[str, str]] = []  # kvpod's lock and state: inside SYSTEM_TREES, refused by the type
    if inst is not None:
        places.append(("vllm.install.venv", inst.venv))
        if inst.wheelhouse:
            places.append(("the wheelhouse kvpod pushes", WHEELHOUSE_DEST))
    for what, where in places:
        if inside(mount, where) or inside(where, mount):
            out.append(
                Problem(
                    "kvcache.path", f"{mount} overlaps {what} at {where} (give the KV-cache mount its own directory)"
                )
            )
    if inside(spec.vllm.executable, mount):
        out.append(
            Problem(
                "vllm.executable", f"{spec.vllm.executable} is inside the KV-cache mount {mount} (install it elsewhere)"
            )
        )
    if inst is not None and inside(inst.python, inst.venv):
        out.append(
            Problem("vllm.install.python", f"{inst.python} is inside the environment {inst.venv} it is to create")
        )
    return out


def model_files(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """The weights lie off the KV-cache mount (a drive kvpod may move to another node, whose LMCache directory it
    empties before every start), and an offline pod names where they are staged."""
    out: list[Problem] = []
    v, mount = spec.vllm, spec.kvcache.path
    local = v.model.startswith("/")
    if v.weights_cache_dir and (inside(v.weights_cache_dir, mount) or inside(mount, v.weights_cache_dir)):
        out.append(
            Problem(
                "vllm.weights_cache_dir",
                f"{v.weights_cache_dir} overlaps the KV-cache mount {mount}, a drive that holds only LMCache's "
                "files and may move to another node (give the weights a directory of their own, e.g. /srv/hf)",
            )
        )
    if local and inside(v.model, mount):
        out.append(
            Problem(
                "vllm.model",
                f"{v.model} is on the KV-cache mount {mount}, a drive that holds only LMCache's files and may move "
                "to another node (stage the weights elsewhere, e.g. /srv/models/NAME)",
            )
        )
    if v.offline and not local and v.weights_cache_dir is None:
        org_name = v.model.replace("/", "--")
        out.append(
            Problem(
                "vllm.offline",
                f"offline, vLLM cannot download {v.model}: its weights must be staged on every node, and without "
                f"vllm.weights_cache_dir they would have to be in vllm.user's home cache, which kvpod creates "
                f"empty (give vllm.weights_cache_dir, the cache holding <dir>/hub/models--{org_name}/snapshots/"
                "<revision>/, or give vllm.model as the absolute path of the weights on the node)",
            )
        )
    return out
