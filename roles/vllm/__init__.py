"""Role ``vllm``: vLLM with LMCache as systemd services, one per engine.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``vllm`` (``executable``, ``model``,
``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``kv_transfer_config``,
``extra_args``, ``user``), ``engines`` (each: ``index``, ``unit``, ``port``, ``cuda_visible_devices``,
``lmcache.env_file``, ``disk_dir``), ``lmcache_root`` and ``mount.path``; and ``host.data.kvpod_defer_restart``
(True: never restart here).

- The system user ``vllm.user`` (home ``/var/lib/<user>``).
- Per engine ``/etc/systemd/system/kvpod-vllm@<index>.service`` (a complete instance unit, no template):
  ``ExecStart=<executable> serve <model> --tensor-parallel-size N --gpu-memory-utilization F --max-model-len L
  --port <vllm.port + index> --kv-transfer-config '<json>' <extra_args>`` (each word quoted for systemd,
  ``%``/``$`` escaped), ``Environment=CUDA_VISIBLE_DEVICES=<its GPUs>``, ``EnvironmentFile=`` its LMCache env
  file, ``User=``, ``RequiresMountsFor=`` the mount, ``After=`` the mount and ``kvpod-nvme-connect.service``,
  ``Restart=on-failure``, ``LimitMEMLOCK=infinity``, ``WantedBy=multi-user.target``. Each engine is its own
  process with its own LMCache (LMCache holds one engine per process), restartable alone.
- ``/usr/local/sbin/kvpod-lmcache-clean`` (:data:`CLEAN_SCRIPT`), run as root before every start of an engine
  (``ExecStartPre=+<script> engine<index>``): LMCache's local disk backend keeps its index in memory only, so
  the files an earlier run left would never be read or evicted. The script removes from the disk-tier root
  ``<mount>/lmcache`` what belongs to no planned engine, and empties the engine's directory, only while the
  mount is mounted (``mountpoint -q``; it fails otherwise, and vLLM does not start), never leaving that
  filesystem or following a link (``find -xdev ... -delete`` from inside a directory entered with ``cd -P``
  and checked with ``pwd -P``).
- Retired: ``kvpod-vllm.service`` and ``/etc/kvpod/lmcache.{env,yaml}`` (the single engine of earlier
  releases) and the units and LMCache files of engines no longer planned (fewer engines after a spec edit):
  stopped, disabled, removed. When one of them is running and the restart is deferred, the rollout retires it
  (:func:`retire`, called by the vllm restart role) and starts the engines: one restart per node.
- With Hugging Face settings (``vllm.hf_env``: the token, ``HF_HOME``, offline mode), ``vllm.hf_env_file``
  (``/etc/kvpod/vllm-hf.env``) holds them, ``0640 root:<vLLM user's group>`` (the token is a credential:
  plans, diffs, reports and logs show it redacted), and the unit loads it with a second ``EnvironmentFile=``;
  without them the file is removed. ``vllm.weights_cache_dir`` (``HF_HOME``) is owned by the vLLM user.
- ``daemon-reload`` only when a unit file changed; each engine enabled and started.
- An engine is restarted only when its running unit, its env file, its LMCache YAML or the Hugging Face env
  file changed, or the installation changed (``restart_on``). With ``kvpod_defer_restart`` the restart is skipped and
  recorded instead, per engine, in the role's last step (``vLLM restarts``), whose result
  :func:`deploy.operations.restart.restart_pending` reads, for restarts rolled out in batches.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdStatus

from deploy.encode import unit_argv
from deploy.facts.snapshot import Read
from deploy.hostdata import host_data
from deploy.names import (
    CONNECT_UNIT,
    KVPOD_ETC,
    LMCACHE_CLEAN_SCRIPT,
    LMCACHE_ENV_FILE,
    LMCACHE_YAML_FILE,
    MAX_ENGINES,
    SYSTEMD_DIR,
    VLLM_HF_ENV_FILE,
    VLLM_UNIT,
    engine_file,
    engine_unit,
)
from deploy.operations.bundle_steps import (
    role_steps,
)
from deploy.operations.reads import Reads, absent_file_reads, unit_reads
from deploy.operations.restart import PendingRestart, decide_restart
from deploy.operations.steps import (
    Results,
    Steps,
    absent_file_step,
    after,
    choice,
    directory_step,
    reads_of,
    reload_step,
    run_steps,
    services_step,
    step,
)
from deploy.operations.storage import mount_unit_name
from deploy.plan import EnginePlan, NodePlan
from deploy.secrets import reveal
from roles._common import rendered_step, service_user_step
from roles.lmcache import SECRET_FILE_MODE, cache_dir, restart_key, settings_dir
from roles.vllm_install import INSTALL_KEY

CLEAN_SCRIPT = LMCACHE_CLEAN_SCRIPT
MOUNT_CHECK = ["mountpoint", "-q"]


def exec_start_argv(plan: NodePlan, engine: EnginePlan | None = None) -> list[str]:
    """The argv of an engine's ``ExecStart=`` (engine 0 when none is given)."""
    v = plan.vllm
    e = engine or plan.engines[0]
    args = [
        v.executable,
        "serve",
        v.model,
        "--tensor-parallel-size",
        str(v.tensor_parallel_size),
        "--gpu-memory-utilization",
        str(v.gpu_memory_utilization),
        "--max-model-len",
        str(v.max_model_len),
        "--port",
        str(e.port),
        "--kv-transfer-config",
        v.kv_transfer_config,
        *v.extra_args,
    ]
    return args


