"""What LMCache itself reads from the files kvpod writes: the real LMCache's configuration loader, no GPU.

The env file and the YAML config are rendered for the reference pod exactly as a deploy does (plan -> the
lmcache role's helpers -> its templates) and loaded the way LMCache's vLLM connector loads them
(``lmcache.integration.vllm.utils.lmcache_get_or_create_config``): ``from_env()`` and ``validate()``
without ``LMCACHE_CONFIG_FILE``, else ``from_file()`` and ``update_config_from_env()``.

LMCache is installed without its dependencies (``pip install --no-deps lmcache==0.5.6``, as ``.ci/run``
does): ``lmcache.v1.config`` imports without torch. Its usage-reporting switch lives in
``lmcache.usage_telemetry``, whose package imports psutil, so its ``identity.py`` is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from deploy.lmcache_keys import DEFAULT_VERSION, HERE, generate
from deploy.loader import spec_from_dict
from deploy.plan import LmcachePlan, build_plan
from deploy.shipped import verify_suite_dir
from deploy.sizing import model_shape, size_node
from roles._common import render
from roles.lmcache import cache_dir, env_lines, settings
from tests.conftest import ROOT

lmcache_config = pytest.importorskip(
    "lmcache.v1.config",
    reason="LMCache is not installed: .venv/bin/pip install --no-deps lmcache==0.5.6 (.ci/run does)",
)

sys.path.insert(0, str(verify_suite_dir()))

from verify_parse import parse_env_file  # noqa: E402 - the verify suite's reader of systemd env files

GIB = 1024**3
CORE = {"chunk_size", "local_cpu", "max_local_cpu_size", "local_disk", "max_local_disk_size"}


def usage_identity() -> ModuleType:
    """``lmcache.usage_telemetry.identity``, loaded from its file (the package's __init__ imports psutil)."""
    import lmcache

    path = Path(lmcache.__file__).parent / "usage_telemetry" / "identity.py"
    spec = importlib.util.spec_from_file_location("kvpod_lmcache_usage_identity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


class Warnings(logging.Handler):
    """LMCache's loggers do not propagate: collect their warnings here."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lmcache_warnings():
    handler = Warnings()
    loggers = [logging.getLogger(name) for name in ("lmcache.v1.config_base", "lmcache.v1.config")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.messages
    for logger in loggers:
        logger.removeHandler(handler)


def write_config(lm: LmcachePlan, tmp_path: Path) -> dict[str, str]:
    """Render the env file (and the YAML config in yaml mode) into tmp_path; return the env file's variables."""
    if lm.config_mode == "yaml":
        (tmp_path / "lmcache.yaml").write_text(render("lmcache", "lmcache.yaml.j2", settings=settings(lm)))
    env_file = tmp_path / "lmcache.env"
    env_file.write_text(render("lmcache", "lmcache.env.j2", env=env_lines(lm)))
    return parse_env_file(env_file.read_text())


def load_as_lmcache(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """The environment vLLM gets from the unit (EnvironmentFile=), then LMCache's own loading."""
    import os

    for name in list(os.environ):
        if name.startswith("LMCACHE_") or name == "DO_NOT_TRACK":
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    engine_config = lmcache_config.LMCacheEngineConfig
    if "LMCACHE_CONFIG_FILE" not in os.environ:
        config = engine_config.from_env()
        config.validate()
    else:
        config = engine_config.from_file(os.environ["LMCACHE_CONFIG_FILE"])
        config.update_config_from_env()
    return config


def reference_plan(reference_dict: dict, tmp_path: Path, **extra) -> tuple:
    reference_dict["kvcache"]["lmcache_extra"] = extra
    spec = spec_from_dict(reference_dict)
    lm = build_plan(spec).nodes[0].lmcache
    if lm.config_file:
        lm = lm.model_copy(update={"config_file": str(tmp_path / "lmcache.yaml")})
    return spec, lm


def test_the_installed_lmcache_is_the_pinned_one() -> None:
    from importlib.metadata import version

    assert version("lmcache") == DEFAULT_VERSION
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"pip install -q --no-deps lmcache=={re.escape(DEFAULT_VERSION)}\n", ci)


def test_the_key_list_is_the_installed_lmcache(lmcache_warnings) -> None:
    shipped = json.loads((HERE / f"{DEFAULT_VERSION}.json").read_text())
    assert generate() == shipped


def test_env_mode_reference_pod(reference_dict, tmp_path, monkeypatch, lmcache_warnings) -> None:
    spec, lm = reference_plan(reference_dict, tmp_path)
    assert lm.config_mode == "env"
    variables = write_config(lm, tmp_path)
    config = load_as_lmcache(variables, monkeypatch)

    sizing = size_node(spec, model_shape(spec), 4)
    assert config._user_set_keys == CORE  # LMCache read every setting kvpod wrote, and no other
    assert config.chunk_size == 256
    assert config.local_cpu is True
    # the bytes LMCache allocates per engine (LocalCPUBackend, LocalDiskBackend: int(size * 1024**3))
    assert int(config.max_local_cpu_size * 1024**3) == sizing.cpu_bytes_per_rank == int(7.5 * GIB)
    assert int(config.max_local_disk_size * 1024**3) == sizing.disk_bytes_per_rank == 25 * GIB
    assert 4 * int(config.max_local_cpu_size * 1024**3) == 30 * GIB  # the node budget, kvcache.cpu_budget_gib
    assert config.local_disk == cache_dir(lm) + "/" == "/mnt/kvcache/lmcache/engine0/"
    assert config.extra_config is None
    assert usage_identity().is_usage_tracking_enabled() is False
    assert lmcache_warnings == []


def test_env_mode_scalar_extras(reference_dict, tmp_path, monkeypatch, lmcache_warnings) -> None:
    _, lm = reference_plan(
        reference_dict, tmp_path, save_decode_cache=True, retrieve_locations="LocalCPUBackend,LocalDiskBackend"
    )
    assert lm.config_mode == "env"
    config = load_as_lmcache(write_config(lm, tmp_path), monkeypatch)
    assert config.save_decode_cache is True
    assert config.retrieve_locations == ["LocalCPUBackend", "LocalDiskBackend"]
    assert config._user_set_keys == CORE | {"save_decode_cache", "retrieve_locations"}
    assert lmcache_warnings == []


def test_yaml_mode_extra_config(reference_dict, tmp_path, monkeypatch, lmcache_warnings) -> None:
    spec, lm = reference_plan(
        reference_dict, tmp_path, extra_config={"use_odirect": True, "disk_io_threads": 8}, save_decode_cache=True
    )
    assert lm.config_mode == "yaml"
    variables = write_config(lm, tmp_path)
    assert set(variables) == {"LMCACHE_CONFIG_FILE", "LMCACHE_TRACK_USAGE", "PYTHONHASHSEED"}
    config = load_as_lmcache(variables, monkeypatch)

    assert config.extra_config == {"use_odirect": True, "disk_io_threads": 8}
    assert config.get_extra_config_value("use_odirect") is True  # what LocalDiskBackend asks for
    assert config.save_decode_cache is True
    sizing = size_node(spec, model_shape(spec), 4)
    assert int(config.max_local_cpu_size * 1024**3) == sizing.cpu_bytes_per_rank
    assert int(config.max_local_disk_size * 1024**3) == sizing.disk_bytes_per_rank
    assert (config.chunk_size, config.local_disk) == (256, "/mnt/kvcache/lmcache/engine0/")
    assert config._user_set_keys == CORE | {"extra_config", "save_decode_cache"}
    assert usage_identity().is_usage_tracking_enabled() is False
    assert lmcache_warnings == []


def test_mla_rank_zero_gets_the_node_budget(reference_dict, tmp_path, monkeypatch) -> None:
    reference_dict["vllm"]["model_shape"] = {
        "layers": 61, "kv_heads": 1, "head_dim": 576, "params_billion": 671, "kv_layout": "mla",
    }  # fmt: skip
    _, lm = reference_plan(reference_dict, tmp_path)
    config = load_as_lmcache(write_config(lm, tmp_path), monkeypatch)
    assert int(config.max_local_cpu_size * 1024**3) == 30 * GIB
    assert int(config.max_local_disk_size * 1024**3) == 100 * GIB


def test_telemetry_allowed(reference_dict, tmp_path, monkeypatch) -> None:
    reference_dict["kvcache"]["lmcache_telemetry"] = True
    _, lm = reference_plan(reference_dict, tmp_path)
    variables = write_config(lm, tmp_path)
    assert "LMCACHE_TRACK_USAGE" not in variables
    load_as_lmcache(variables, monkeypatch)
    assert usage_identity().is_usage_tracking_enabled() is True


def test_lmcache_drops_what_validation_refuses(tmp_path, monkeypatch, lmcache_warnings) -> None:
    """The reason for the key check: LMCache ignores an unknown variable and only warns of an unknown key."""
    config = load_as_lmcache({"LMCACHE_SAVE_DECODE_CACH": "true"}, monkeypatch)
    assert config.save_decode_cache is False and lmcache_warnings == []
    (tmp_path / "c.yaml").write_text("save_decode_cach: true\n")
    config = load_as_lmcache({"LMCACHE_CONFIG_FILE": str(tmp_path / "c.yaml")}, monkeypatch)
    assert config.save_decode_cache is False
    assert any("Unknown configuration key: save_decode_cach" in m for m in lmcache_warnings)
