"""Capacity sizing: KV bytes per token, VRAM left for KV pages, sessions per tier, the fleet table.

Every size is in GiB (2^30 bytes), the unit LMCache allocates in: it multiplies ``max_local_cpu_size`` and
``max_local_disk_size`` by ``1024**3``. So the budgets of the spec, the per-rank values of the plan, what
the env file says and what LMCache pins or fills are the same numbers. Model weights are counted as
``params_billion * 10^9 * dtype_bytes`` bytes (a 70B model in fp16: 140 * 10^9 bytes = 130.39 GiB); an
H100 has 80 GiB. The reference node: 4 x 80 GiB at 0.90 utilisation - 130.39 GiB = 157.61 GiB of KV pages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from deploy.capacity import GIB
from deploy.spec import ModelShape, PodSpec

# Published architectures (config.json of each model family): layers, KV heads (GQA), head dim.
KNOWN_MODELS: dict[str, ModelShape] = {
    "llama-70b": ModelShape(layers=80, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=70),
    "llama-8b": ModelShape(layers=32, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=8),
    "llama-405b": ModelShape(layers=126, kv_heads=8, head_dim=128, dtype_bytes=2, params_billion=405),
}
_FAMILY = re.compile(r"llama.*?[-_](\d+)b\b", re.IGNORECASE)
# LMCache's size settings are floats of GiB; kvpod writes them to 1/1000 GiB, rounded down so that the
# ranks of a node never allocate more than its budget.
PER_RANK_STEP = 1000


def model_shape(spec: PodSpec) -> ModelShape | None:
    """The spec's ``vllm.model_shape``, else the built-in shape of a known model family, else None."""
    if spec.vllm.model_shape is not None:
        return spec.vllm.model_shape
    m = _FAMILY.search(spec.vllm.model)
    return KNOWN_MODELS.get(f"llama-{m.group(1)}b") if m else None


def kv_layout(spec: PodSpec) -> str:
    """``gqa`` or ``mla``, from the model's shape (``gqa`` when kvpod does not know the model)."""
    shape = model_shape(spec)
    return shape.kv_layout if shape is not None else "gqa"


def lmcache_ranks(spec: PodSpec) -> int:
    """How many LMCache engines of a node hold KV, and so share its budgets.

    One per tensor-parallel rank, each holding its ranks' share of the KV heads. On an MLA model every rank
    has the same latent KV, and LMCache 0.5.6 stores it on the first rank only (``save_only_first_rank``,
    on by default when vLLM reports MLA): only that rank builds a storage manager, so it gets the whole
    budget. The other ranks build one too when ``use_layerwise`` is on or ``lookup_server_worker_ids`` /
    ``lmcache_worker_ids`` name them; kvpod then splits the budget over every rank, as for GQA.
    """
    tp = spec.vllm.tensor_parallel_size
    if kv_layout(spec) != "mla":
        return tp
    extra = spec.kvcache.lmcache_extra
    extra_config = extra.get("extra_config") if isinstance(extra.get("extra_config"), dict) else {}
    first_rank_only = bool(extra_config.get("save_only_first_rank", True))
    others_store = any(extra.get(key) for key in ("use_layerwise", "lookup_server_worker_ids", "lmcache_worker_ids"))
    return 1 if first_rank_only and not others_store else tp


def per_rank_gib(node_gib: float, ranks: int) -> float:
    """A node budget split over ``ranks`` engines, in GiB, rounded down to 1/1000 GiB."""
    return math.floor(round(node_gib * PER_RANK_STEP / ranks, 6)) / PER_RANK_STEP


def lmcache_bytes(size_gib: float) -> int:
    """The bytes LMCache allocates for a size setting (``int(size * 1024**3)``, as LMCache computes it)."""
    return int(size_gib * GIB)


