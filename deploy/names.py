"""Every name kvpod gives something on a host, and the byte units: defined once, for the roles and the
verify suite alike (which check what the roles made under these names).

Byte units: drive capacities are decimal gigabytes (``GB``, 10^9 bytes, as drives are sold and as the spec's
``capacity_gb`` says); LMCache's budgets are gibibytes (``GIB``, 2^30 bytes: LMCache multiplies
``max_local_cpu_size`` and ``max_local_disk_size`` by ``1024**3``).
"""

from __future__ import annotations

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
GB = 1_000_000_000

# systemd
SYSTEMD_DIR = "/etc/systemd/system"
NETWORKD_DIR = "/etc/systemd/network"
NETWORKD_PREFIX = "10-kvpod-"  # <NETWORKD_DIR>/10-kvpod-<interface>.network / .netdev
VLLM_UNIT = "kvpod-vllm.service"  # the single engine of earlier releases: retired by the migration to engines
VLLM_ENGINE_UNIT = "kvpod-vllm@{index}.service"  # one unit per engine (an instance file, not a template)
VLLM_UNITS_PATTERN = "kvpod-vllm*.service"  # every loaded vLLM unit, old or engine (for `systemctl stop`)
MAX_ENGINES = 16  # at most one engine per GPU, and a node has at most 16 GPUs (spec: gpus <= 16)
CONNECT_UNIT = "kvpod-nvme-connect.service"
RXE_UNIT = "kvpod-rxe.service"
DCB_UNIT = "kvpod-dcb.service"
DCB_SCRIPT = "/usr/local/sbin/kvpod-dcb"
NVMET_RESTORE_UNIT = "kvpod-nvmet.service"
ADDRESS_WAIT_SECONDS = 90  # how long a boot-time unit waits for the fabric address it needs

# scripts and files
CONNECT_SCRIPT = "/usr/local/sbin/kvpod-nvme-connect"
LMCACHE_CLEAN_SCRIPT = "/usr/local/sbin/kvpod-lmcache-clean"
NVMET_RESTORE_SCRIPT = "/usr/local/sbin/kvpod-nvmet-restore"
KVPOD_ETC = "/etc/kvpod"
VLLM_HF_ENV_FILE = f"{KVPOD_ETC}/vllm-hf.env"  # HF_TOKEN, HF_HOME, offline mode: vLLM's Hugging Face environment
LMCACHE_ENV_FILE = "lmcache.env"  # the single engine of earlier releases, under KVPOD_ETC
LMCACHE_YAML_FILE = "lmcache.yaml"
ENGINE_FILE = "lmcache@{index}.{suffix}"  # an engine's LMCache env file (env) and YAML config (yaml), under KVPOD_ETC
LMCACHE_DIR = "lmcache"  # under the KV-cache mount: one directory per engine inside it (engine<index>)
SYSCTL_FILE = "/etc/sysctl.d/90-kvpod-rdma.conf"
NETPLAN_FILE = "/etc/netplan/60-kvpod.yaml"
HOSTNQN_FILE = "/etc/nvme/hostnqn"
HOSTID_FILE = "/etc/nvme/hostid"
WHEELHOUSE_DEST = "/var/cache/kvpod/wheelhouse"
NVMET_ROOT = "/sys/kernel/config/nvmet"

# kernel modules: loaded now and at boot, each group from its own <MODULES_LOAD_DIR>/<group>.conf
MODULES_LOAD_DIR = "/etc/modules-load.d"
FABRIC_MODULES = "kvpod-fabric"  # 8021q
SOFT_ROCE_MODULES = "kvpod-rdma"  # rdma_rxe
NVME_MODULES = "kvpod-nvme"  # the NVMe transport module
NVMET_MODULES = "kvpod-nvmet"  # nvmet and its transports
VLAN_MODULE = "8021q"
SOFT_ROCE_MODULE = "rdma_rxe"
TRANSPORT_MODULES = {"rdma": "nvme_rdma", "tcp": "nvme_tcp"}


def modules_load_path(group: str) -> str:
    """The file that loads a group of modules at boot (``/etc/modules-load.d/kvpod-nvme.conf``)."""
    return f"{MODULES_LOAD_DIR}/{group}.conf"


# host data: what kvpod puts in each pyinfra host's data for the roles (see deploy.hostdata)
NODE_KEY = "kvpod_node"  # NodePlan
TARGET_KEY = "kvpod_targets"  # the TargetPlans of the enclosures one target host serves
SWITCH_KEY = "kvpod_switch"  # SwitchPlan
NAME_KEY = "kvpod_name"  # the plan's name of a target host (its first enclosure), for its results
RELEASE_KEY = "kvpod_release"  # ReleaseRequest
BENCH_KEY = "kvpod_bench"  # BenchJob
WIPE_KEY = "kvpod_wipe"  # True: this node's drive may be reformatted
DEFER_RESTART_KEY = "kvpod_defer_restart"  # True: leave vLLM's restart to the rollout
RESTART_ENGINES_KEY = "kvpod_restart_engines"  # units of a node the rollout restarts in this batch
DRILL_KEY = "kvpod_drill"  # DrillStep


def engine_unit(index: int) -> str:
    """The systemd unit of engine ``index`` (``kvpod-vllm@0.service``)."""
    return VLLM_ENGINE_UNIT.format(index=index)


def engine_file(index: int, suffix: str) -> str:
    """Engine ``index``'s LMCache env file (``suffix`` env) or YAML config (yaml): ``/etc/kvpod/lmcache@0.env``."""
    return f"{KVPOD_ETC}/{ENGINE_FILE.format(index=index, suffix=suffix)}"


def engine_dir_name(index: int) -> str:
    """The name of engine ``index``'s disk-tier directory inside ``<mount>/lmcache`` (``engine0``)."""
    return f"engine{index}"
