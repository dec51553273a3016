"""Role ``lmcache``: LMCache's configuration for each vLLM engine and its disk-tier directory.

Reads ``host.data.kvpod_node.engines`` (each engine's :class:`deploy.plan.LmcachePlan` in ``lmcache``),
``lmcache_root`` and ``vllm.user``. Every engine gets its own files and directory; what follows is per engine.

- ``config_mode == "env"``: ``env_file`` (``/etc/kvpod/lmcache@<index>.env``) holds every setting:
  ``LMCACHE_CHUNK_SIZE``, ``LMCACHE_LOCAL_CPU``, ``LMCACHE_MAX_LOCAL_CPU_SIZE``, ``LMCACHE_LOCAL_DISK``,
  ``LMCACHE_MAX_LOCAL_DISK_SIZE``, each ``extra`` as ``LMCACHE_<KEY>``, and ``PYTHONHASHSEED=0``; a YAML file
  left from an earlier run is removed.
- ``config_mode == "yaml"``: ``config_file`` (``/etc/kvpod/lmcache.yaml``) holds every setting and the env
  file only ``LMCACHE_CONFIG_FILE`` and ``PYTHONHASHSEED=0``: a setting is never in both.
- Unless ``telemetry``, the env file (either mode) also holds ``LMCACHE_TRACK_USAGE=false``: LMCache's usage
  reporting to its outside endpoint is off.
- ``extra`` never repeats a core setting: ``kvpod validate`` refuses such a spec (a core setting wins over
  an ``extra`` key of the same name in a plan built without validation).
- Both files may carry credentials (a ``remote_url`` with a password, a secret from a file): they are
  written ``0640 root:<vLLM user's group>`` (:data:`SECRET_FILE_MODE`), readable by vLLM and no one else.
  Plans, diffs, reports and logs show a secret redacted (:mod:`deploy.secrets`); only these files hold it.
- The disk-tier root ``<mount>/lmcache`` and the engine's directory of ``local_disk``
  (``<mount>/lmcache/engine<index>``) are owned by the vLLM user.
- Files of the single-engine layout (``/etc/kvpod/lmcache.env``, ``lmcache.yaml``) and of engines no longer
  planned are left to the vllm role, which retires them with their units.

Returns, per engine index, the operations whose change must restart that engine (pass them to the vllm role).
"""

from __future__ import annotations

import posixpath

from pyinfra.api import deploy

from deploy.encode import yaml_document
from deploy.hostdata import host_data
from deploy.names import KVPOD_ETC
from deploy.operations import host_error
from deploy.operations.bundle_steps import (
    bundled_directory,
    role_steps,
)
from deploy.operations.reads import Reads
from deploy.operations.steps import (
    BundledFile,
    Results,
    Steps,
    absent_file_step,
    directories_step,
    reads_of,
    run_steps,
)
from deploy.plan import USAGE_TRACKING_OFF, LmcachePlan, NodePlan
from deploy.secrets import reveal
from roles._common import env_value, rendered_step

HASH_SEED = {"PYTHONHASHSEED": "0"}
SECRET_FILE_MODE = "640"  # root:<the vLLM user's group>: the files may carry credentials


def core_settings(lm: LmcachePlan) -> dict:
    """LMCache's core settings by their YAML names."""
    return {
        "chunk_size": lm.chunk_size,
        "local_cpu": lm.local_cpu,
        "max_local_cpu_size": lm.max_local_cpu_size,
        "local_disk": lm.local_disk,
        "max_local_disk_size": lm.max_local_disk_size,
    }


def settings(lm: LmcachePlan) -> dict:
    """Core settings then extras (validation refuses an extra that repeats a core setting; the core one wins),
    secrets revealed: this is what the host's files hold."""
    core = core_settings(lm)
    return {**core, **{key: reveal(value) for key, value in lm.extra.items() if key not in core}}


