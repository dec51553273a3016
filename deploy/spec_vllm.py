"""What every node runs: the KV-cache mount and LMCache's tiers, the model, and the vLLM server. Pure."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deploy.compat import default_pair
from deploy.lmcache_keys import DEFAULT_VERSION as LMCACHE_VERSION
from deploy.secrets import SecretFile, classify
from deploy.spec_base import MAX_GB, Strict, earlier_names
from deploy.spec_types import (
    AbsPath,
    CachePath,
    ExtraArg,
    IndexUrl,
    LocalPath,
    ModelId,
    MountOption,
    PipVersion,
    PlacePath,
    SecretFilePath,
    ServiceUser,
    plain_data_problem,
)

# Upper bounds of model shape numbers and context length, far above any model (sizing works in floats).
MAX_SHAPE = 1_000_000
MAX_TOKENS = 1_000_000_000
PRIVILEGED_PORTS = 1024  # ports below need root (CAP_NET_BIND_SERVICE)


class Kvcache(Strict):
    """The KV-cache mount and LMCache's tiers. Sizes are GiB (2^30 bytes): LMCache multiplies its
    ``max_local_cpu_size`` and ``max_local_disk_size`` by 1024**3, so a budget here is what it allocates."""

    path: PlacePath = Field(
        "/mnt/kvcache", description="mount point of the node's drive (not a system directory, not inside one)"
    )
    filesystem: Literal["ext4"] = Field("ext4", description="created only on a blank drive")
    mount_options: list[MountOption] = Field(default_factory=lambda: ["noatime"], description="must include noatime")
    cpu_budget_gib: float = Field(
        30,
        gt=0,
        le=MAX_GB,
        description="LMCache host-DRAM tier per node, in GiB (earlier name: cpu_budget_gb, same unit)",
    )
    disk_budget_gib: float = Field(
        100, gt=0, le=MAX_GB, description="LMCache disk tier per node, in GiB (earlier name: disk_budget_gb, same unit)"
    )
    chunk_size: int = Field(256, ge=1, description="LMCache chunk size in tokens")
    lmcache_version: PipVersion = Field(
        LMCACHE_VERSION, description="the LMCache version the nodes run (lmcache_extra is checked against it)"
    )
    lmcache_telemetry: bool = Field(
        False,
        description="let LMCache report usage to its outside endpoint (off: LMCACHE_TRACK_USAGE=false)",
    )
    lmcache_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="further LMCache settings by their LMCache names; nested values (extra_config, lists) go "
        "to a YAML config file (written automatically); a value may be {from_file: PATH}, a secret read from a "
        "file on the machine running kvpod (mode 0600 or 0400)",
    )

    @field_validator("lmcache_extra")
    @classmethod
    def _secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Credentials (by key name, or a URL with a password) are carried as redacted secrets."""
        return {key: classify(key, value) for key, value in v.items()}

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        return earlier_names(data, {"cpu_budget_gb": "cpu_budget_gib", "disk_budget_gb": "disk_budget_gib"})

    @field_validator("lmcache_extra")
    @classmethod
    def _plain_data(cls, v: dict[str, Any]) -> dict[str, Any]:
        why = plain_data_problem(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("mount_options")
    @classmethod
    def _opts(cls, v: list[str]) -> list[str]:
        if "noatime" not in v:
            raise ValueError("mount options must include noatime (the KV tier must not write on reads)")
        return v


class ModelShape(Strict):
    """What sizing needs of a model. ``kv_layout: mla`` (multi-head latent attention, DeepSeek-V2/V3 class)
    caches one latent vector per token and layer instead of K and V per head: give ``kv_heads: 1`` and the
    latent width as ``head_dim`` (kv_lora_rank + qk_rope_head_dim: 512 + 64 = 576 for DeepSeek-V3)."""

    layers: int = Field(ge=1, le=MAX_SHAPE, description="transformer layers")
    kv_heads: int = Field(ge=1, le=MAX_SHAPE, description="key/value heads (1 for mla)")
    head_dim: int = Field(ge=1, le=MAX_SHAPE, description="dimension of one head (mla: the latent width)")
    dtype_bytes: int = Field(2, ge=1, le=8, description="bytes per KV element (fp16: 2)")
    params_billion: float = Field(gt=0, le=MAX_GB, description="parameters in billions (the weights' memory)")
    kv_layout: Literal["gqa", "mla"] = Field(
        "gqa",
        description="gqa: K and V per KV head (MHA, GQA), split over tensor-parallel ranks; "
        "mla: one latent per token, the same on every rank (LMCache stores it on rank 0 only)",
    )

    @model_validator(mode="after")
    def _latent(self) -> ModelShape:
        if self.kv_layout == "mla" and self.kv_heads != 1:
            raise ValueError(
                f"kv_layout mla caches one latent per token and layer: kv_heads must be 1, not {self.kv_heads} "
                "(give the latent width as head_dim, e.g. 576 for DeepSeek-V3)"
            )
        return self


class VllmInstall(Strict):
    """vLLM and LMCache installed with pip into a virtual environment on every node (optional)."""

    venv: PlacePath = Field(
        "/opt/kvpod/vllm", description="path of the virtual environment on the node (not a system directory)"
    )
    vllm_version: PipVersion = Field(
        default_pair()[0],
        description="the vllm version to install (pinned, PEP 440; the default is proven to work with the default "
        "kvcache.lmcache_version: deploy/compat/table.toml)",
    )
    lmcache_version: PipVersion | None = Field(
        None, description="the lmcache version to install (default: kvcache.lmcache_version)"
    )
    wheelhouse: LocalPath | None = Field(
        None,
        description="a directory of wheels on the machine running kvpod, pushed to the nodes and installed "
        "from without an index (air-gapped pods)",
    )
    index_url: IndexUrl | None = Field(None, description="the package index to install from, http(s) (default: pip's)")
    python: AbsPath = Field("/usr/bin/python3", description="the interpreter the environment is made with")


class Vllm(Strict):
    """The vLLM server of every node."""

    model: ModelId = Field(
        "meta-llama/Llama-3.1-70B-Instruct",
        description="Hugging Face hub id (org/name), or an absolute path on the node",
    )
    model_shape: ModelShape | None = Field(None, description="for sizing (default: known Llama models)")
    tensor_parallel_size: int = Field(4, ge=1, le=16, description="GPUs per vLLM instance")
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1, description="share of GPU memory vLLM may use")
    max_model_len: int = Field(32768, ge=256, le=MAX_TOKENS, description="context length in tokens")
    port: int = Field(
        8000, ge=1, le=65535, description="HTTP port of the server (1024-65535: vLLM does not run as root)"
    )
    user: ServiceUser = Field("vllm", description="system user running vLLM (a portable user name, not root)")
    executable: AbsPath = Field("/usr/local/bin/vllm", description="path of the vllm executable")
    extra_args: list[ExtraArg] = Field(
        default_factory=list,
        description="further command-line arguments, one word each (not the options kvpod sets itself)",
    )
    install: VllmInstall | None = Field(
        None, description="install vLLM and LMCache into a virtual environment; the unit runs its vllm"
    )
    gpu_memory_gib: float = Field(
        80, gt=0, le=MAX_GB, description="memory of one GPU in GiB (H100: 80; earlier name: gpu_memory_gb)"
    )
    sessions_per_node: int = Field(16, ge=1, description="validated concurrency per node (reference: 16)")
    hf_token_file: SecretFilePath | None = Field(
        None,
        description="a file on the machine running kvpod holding the Hugging Face token (one line, mode 0600 or "
        "0400; ~/ for your home, relative to the spec's directory); written to every node as HF_TOKEN in "
        "/etc/kvpod/vllm-hf.env, 0640 root:<vllm.user>; plans, diffs, reports and logs show it redacted",
    )
    weights_cache_dir: CachePath | None = Field(
        None,
        description="the Hugging Face cache on the node (HF_HOME), owned by vllm.user: vLLM downloads the weights "
        "there, or finds them staged in <dir>/hub/models--ORG--NAME/ (default: ~/.cache/huggingface of vllm.user); "
        "not on the KV-cache mount",
    )
    offline: bool = Field(
        False,
        description="never contact the hub (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1): the weights must be on the "
        "node, at the local path vllm.model or staged in weights_cache_dir",
    )
    health_timeout_s: int = Field(
        1800,
        ge=10,
        le=86400,
        description="seconds a restarted engine has to answer GET /health and list its model before the rollout "
        "stops (10-86400; 1800: a 70B model's ~140 GB of bf16 weights read from local NVMe at a cautious "
        "0.5 GB/s take ~5 min, plus compilation and CUDA graph capture on a cold cache; not a hub download)",
    )

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        return earlier_names(data, {"gpu_memory_gb": "gpu_memory_gib"})

    @model_validator(mode="after")
    def _token_read(self) -> Vllm:
        """The token is read by the loader (deploy.loader), which hands the path over with the secret."""
        if self.hf_token_file is not None and not isinstance(self.hf_token_file, SecretFile):
            raise ValueError(
                f"hf_token_file {self.hf_token_file}: the file was not read (load the spec with deploy.loader)"
            )
        return self

    @field_validator("port")
    @classmethod
    def _unprivileged(cls, v: int) -> int:
        if v < PRIVILEGED_PORTS:
            raise ValueError(
                f"port {v} is privileged (below {PRIVILEGED_PORTS}) and vLLM runs as vllm.user, never root "
                "(use 1024-65535, e.g. 8000)"
            )
        return v
