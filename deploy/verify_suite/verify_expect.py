"""What the plan expects of a live host, derived only from the plan, and the assertion helpers of the suite.

The functions here are pure: a :class:`~deploy.plan.NodePlan` in, the items the suite checks out. Each
``(key, value)`` pair becomes one parametrised test case, named ``<node>-<key>``.

A failing check raises ``AssertionError("<what>: expected <expected>, found <found>")``; ``kvpod verify``
reads *expected* and *found* back from that one line (:func:`deploy.verify_runner.split_message`).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from verify_script import NodeReads, TargetReads

from deploy.names import (  # noqa: F401  (the suite's tests import these from here)
    CONNECT_UNIT,
    GIB,
    HOSTID_FILE,
    HOSTNQN_FILE,
    MODULES_LOAD_DIR,
    NVMET_ROOT,
    SOFT_ROCE_MODULE,
    SYSCTL_FILE,
    TRANSPORT_MODULES,
    VLAN_MODULE,
)
from deploy.nvme_settings import ATTRIBUTES
from deploy.plan import USAGE_TRACKING_OFF, EnginePlan, NodePlan, Plan, RoceQosPlan, TargetPortalPlan
from deploy.secrets import display, is_display

DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"
CONNECTOR_MODULE = "lmcache.integration.vllm.vllm_v1_adapter"  # what vLLM's LMCacheConnectorV1 imports
# LMCache's compiled CUDA ops: LMCache falls back to plain torch (logging only a warning) when they do not
# load, so the check imports the extension itself. Only a node with an NVIDIA GPU can load it.
GPU_OPS_MODULE = "lmcache.cuda_ops"
GPU_OPS_NOT_APPLICABLE = "not-applicable"  # what the state read prints on a node without an NVIDIA GPU
PERSISTENT_UNIT_STATES = ("enabled", "generated")  # generated: a mount unit from /etc/fstab, also kept at boot
LMCACHE_ENV = {
    "chunk_size": "LMCACHE_CHUNK_SIZE",
    "local_cpu": "LMCACHE_LOCAL_CPU",
    "max_local_cpu_size": "LMCACHE_MAX_LOCAL_CPU_SIZE",
    "local_disk": "LMCACHE_LOCAL_DISK",
    "max_local_disk_size": "LMCACHE_MAX_LOCAL_DISK_SIZE",
}
CONFIG_FILE_VAR = "LMCACHE_CONFIG_FILE"


def module_name(name: str) -> str:
    """A kernel module name as ``lsmod`` and ``/sys/module`` spell it (``nvme-rdma`` -> ``nvme_rdma``)."""
    return name.strip().replace("-", "_")


def kernel_modules(node: NodePlan) -> list[str]:
    """Modules a node needs loaded and persisted: the NVMe-oF transport, fabrics core, 802.1Q VLANs, and
    soft-RoCE (``rdma_rxe``) when the fabric NIC has no RDMA hardware."""
    transport = TRANSPORT_MODULES.get(node.namespace.transport, f"nvme_{node.namespace.transport}")
    soft_roce = [SOFT_ROCE_MODULE] if node.fabric.rdma == "soft-roce" and node.namespace.transport == "rdma" else []
    return [transport, "nvme_fabrics", VLAN_MODULE, *soft_roce]


def sysctls(node: NodePlan) -> dict[str, int]:
    """Socket buffer sysctls sized for the fabric."""
    size = node.fabric.socket_buffer_bytes
    return {"net.core.rmem_max": size, "net.core.wmem_max": size}


def ping_size(node: NodePlan) -> int:
    """ICMP payload that fills one planned MTU exactly (20 bytes IPv4 header + 8 bytes ICMP header)."""
    return node.fabric.mtu - 28


def engine_of(node: NodePlan, engine: EnginePlan | None) -> EnginePlan:
    """``engine``, or the node's first engine."""
    return engine if engine is not None else node.engines[0]


def lmcache_settings(node: NodePlan, engine: EnginePlan | None = None) -> dict[str, Any]:
    """An engine's LMCache settings per tensor-parallel rank, by LMCache key (extra keys included)."""
    lm = engine_of(node, engine).lmcache
    return {
        "chunk_size": lm.chunk_size,
        "local_cpu": lm.local_cpu,
        "max_local_cpu_size": lm.max_local_cpu_size,
        "local_disk": lm.local_disk,
        "max_local_disk_size": lm.max_local_disk_size,
        **lm.extra,
    }


def env_var(key: str) -> str:
    """The environment variable LMCache reads a setting from (``chunk_size`` -> ``LMCACHE_CHUNK_SIZE``)."""
    return LMCACHE_ENV.get(key, f"LMCACHE_{key.upper()}")