def engines_of(spec: PodSpec, gpus: int) -> int:
    """How many vLLM engines a node of ``gpus`` GPUs runs: one per ``tensor_parallel_size`` GPUs (validation
    refuses a count that is not a multiple), so no GPU sits idle."""
    return max(1, gpus // spec.vllm.tensor_parallel_size)


def engine_budgets(spec: PodSpec, engines: int) -> tuple[float, float]:
    """``(cpu, disk)`` GiB of one engine: the node's budgets split evenly between its engines (to 1/1000 GiB,
    rounded down)."""
    return per_rank_gib(spec.kvcache.cpu_budget_gib, engines), per_rank_gib(spec.kvcache.disk_budget_gib, engines)


def lmcache_per_rank(spec: PodSpec, engines: int = 1) -> tuple[float, float]:
    """``(max_local_cpu_size, max_local_disk_size)`` of one LMCache engine (one tensor-parallel rank of one vLLM
    engine), in GiB: the node's budgets split over ``engines`` vLLM engines and their storing ranks."""
    ranks = lmcache_ranks(spec) * engines
    return per_rank_gib(spec.kvcache.cpu_budget_gib, ranks), per_rank_gib(spec.kvcache.disk_budget_gib, ranks)


@dataclass(frozen=True)
class NodeSizing:
    kv_layout: str
    kv_bytes_per_token: int
    session_tokens: int
    session_gib: float
    weights_gib: float
    vram_total_gib: float
    kv_pages_gib: float
    sessions_vram: int
    sessions_dram: int
    sessions_disk: int
    cpu_budget_gib: float
    disk_budget_gib: float
    lmcache_ranks: int  # per vLLM engine
    max_local_cpu_size: float  # GiB per engine, as the env file and YAML config say it
    max_local_disk_size: float
    cpu_bytes_per_rank: int  # what LMCache allocates for one engine
    disk_bytes_per_rank: int
    cpu_bytes_per_node: int
    disk_bytes_per_node: int
    gpus: int = 0  # the node's GPUs
    engines: int = 1  # vLLM engines on the node, each on tensor_parallel_size GPUs; the counts above are per node
    vram_per_engine_gib: float = 0.0
    kv_pages_per_engine_gib: float = 0.0
    sessions_vram_per_engine: int = 0


@dataclass(frozen=True)
class FleetRow:
    drives: int
    nodes: int
    gpus: int
    sessions: int
    note: str = ""  # "this pod", "every drive of the spec"


def kv_bytes_per_token(shape: ModelShape) -> int:
    """K and V, for every layer and KV head: 2 * layers * kv_heads * head_dim * dtype bytes.

    MLA caches one latent vector (K and V together) per layer: layers * head_dim * dtype bytes.
    """
    per_layer = shape.kv_heads * shape.head_dim * shape.dtype_bytes
    return shape.layers * per_layer * (1 if shape.kv_layout == "mla" else 2)


def size_node(spec: PodSpec, shape: ModelShape, gpus: int) -> NodeSizing:
    """A node of ``gpus`` GPUs as it runs: ``gpus // tensor_parallel_size`` engines, each holding its own copy
    of the weights in its ``tensor_parallel_size`` GPUs and its share of the node's LMCache budgets. Node totals
    are the engines' sums (an engine's VRAM is never pooled with another's)."""
    per_token = kv_bytes_per_token(shape)
    tokens = spec.vllm.max_model_len
    session_bytes = per_token * tokens
    weights = shape.params_billion * 1e9 * shape.dtype_bytes / GIB
    tp = spec.vllm.tensor_parallel_size
    engines = engines_of(spec, gpus)
    vram_engine = tp * spec.vllm.gpu_memory_gib
    kv_pages_engine = max(0.0, vram_engine * spec.vllm.gpu_memory_utilization - weights)
    ranks = lmcache_ranks(spec)
    cpu_rank, disk_rank = lmcache_per_rank(spec, engines)
    mla = shape.kv_layout == "mla"
    # GQA: each tensor-parallel rank holds its share of the KV heads of a session, in VRAM and in LMCache.
    # MLA: every rank holds the whole latent KV in VRAM, and an LMCache engine stores all of it.
    session_bytes_per_rank = session_bytes if mla else session_bytes / tp
    session_vram = session_bytes * tp if mla else session_bytes
    cpu_bytes, disk_bytes = lmcache_bytes(cpu_rank), lmcache_bytes(disk_rank)
    sessions_vram_engine = int(kv_pages_engine * GIB // session_vram)
    return NodeSizing(
        kv_layout=shape.kv_layout,
        kv_bytes_per_token=per_token,
        session_tokens=tokens,
        session_gib=session_bytes / GIB,
        weights_gib=weights,
        vram_total_gib=vram_engine * engines,
        kv_pages_gib=kv_pages_engine * engines,
        sessions_vram=sessions_vram_engine * engines,
        sessions_dram=int(cpu_bytes // session_bytes_per_rank) * engines,
        sessions_disk=int(disk_bytes // session_bytes_per_rank) * engines,
        cpu_budget_gib=spec.kvcache.cpu_budget_gib,
        disk_budget_gib=spec.kvcache.disk_budget_gib,
        lmcache_ranks=ranks,
        max_local_cpu_size=cpu_rank,
        max_local_disk_size=disk_rank,
        cpu_bytes_per_rank=cpu_bytes,
        disk_bytes_per_rank=disk_bytes,
        cpu_bytes_per_node=cpu_bytes * ranks * engines,
        disk_bytes_per_node=disk_bytes * ranks * engines,
        gpus=gpus,
        engines=engines,
        vram_per_engine_gib=vram_engine,
        kv_pages_per_engine_gib=kv_pages_engine,
        sessions_vram_per_engine=sessions_vram_engine,
    )


REFERENCE_SIZES = (1, 6, 12, 24)  # one node, a quarter, half and a whole Data24
ENCLOSURE_DRIVES = 24


def fleet_sizes(nodes: int, drives: int) -> list[int]:
    """The fleet table's node counts around a spec: the reference sizes and whole enclosures up to the spec's
    nodes or drives (at most six of them), the spec's own counts, and the next size up."""
    top = max(nodes, drives)
    steps = [*REFERENCE_SIZES, *(ENCLOSURE_DRIVES * k for k in range(2, top // ENCLOSURE_DRIVES + 2))]
    below = [s for s in steps if s <= top]
    if len(below) > 6:
        below = below[:4] + below[-2:]
    above = next(s for s in steps if s > top)
    return sorted({*below, nodes, drives, above})


def fleet_table(
    gpus_per_node: int, sessions_per_node: int, nodes: int = ENCLOSURE_DRIVES, drives: int = ENCLOSURE_DRIVES
) -> list[FleetRow]:
    """One drive per node, at the spec's size and around it: drives -> nodes -> GPUs -> sessions at the
    validated per-node concurrency."""
    notes = {nodes: "this pod"}
    if drives != nodes:
        notes[drives] = "every drive of the spec"
    return [
        FleetRow(drives=d, nodes=d, gpus=d * gpus_per_node, sessions=d * sessions_per_node, note=notes.get(d, ""))
        for d in fleet_sizes(nodes, drives)
    ]