def env_lines(lm: LmcachePlan) -> dict[str, str]:
    """The env file's variables for the plan's mode (values as they must arrive; the template encodes them)."""
    if lm.config_mode == "yaml":
        config = {"LMCACHE_CONFIG_FILE": lm.config_file or ""}
    else:
        config = {f"LMCACHE_{key.upper()}": env_value(value) for key, value in settings(lm).items()}
    return config | ({} if lm.telemetry else USAGE_TRACKING_OFF) | HASH_SEED


def yaml_body(lm: LmcachePlan) -> str:
    """The YAML config (yaml mode), dumped from data."""
    return yaml_document(settings(lm))


def cache_dir(lm: LmcachePlan) -> str:
    """The directory of ``local_disk``: ``file:///mnt/kvcache/lmcache/engine0/`` -> ``/mnt/kvcache/lmcache/engine0``."""
    path = lm.local_disk.removeprefix("file://")
    return path.rstrip("/") or "/"


def yaml_path(lm: LmcachePlan) -> str:
    """The LMCache YAML config's path (removed in env mode): beside the env file, ``.env`` -> ``.yaml``."""
    if lm.config_file:
        return lm.config_file
    base = posixpath.basename(lm.env_file).removesuffix(".env")
    return posixpath.join(posixpath.dirname(lm.env_file), f"{base}.yaml")


def restart_key(index: int) -> str:
    """The key of the steps whose change restarts engine ``index``."""
    return f"lmcache@{index}"


def steps(plan: NodePlan) -> Steps:
    """Each engine's files, then the disk-tier root and the engines' directories (made by one command)."""
    user = plan.vllm.user
    settings = [settings_dir(user)] if any(_in_settings_dir(e.lmcache) for e in plan.engines) else []
    directories = directories_step(
        "LMCache disk-tier root and engine directories",
        [plan.lmcache_root, *(cache_dir(e.lmcache) for e in plan.engines)],
        user=user,
        group=user,
        mode="750",
    )
    return [*settings, *(s for e in plan.engines for s in _engine_steps(e.index, e.lmcache, user)), directories]


def _in_settings_dir(lm: LmcachePlan) -> bool:
    return any(posixpath.dirname(p) == KVPOD_ETC for p in (lm.env_file, lm.config_file) if p)


def settings_dir(user: str) -> BundledFile:
    """``/etc/kvpod``, which holds the env files: ``root:<the vLLM user's group>``, 0755."""
    return bundled_directory("kvpod settings directory", KVPOD_ETC, mode="755", user="root", group=user)


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("lmcache")
def lmcache(results: Results | None = None) -> dict[int, list]:
    """Each engine's env file (and YAML config) and cache directory (the files in one bundle, unless ``results``
    holds the node's bundle already); returns, per engine index, the operations that need that engine
    restarted."""
    plan = host_data().node
    results = run_steps(*role_steps(steps(plan), results))
    return {e.index: results.get(restart_key(e.index), []) for e in plan.engines}


def _engine_steps(index: int, lm: LmcachePlan, user: str) -> Steps:
    """One engine's files, kept under :func:`restart_key` (they restart it); its directory is made with the
    others'."""
    key = restart_key(index)
    if lm.config_mode == "yaml":
        if not lm.config_file:
            raise host_error("lmcache config_mode is yaml but the plan has no config_file")
        config = rendered_step(
            f"LMCache YAML config of engine {index}",
            "lmcache",
            "lmcache.yaml.j2",
            lm.config_file,
            mode=SECRET_FILE_MODE,
            user="root",
            group=user,
            keep=key,
            settings=settings(lm),
        )
    else:
        config = absent_file_step(f"no LMCache YAML config of engine {index} (env mode)", yaml_path(lm), keep=key)
    env = rendered_step(
        f"LMCache env file of engine {index}",
        "lmcache",
        "lmcache.env.j2",
        lm.env_file,
        mode=SECRET_FILE_MODE,
        user="root",
        group=user,
        keep=key,
        env=env_lines(lm),
    )
    return [config, env]