def exec_start(plan: NodePlan, engine: EnginePlan | None = None) -> str:
    """An engine's ``ExecStart=`` value."""
    return unit_argv(exec_start_argv(plan, engine))


def clean_argv(engine: EnginePlan) -> list[str]:
    """The argv of an engine's ``ExecStartPre=+``: the cleaner with the engine's directory name."""
    return [CLEAN_SCRIPT, posixpath.basename(engine.disk_dir)]


def retired_units(engines: int) -> list[str]:
    """vLLM units that no longer belong on a node of ``engines`` engines: the single engine of earlier releases,
    engines beyond those."""
    return [VLLM_UNIT, *(engine_unit(i) for i in range(engines, MAX_ENGINES))]


def retired_files(engines: int) -> list[str]:
    """LMCache files that no longer belong on a node of ``engines`` engines: the single engine's, and those of
    engines beyond those."""
    old = [f"{KVPOD_ETC}/{LMCACHE_ENV_FILE}", f"{KVPOD_ETC}/{LMCACHE_YAML_FILE}"]
    beyond = [engine_file(i, suffix) for i in range(engines, MAX_ENGINES) for suffix in ("env", "yaml")]
    return [*old, *beyond]


def hf_env_lines(plan: NodePlan) -> dict[str, str]:
    """The Hugging Face env file's variables as they must arrive (the token revealed; the template encodes them)."""
    return {key: reveal(value) for key, value in plan.vllm.hf_env.items()}


def hf_steps(plan: NodePlan) -> Steps:
    """The weights cache, and the Hugging Face env file (or its removal), kept as ``hf``."""
    v = plan.vllm
    out = []
    if v.weights_cache_dir:
        out.append(directory_step("Hugging Face cache", v.weights_cache_dir, user=v.user, group=v.user, mode="750"))
    if not v.hf_env_file:
        return [*out, absent_file_step("no Hugging Face env file", VLLM_HF_ENV_FILE, keep="hf")]
    if posixpath.dirname(v.hf_env_file) == KVPOD_ETC:
        out.append(settings_dir(v.user))
    hf_file = rendered_step(
        "Hugging Face env file",
        "vllm",
        "vllm-hf.env.j2",
        v.hf_env_file,
        keep="hf",
        mode=SECRET_FILE_MODE,
        user="root",
        group=v.user,
        env=hf_env_lines(plan),
    )
    return [*out, hf_file]


def clean_script_vars(plan: NodePlan, mount_check: list[str] = MOUNT_CHECK) -> dict:
    """Variables of ``kvpod-lmcache-clean.j2`` (the template shell-quotes them): the disk-tier root, the mount it
    must lie on, the planned engines' directory names in it, their owner, and the argv that tells whether the
    mount is mounted (given the mount path as last word)."""
    return {
        "mount_path": plan.mount.path,
        "root": plan.lmcache_root,
        "engines": [posixpath.basename(cache_dir(e.lmcache)) for e in plan.engines],
        "owner": f"{plan.vllm.user}:{plan.vllm.user}",
        "mount_check": mount_check,
    }


def present_retired_units(plan: NodePlan) -> list[str]:
    """The retired units still installed on the host (their unit file is there)."""
    return [u for u in retired_units(len(plan.engines)) if host.get_fact(File, path=f"{SYSTEMD_DIR}/{u}")]


def running_retired_units(plan: NodePlan) -> list[str]:
    """The retired units still running on the host."""
    return [u for u in present_retired_units(plan) if host.get_fact(SystemdStatus, services=[u]).get(u, False)]


def retired_unit_reads(plan: NodePlan) -> Reads:
    """What :func:`running_retired_units` reads in the snapshot: whether each retired unit is installed, and the
    state of the single engine of earlier releases (on every node upgraded from them); a retired engine unit,
    installed only after a spec edit took engines away, is read live."""
    units = retired_units(len(plan.engines))
    return [*(Read.of(File, path=f"{SYSTEMD_DIR}/{u}") for u in units), *unit_reads(VLLM_UNIT)[:1]]


def _on_host(path: str) -> Callable[[], bool]:
    return lambda: bool(host.get_fact(File, path=path))