def lmcache_environment(node: NodePlan, engine: EnginePlan | None = None) -> dict[str, Any]:
    """Variables an engine's process must see: its GPUs, every setting (env mode) or the config file path (yaml
    mode), and LMCache's usage reporting turned off unless the plan allows it."""
    e = engine_of(node, engine)
    lm = e.lmcache
    wanted: dict[str, Any] = {"CUDA_VISIBLE_DEVICES": e.cuda_visible_devices}
    if lm.config_mode == "yaml":
        wanted[CONFIG_FILE_VAR] = lm.config_file
    else:
        wanted.update({env_var(key): value for key, value in lmcache_settings(node, e).items()})
    if not lm.telemetry:
        wanted.update(USAGE_TRACKING_OFF)
    wanted["PYTHONHASHSEED"] = "0"
    return wanted


def local_disk_dir(node: NodePlan, engine: EnginePlan | None = None) -> str:
    """An engine's planned local disk directory: ``file:///mnt/kvcache/lmcache/engine0/`` ->
    ``/mnt/kvcache/lmcache/engine0``."""
    path = engine_of(node, engine).lmcache.local_disk.removeprefix("file://")
    return path.rstrip("/") or "/"


def vllm_arguments(node: NodePlan, engine: EnginePlan | None = None) -> dict[str, Any]:
    """The serve arguments vLLM must run with: ``model`` (positional) and each planned flag with its value.

    Values keep their type so that ``0.9`` matches ``0.90`` and the kv-transfer config matches as JSON.
    """
    v = node.vllm
    return {
        "model": v.model,
        "--tensor-parallel-size": v.tensor_parallel_size,
        "--gpu-memory-utilization": v.gpu_memory_utilization,
        "--max-model-len": v.max_model_len,
        "--port": engine_of(node, engine).port,
        "--kv-transfer-config": json.loads(v.kv_transfer_config),
    }


def enclosure_portals(node: NodePlan, plan: Plan) -> list[TargetPortalPlan]:
    """The portals of the node's enclosure that offer its transport (each one asked for a discovery log)."""
    return [
        p
        for t in plan.targets
        if t.name == node.namespace.enclosure
        for p in t.portals
        if node.namespace.transport in p.transports
    ]


def credential_files_of(node: NodePlan) -> list[str]:
    """The files that may carry credentials (each engine's LMCache env file and YAML config): mode and owner
    checked."""
    out = []
    for e in node.engines:
        lm = e.lmcache
        out += [lm.env_file, *([lm.config_file] if lm.config_mode == "yaml" and lm.config_file else [])]
    return out


def credential_file_owner(node: NodePlan) -> tuple[str, str, str]:
    """Their wanted ``(mode, user, group)``: ``640``, root, the vLLM user's group."""
    return ("640", "root", node.vllm.user)


def hf_env_files(node: NodePlan) -> list[str]:
    """The Hugging Face env file (the token, the cache, offline mode), when the plan has one."""
    return [node.vllm.hf_env_file] if node.vllm.hf_env_file else []


def hf_environment(node: NodePlan) -> dict[str, Any]:
    """The Hugging Face variables of vLLM (the token as its display: compared by digest)."""
    return dict(node.vllm.hf_env)


def token_file_mode_ok(found: tuple[str, str, str] | None, user: str) -> bool:
    """The Hugging Face env file is 0640 or stricter (no bit beyond 0640), owned by root, group the vLLM user."""
    if found is None:
        return False
    mode, owner, group = found
    try:
        bits = int(mode, 8)
    except ValueError:
        return False
    return not bits & ~0o640 and owner == "root" and group == user


def weights_cache_dirs(node: NodePlan) -> list[str]:
    return [node.vllm.weights_cache_dir] if node.vllm.weights_cache_dir else []


def hub_cache_folder(model: str) -> str:
    """huggingface_hub's folder of a model repository in its cache: ``org/name`` -> ``models--org--name``."""
    return "models--" + model.replace("/", "--")


def model_config_pattern(node: NodePlan) -> str | None:
    """Offline, the file that shows the model's weights are on the node (a shell pattern): ``<path>/config.json``
    of a local model, ``<HF_HOME>/hub/models--ORG--NAME/snapshots/*/config.json`` of a hub id; None online."""
    v = node.vllm
    if not v.offline:
        return None
    if v.model.startswith("/"):
        return f"{v.model.rstrip('/')}/config.json"
    if not v.weights_cache_dir:
        return None
    return f"{v.weights_cache_dir}/hub/{hub_cache_folder(v.model)}/snapshots/*/config.json"


def offline_models(node: NodePlan) -> list[str]:
    return [node.vllm.model] if model_config_pattern(node) else []


