"""Sizing and the plan's per-rank LMCache sizes agree, in GiB, for GQA and MLA models."""

from __future__ import annotations

import pytest

from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.plan import build_plan
from deploy.sizing import KNOWN_MODELS, kv_bytes_per_token, lmcache_ranks, model_shape, per_rank_gib, size_node

GIB = 1 << 30
# DeepSeek-V3 (config.json): 61 layers, kv_lora_rank 512 + qk_rope_head_dim 64 cached per token and layer.
DEEPSEEK_V3 = {"layers": 61, "kv_heads": 1, "head_dim": 576, "dtype_bytes": 2, "params_billion": 671}


def mla_pod(reference_dict: dict, **extra) -> dict:
    reference_dict["vllm"]["model"] = "deepseek-ai/DeepSeek-V3"
    reference_dict["vllm"]["model_shape"] = {**DEEPSEEK_V3, "kv_layout": "mla"}
    reference_dict["kvcache"]["lmcache_extra"] = extra
    return reference_dict


def test_per_rank_sizes_round_down_to_a_thousandth() -> None:
    assert per_rank_gib(30, 4) == 7.5
    assert per_rank_gib(100, 3) == 33.333
    assert per_rank_gib(4.35, 1) == 4.35  # 4.35 * 1000 is 4349.999... in binary floating point
    assert per_rank_gib(1, 4) == 0.25


def test_gqa_splits_the_budgets_over_every_rank(reference_dict) -> None:
    spec = spec_from_dict(reference_dict)
    assert lmcache_ranks(spec) == 4
    lm = build_plan(spec).nodes[0].lmcache
    sizing = size_node(spec, model_shape(spec), 4)
    assert (lm.max_local_cpu_size, lm.max_local_disk_size) == (sizing.max_local_cpu_size, sizing.max_local_disk_size)
    assert sizing.cpu_bytes_per_rank == int(lm.max_local_cpu_size * 1024**3) == 7.5 * GIB
    assert sizing.cpu_bytes_per_node == 30 * GIB and sizing.disk_bytes_per_node == 100 * GIB


def test_mla_stores_on_rank_zero_with_the_whole_budget(reference_dict) -> None:
    spec = spec_from_dict(mla_pod(reference_dict))
    assert lmcache_ranks(spec) == 1
    lm = build_plan(spec).nodes[0].lmcache
    assert (lm.max_local_cpu_size, lm.max_local_disk_size) == (30, 100)
    sizing = size_node(spec, model_shape(spec), 4)
    assert sizing.kv_layout == "mla"
    assert sizing.kv_bytes_per_token == 61 * 576 * 2  # one latent per layer, no separate K and V
    assert sizing.cpu_bytes_per_node == 30 * GIB and sizing.disk_bytes_per_node == 100 * GIB
    session = 61 * 576 * 2 * 32768
    assert sizing.sessions_dram == 30 * GIB // session and sizing.sessions_disk == 100 * GIB // session
    # every rank holds the whole latent cache in VRAM
    assert sizing.sessions_vram == int(sizing.kv_pages_gib * GIB // (session * 4))


@pytest.mark.parametrize(
    "extra",
    [
        {"extra_config": {"save_only_first_rank": False}},
        {"use_layerwise": True},
        {"lookup_server_worker_ids": [0, 1]},
    ],
)
def test_mla_splits_again_when_other_ranks_store(reference_dict, extra: dict) -> None:
    spec = spec_from_dict(mla_pod(reference_dict, **extra))
    assert lmcache_ranks(spec) == 4
    lm = build_plan(spec).nodes[0].lmcache
    assert (lm.max_local_cpu_size, lm.max_local_disk_size) == (7.5, 25)


def test_mla_needs_one_latent_head(reference_dict) -> None:
    data = mla_pod(reference_dict)
    data["vllm"]["model_shape"]["kv_heads"] = 8
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    (problem,) = info.value.problems
    assert str(problem).startswith("vllm.model_shape: kv_layout mla caches one latent per token and layer")


def test_gqa_bytes_per_token() -> None:
    assert kv_bytes_per_token(KNOWN_MODELS["llama-70b"]) == 2 * 80 * 8 * 128 * 2 == 327680


def test_eight_gpus_at_tp4_size_as_two_engines_not_one_engine_of_eight(reference_dict) -> None:
    """Each engine holds its own copy of the weights in its own 4 GPUs: the node is two 4-GPU engines."""
    spec = spec_from_dict(reference_dict)
    one = size_node(spec, model_shape(spec), 4)
    two = size_node(spec, model_shape(spec), 8)
    assert (one.engines, two.engines) == (1, 2)
    assert two.vram_per_engine_gib == one.vram_total_gib == 4 * 80
    assert two.kv_pages_per_engine_gib == one.kv_pages_gib
    assert two.kv_pages_gib == 2 * one.kv_pages_gib
    assert two.sessions_vram == 2 * one.sessions_vram == 2 * two.sessions_vram_per_engine
    # 8 GPUs pooled as one engine would count the weights once: more KV pages than the node has
    assert two.kv_pages_gib < 8 * 80 * 0.9 - one.weights_gib
    # the LMCache budgets of the node are split between the engines: same bytes per node, half per rank
    assert two.cpu_bytes_per_node == one.cpu_bytes_per_node and two.disk_bytes_per_node == one.disk_bytes_per_node
    assert two.max_local_cpu_size == one.max_local_cpu_size / 2
    lm = (
        build_plan(
            spec_from_dict(
                {**reference_dict, "nodes": {"generate": {**reference_dict["nodes"]["generate"], "gpus": 8}}}
            )
        )
        .nodes[0]
        .lmcache
    )
    assert (lm.max_local_cpu_size, lm.max_local_disk_size) == (two.max_local_cpu_size, two.max_local_disk_size)
