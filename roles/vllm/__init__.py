"""Role ``vllm``: vLLM with LMCache as a systemd service.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``vllm`` (``executable``, ``model``,
``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``port``, ``kv_transfer_config``,
``extra_args``, ``user``, ``unit``), ``lmcache.env_file`` and ``mount.path``; and
``host.data.kvpod_defer_restart`` (True: never restart here).

- The system user ``vllm.user`` (home ``/var/lib/<user>``).
- ``/etc/systemd/system/<unit>`` (``kvpod-vllm.service``): ``ExecStart=<executable> serve <model>
  --tensor-parallel-size N --gpu-memory-utilization F --max-model-len L --port P --kv-transfer-config '<json>'
  <extra_args>`` (each word quoted for systemd, ``%``/``$`` escaped), ``EnvironmentFile=`` the LMCache env
  file, ``User=``, ``RequiresMountsFor=`` the mount, ``After=`` the mount and ``kvpod-nvme-connect.service``,
  ``Restart=on-failure``, ``LimitMEMLOCK=infinity``, ``WantedBy=multi-user.target``.
- ``/usr/local/sbin/kvpod-lmcache-clean`` (:data:`CLEAN_SCRIPT`), run as root before every start
  (``ExecStartPre=+``): LMCache's local disk backend keeps its index in memory only, so the files an earlier
  run left in the disk-tier directory would never be read or evicted. The script empties that directory
  only (``find -xdev -mindepth 1 -delete``: no symbolic link followed, no other filesystem entered), only
  while the mount is mounted (``mountpoint -q``; it fails otherwise, and vLLM does not start), and
  recreates it owned by the vLLM user. It works from inside the directory it checked (``cd -P``, then
  ``pwd -P`` must be the expected path; ``find .``, ``chown .``, ``chmod .``), so a link swapped in for the
  directory is never followed as root.
- With Hugging Face settings (``vllm.hf_env``: the token, ``HF_HOME``, offline mode), ``vllm.hf_env_file``
  (``/etc/kvpod/vllm-hf.env``) holds them, ``0640 root:<vLLM user's group>`` (the token is a credential:
  plans, diffs, reports and logs show it redacted), and the unit loads it with a second ``EnvironmentFile=``;
  without them the file is removed. ``vllm.weights_cache_dir`` (``HF_HOME``) is owned by the vLLM user.
- ``daemon-reload`` only when the unit changed; enabled and started.
- Restarted only when a running service's unit, its Hugging Face env file, the LMCache env file or the LMCache
  YAML changed (``restart_on``: what the lmcache role returned). With ``kvpod_defer_restart`` the restart is skipped and
  ``host.data.kvpod_restart_pending`` is True instead (False otherwise), for restarts rolled out in batches.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from deploy.encode import unit_argv
from deploy.facts.snapshot import Read
from deploy.facts.users import PasswdEntry
from deploy.hostdata import host_data
from deploy.names import CONNECT_UNIT, LMCACHE_CLEAN_SCRIPT, RESTART_PENDING_KEY, SYSTEMD_DIR, VLLM_HF_ENV_FILE
from deploy.operations import changed, units
from deploy.operations.reads import Reads, absent_file_reads, directory_reads, file_reads, unit_reads
from deploy.operations.storage import mount_unit_name
from deploy.plan import NodePlan
from deploy.secrets import reveal
from roles._common import rendered_file, service_user
from roles.lmcache import SECRET_FILE_MODE, cache_dir

CLEAN_SCRIPT = LMCACHE_CLEAN_SCRIPT
MOUNT_CHECK = ["mountpoint", "-q"]


def exec_start_argv(plan: NodePlan) -> list[str]:
    """The argv of the unit's ``ExecStart=``."""
    v = plan.vllm
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
        str(v.port),
        "--kv-transfer-config",
        v.kv_transfer_config,
        *v.extra_args,
    ]
    return args


def exec_start(plan: NodePlan) -> str:
    """The unit's ``ExecStart=`` value."""
    return unit_argv(exec_start_argv(plan))


def reads(plan: NodePlan) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    v = plan.vllm
    return [
        Read.of(PasswdEntry, user=v.user),
        *file_reads(CLEAN_SCRIPT),
        *(file_reads(v.hf_env_file) if v.hf_env_file else absent_file_reads(VLLM_HF_ENV_FILE)),
        *(directory_reads(v.weights_cache_dir) if v.weights_cache_dir else []),
        *file_reads(f"{SYSTEMD_DIR}/{v.unit}"),
        *unit_reads(v.unit),
    ]


def hf_env_lines(plan: NodePlan) -> dict[str, str]:
    """The Hugging Face env file's variables as they must arrive (the token revealed; the template encodes them)."""
    return {key: reveal(value) for key, value in plan.vllm.hf_env.items()}


def hf_settings(plan: NodePlan):
    """The Hugging Face env file (or its removal) and the weights cache; returns the file's operation."""
    v = plan.vllm
    if v.weights_cache_dir:
        files.directory(name="Hugging Face cache", path=v.weights_cache_dir, user=v.user, group=v.user, mode="750")
    if not v.hf_env_file:
        return files.file(name="no Hugging Face env file", path=VLLM_HF_ENV_FILE, present=False)
    return rendered_file(
        "Hugging Face env file",
        "vllm",
        "vllm-hf.env.j2",
        v.hf_env_file,
        mode=SECRET_FILE_MODE,
        user="root",
        group=v.user,
        env=hf_env_lines(plan),
    )


def clean_script_vars(plan: NodePlan, mount_check: list[str] = MOUNT_CHECK) -> dict:
    """Variables of ``kvpod-lmcache-clean.j2`` (the template shell-quotes them): the disk-tier directory, the
    mount it must lie on, its owner, and the argv that tells whether the mount is mounted (given the mount
    path as last word)."""
    return {
        "mount_path": plan.mount.path,
        "cache_dir": cache_dir(plan.lmcache),
        "owner": f"{plan.vllm.user}:{plan.vllm.user}",
        "mount_check": mount_check,
    }


@deploy("vllm")
def vllm(restart_on: list | None = None) -> None:
    """The vLLM user and unit, running; restarted when the unit or ``restart_on`` operations changed."""
    plan = host_data().node
    v = plan.vllm
    setattr(host.data, RESTART_PENDING_KEY, False)

    service_user(v.user)
    # the disk-tier cleaner the unit runs before every start (ExecStartPre=+CLEAN_SCRIPT)
    rendered_file(
        "LMCache disk-tier cleaner",
        "vllm",
        "kvpod-lmcache-clean.j2",
        CLEAN_SCRIPT,
        mode="755",
        **clean_script_vars(plan),
    )
    hf = hf_settings(plan)
    unit = rendered_file(
        f"{v.unit}",
        "vllm",
        "kvpod-vllm.service.j2",
        f"{SYSTEMD_DIR}/{v.unit}",
        model=v.model,
        run_as=v.user,
        env_file=plan.lmcache.env_file,
        hf_env_file=v.hf_env_file,
        exec_start=exec_start_argv(plan),
        mount_path=plan.mount.path,
        mount_unit=mount_unit_name(plan.mount.path),
        connect_unit=CONNECT_UNIT,
        clean_script=CLEAN_SCRIPT,
    )
    units.daemon_reload(name="systemd daemon-reload", when=changed(unit))
    units.service(
        name=f"{v.unit} running",
        unit=v.unit,
        enabled=True,
        running=True,
        restart_when=changed(unit, hf, *(restart_on or [])),
        defer_restart=host_data().defer_restart,
        pending_key=RESTART_PENDING_KEY,
    )