def node_reads(node: NodePlan, plan: Plan) -> NodeReads:
    """What the state read of a node reads: the items of every check of the node, from the plan."""
    credential_files = [*credential_files_of(node), *hf_env_files(node), *weights_cache_dirs(node)]
    files = [SYSCTL_FILE, HOSTNQN_FILE, HOSTID_FILE, *credential_files_of(node), *hf_env_files(node)]
    pattern = model_config_pattern(node)
    return NodeReads(
        portals=tuple(dict.fromkeys(p.address for p in node.namespace.portals)),
        ping_size=ping_size(node),
        rdma=node.namespace.transport == "rdma",
        sysctls=tuple(sysctls(node)),
        files=tuple(dict.fromkeys(files)),
        modes=tuple(credential_files),
        modules=tuple(kernel_modules(node)),
        modules_load_dir=MODULES_LOAD_DIR,
        mount_path=node.mount.path,
        local_disk_dir=node.lmcache_root,
        user=node.vllm.user,
        engine_units=tuple(node.engine_units()),
        units=(CONNECT_UNIT,),
        health_urls=tuple(e.health_url for e in node.engines),
        models_urls=tuple(e.models_url for e in node.engines),
        engine_dirs=tuple(local_disk_dir(node, e) for e in node.engines),
        executable=node.vllm.executable,
        connector_module=CONNECTOR_MODULE,
        nvme_attributes=ATTRIBUTES,
        dcb=dcb_read(node),
        gpu_ops_module=GPU_OPS_MODULE,
        discoveries=tuple(
            dict.fromkeys((node.namespace.transport, p.address, p.trsvcid) for p in enclosure_portals(node, plan))
        ),
        model_files=(pattern,) if pattern else (),
    )


DCB_SETTINGS = ("dscp-trust", "pfc", "ecn")  # the host-side RoCE QoS checks, by name


def dcb_applicable(node: NodePlan) -> str | None:
    """Why the node's NIC takes no DCB settings (None when it does: a hardware RDMA NIC with RoCE QoS planned)."""
    if node.fabric.roce_qos is None:
        return "not applicable (no RoCE QoS planned)"
    if node.fabric.rdma == "soft-roce":
        return "not applicable (soft-RoCE)"
    return None


def lossless_settings(node: NodePlan, plan: Plan) -> tuple[RoceQosPlan | None, str]:
    """The RoCE QoS the node's NIC must match, and where it comes from: the switch the node is cabled to when
    that switch applies RoCE QoS (what it was given), else the pod's ``fabric.roce_qos``."""
    switch = next((sw for sw in plan.switches if sw.name == node.fabric.switch), None)
    if switch is not None and switch.roce is not None:
        return switch.roce, f"switch {switch.name}"
    return node.fabric.roce_qos, "fabric.roce_qos"


def dcb_read(node: NodePlan) -> tuple[str, int] | None:
    """(NIC, lossless priority) when the state read reads the NIC's DCB."""
    qos = node.fabric.roce_qos
    return (node.fabric.interface, qos.priority) if qos is not None and dcb_applicable(node) is None else None


def target_reads() -> TargetReads:
    return TargetReads(nvmet_root=NVMET_ROOT)


def argument_id(flag: str) -> str:
    """A test id part for a flag: ``--max-model-len`` -> ``max-model-len``."""
    return flag.lstrip("-")


def same_value(expected: Any, found: str | None) -> bool:
    """Whether a setting read as text means the planned value (numbers by value, booleans case-insensitively)."""
    if found is None:
        return False
    if is_display(expected):  # a secret: the plan holds only its digest
        return display(found) == expected
    if isinstance(expected, bool):
        return found.strip().lower() == str(expected).lower()
    if isinstance(expected, int | float):
        try:
            return float(found) == float(expected)
        except ValueError:
            return False
    if isinstance(expected, dict | list):
        try:
            return json.loads(found) == expected
        except ValueError:
            return False
    return found == str(expected)


def show(value: Any) -> str:
    """A value as one line for a failure message: strings quoted, sets sorted, dicts as JSON, None as ``nothing``."""
    if value is None:
        return "nothing"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(show(v) for v in sorted(value, key=str)) + "}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def fail(what: str, expected: Any, found: Any) -> NoReturn:
    """Fail the current check with the one-line message ``kvpod verify`` reports as expected vs found (a value
    found for a secret shown by its digest only)."""
    if is_display(expected) and isinstance(found, str) and not isinstance(found, Text):
        found = Text(display(found))
    raise AssertionError(f"{what}: expected {_text(expected)}, found {_text(found)}")


def expect(what: str, expected: Any, found: Any) -> None:
    """Fail unless ``found == expected``."""
    if found != expected:
        fail(what, expected, found)


class Text(str):
    """Text put into a failure message as it is (a description rather than a value)."""


def _text(value: Any) -> str:
    return str(value) if isinstance(value, Text) else show(value)
