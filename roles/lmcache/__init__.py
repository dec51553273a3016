"""Role ``lmcache``: LMCache's configuration for vLLM and its disk-tier directory.

Reads ``host.data.kvpod_node.lmcache`` (:class:`deploy.plan.LmcachePlan`) and ``vllm.user``.

- ``config_mode == "env"``: ``env_file`` (``/etc/kvpod/lmcache.env``) holds every setting:
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
- The cache directory of ``local_disk`` (``<mount>/lmcache``) is owned by the vLLM user.

Returns the operations whose change must restart vLLM (pass them to the vllm role).
"""

from __future__ import annotations

import posixpath

from pyinfra.api import deploy
from pyinfra.operations import files

from deploy.encode import yaml_document
from deploy.hostdata import host_data
from deploy.operations import host_error
from deploy.operations.reads import Reads, absent_file_reads, directory_reads, file_reads
from deploy.plan import USAGE_TRACKING_OFF, LmcachePlan, NodePlan
from deploy.secrets import reveal
from roles._common import env_value, rendered_file

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
    """The directory of ``local_disk`` (``file:///mnt/kvcache/lmcache/`` -> ``/mnt/kvcache/lmcache``)."""
    path = lm.local_disk.removeprefix("file://")
    return path.rstrip("/") or "/"


def yaml_path(lm: LmcachePlan) -> str:
    """The LMCache YAML config's path (removed in env mode)."""
    return lm.config_file or posixpath.join(posixpath.dirname(lm.env_file), "lmcache.yaml")


def reads(plan: NodePlan) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    lm = plan.lmcache
    config = file_reads(yaml_path(lm)) if lm.config_mode == "yaml" else absent_file_reads(yaml_path(lm))
    return [*config, *file_reads(lm.env_file), *directory_reads(cache_dir(lm))]


@deploy("lmcache")
def lmcache() -> list:
    """The env file (and YAML config), the cache directory; returns the operations that need a vLLM restart."""
    plan = host_data().node
    lm, user = plan.lmcache, plan.vllm.user
    yaml_file = yaml_path(lm)

    triggers = []
    if lm.config_mode == "yaml":
        if not lm.config_file:
            raise host_error("lmcache config_mode is yaml but the plan has no config_file")
        triggers.append(
            rendered_file(
                "LMCache YAML config",
                "lmcache",
                "lmcache.yaml.j2",
                lm.config_file,
                mode=SECRET_FILE_MODE,
                user="root",
                group=user,
                settings=settings(lm),
            )
        )
    else:
        triggers.append(files.file(name="no LMCache YAML config (env mode)", path=yaml_file, present=False))
    triggers.append(
        rendered_file(
            "LMCache env file",
            "lmcache",
            "lmcache.env.j2",
            lm.env_file,
            mode=SECRET_FILE_MODE,
            user="root",
            group=user,
            env=env_lines(lm),
        )
    )
    files.directory(name="LMCache disk-tier directory", path=cache_dir(lm), user=user, group=user, mode="750")
    return triggers
