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
VLLM_UNIT = "kvpod-vllm.service"
CONNECT_UNIT = "kvpod-nvme-connect.service"
RXE_UNIT = "kvpod-rxe.service"
NVMET_RESTORE_UNIT = "kvpod-nvmet.service"
ADDRESS_WAIT_SECONDS = 90  # how long a boot-time unit waits for the fabric address it needs

# scripts and files
CONNECT_SCRIPT = "/usr/local/sbin/kvpod-nvme-connect"
LMCACHE_CLEAN_SCRIPT = "/usr/local/sbin/kvpod-lmcache-clean"
NVMET_RESTORE_SCRIPT = "/usr/local/sbin/kvpod-nvmet-restore"
KVPOD_ETC = "/etc/kvpod"
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
HEALTH_TIMEOUT_KEY = "kvpod_health_timeout"  # seconds a restarted vLLM has to answer its health check
RESTART_PENDING_KEY = "kvpod_restart_pending"  # set by the vllm role: a deferred restart is due
DRILL_KEY = "kvpod_drill"  # DrillStep
