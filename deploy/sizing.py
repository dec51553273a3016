"""Capacity sizing: KV bytes per token, VRAM left for KV pages, sessions per tier, the fleet table.

Units follow the reference architecture: GB = 10^9 bytes. A 70B model in fp16 is 140 GB of weights;
4 x 80 GB at 0.90 utilisation leaves 4 * 80 * 0.90 - 140 = 148 GB for KV pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deploy.spec import ModelShape, PodSpec

GB = 1e9

# Published architectures (config.json of each model family): layers, KV heads (GQA), head dim.
KNOWN_MODELS: dict[str, ModelShape] = {
    "llama-70b": ModelShape(layers=80, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=70),
    "llama-8b": ModelShape(layers=32, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=8),
    "llama-405b": ModelShape(layers=126, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=405),
}
_FAMILY = re.compile(r"llama.*?[-_](\d+)b\b", re.IGNORECASE)


def model_shape(spec: PodSpec) -> ModelShape | None:
    """The spec's ``vllm.model_shape``, else the built-in shape of a known model family, else None."""
    if spec.vllm.model_shape is not None:
        return spec.vllm.model_shape
    m = _FAMILY.search(spec.vllm.model)
    return KNOWN_MODELS.get(f"llama-{m.group(1)}b") if m else None


@dataclass(frozen=True)
class NodeSizing:
    kv_bytes_per_token: int
    session_tokens: int
    session_gb: float
    weights_gb: float
    vram_total_gb: float
    kv_pages_gb: float
    sessions_vram: int
    sessions_dram: int
    sessions_disk: int
    cpu_budget_gb: float
    disk_budget_gb: float


@dataclass(frozen=True)
class FleetRow:
    drives: int
    nodes: int
    gpus: int
    sessions: int


def kv_bytes_per_token(shape: ModelShape) -> int:
    """K and V, for every layer and KV head: 2 * layers * kv_heads * head_dim * dtype bytes."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * shape.dtype_bytes


def size_node(spec: PodSpec, shape: ModelShape, gpus: int) -> NodeSizing:
    per_token = kv_bytes_per_token(shape)
    tokens = spec.vllm.max_model_len
    session_gb = per_token * tokens / GB
    weights = shape.params_billion * shape.dtype_bytes
    vram = gpus * spec.vllm.gpu_memory_gb
    kv_pages = max(0.0, vram * spec.vllm.gpu_memory_utilization - weights)
    return NodeSizing(
        kv_bytes_per_token=per_token,
        session_tokens=tokens,
        session_gb=session_gb,
        weights_gb=weights,
        vram_total_gb=vram,
        kv_pages_gb=kv_pages,
        sessions_vram=int(kv_pages // session_gb),
        sessions_dram=int(spec.kvcache.cpu_budget_gb // session_gb),
        sessions_disk=int(spec.kvcache.disk_budget_gb // session_gb),
        cpu_budget_gb=spec.kvcache.cpu_budget_gb,
        disk_budget_gb=spec.kvcache.disk_budget_gb,
    )


def fleet_table(gpus_per_node: int, sessions_per_node: int, drives: list[int] | None = None) -> list[FleetRow]:
    """One drive per node: drives -> nodes -> GPUs -> sessions at the validated per-node concurrency."""
    return [
        FleetRow(drives=d, nodes=d, gpus=d * gpus_per_node, sessions=d * sessions_per_node)
        for d in (drives or [1, 6, 12, 24])
    ]