def retire_steps(plan: NodePlan) -> Steps:
    """Stop, disable and remove the retired units and LMCache files that are on the host; the unit file removals
    are kept as ``retired`` (``daemon-reload`` when one changed)."""
    return _retire_steps(len(plan.engines))


@functools.cache
def _retire_steps(engines: int) -> Steps:
    """:func:`retire_steps` of a node with ``engines`` engines (what is retired depends on their number only)."""
    from roles.node_release import unit_retired

    out: list = []
    for unit in retired_units(engines):
        unit_file = f"{SYSTEMD_DIR}/{unit}"
        retired = step(unit_retired, unit_reads(unit), name=f"{unit} stopped and disabled (retired)", unit=unit)
        removed = absent_file_step(f"{unit} removed (retired)", unit_file, keep="retired")
        # the single engine of earlier releases is on every node upgraded from them: its reads go in the snapshot
        present = choice(_on_host(unit_file), absent_file_reads(unit_file), [retired, removed], (), unit == VLLM_UNIT)
        out.append(present)
    for path in retired_files(engines):
        removed = absent_file_step(f"{path} removed (retired)", path)
        out.append(choice(_on_host(path), absent_file_reads(path), then=[removed]))
    return tuple(out)


def retire(plan: NodePlan) -> list:
    """:func:`retire_steps`, run; returns the unit file removals."""
    return run_steps(retire_steps(plan)).get("retired", [])


def engine_steps(plan: NodePlan, defer: bool, retire: Steps, blocked: bool) -> Steps:
    """The ``retire`` steps (unless ``blocked``: the rollout retires those units), the cleaner, the Hugging Face
    settings, each engine's unit file and service, then the restart decision."""
    v = plan.vllm
    out: list = [] if blocked else list(retire)
    # the disk-tier cleaner each engine's unit runs before every start (ExecStartPre=+CLEAN_SCRIPT engine<i>)
    out.append(
        rendered_step(
            "LMCache disk-tier cleaner",
            "vllm",
            "kvpod-lmcache-clean.j2",
            CLEAN_SCRIPT,
            mode="755",
            **clean_script_vars(plan),
        )
    )
    out += hf_steps(plan)
    out += [
        rendered_step(
            f"{e.unit}",
            "vllm",
            "kvpod-vllm.service.j2",
            f"{SYSTEMD_DIR}/{e.unit}",
            keep=f"unit@{e.index}",
            index=e.index,
            model=v.model,
            run_as=v.user,
            cuda_visible_devices=e.cuda_visible_devices,
            env_file=e.lmcache.env_file,
            hf_env_file=v.hf_env_file,
            exec_start=exec_start_argv(plan, e),
            mount_path=plan.mount.path,
            mount_unit=mount_unit_name(plan.mount.path),
            connect_unit=CONNECT_UNIT,
            clean_argv=clean_argv(e),
        )
        for e in plan.engines
    ]
    out.append(reload_step(when=after(*(f"unit@{e.index}" for e in plan.engines), "retired")))
    decision = PendingRestart(force=blocked)
    names = ", ".join(e.unit for e in plan.engines)
    out.append(
        services_step(
            f"{names} running" if not blocked else f"{names} enabled (started by the rollout)",
            [e.unit for e in plan.engines],
            running=not blocked,
            restart_when={
                e.unit: after(f"unit@{e.index}", "hf", restart_key(e.index), INSTALL_KEY) for e in plan.engines
            },
            defer_restart=defer,
            pending=decision,
        )
    )
    return [*out, step(decide_restart, [], decision=decision)]


def steps(plan: NodePlan, defer: bool = False) -> Steps:
    """The vLLM user, then the engines (:func:`engine_steps`), blocked when restarts are deferred and a retired
    unit still runs: it holds the GPUs and the port of the engines, so the rollout stops it and starts the
    engines (one restart of the node); otherwise it goes now."""
    retire = retire_steps(plan)
    blocked = choice(
        lambda: defer and bool(running_retired_units(plan)),
        retired_unit_reads(plan),
        then=engine_steps(plan, defer, retire, blocked=True),
        otherwise=engine_steps(plan, defer, retire, blocked=False),
    )
    return [service_user_step(plan.vllm.user), blocked]


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("vllm")
def vllm(
    restart_on: list | None = None, engine_restart_on: dict[int, list] | None = None, results: Results | None = None
) -> None:
    """The vLLM user and each engine's unit, running (the files in one bundle, unless ``results`` holds the node's
    bundle already); an engine is restarted when its unit, its ``engine_restart_on[index]`` operations or the
    shared ``restart_on`` operations changed."""
    given = {restart_key(i): list(ops) for i, ops in (engine_restart_on or {}).items()}
    todo, base = role_steps(steps(host_data().node, host_data().defer_restart), results)
    run_steps(todo, {**base, **given, INSTALL_KEY: list(restart_on or [])})
