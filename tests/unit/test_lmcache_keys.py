"""kvcache.lmcache_extra is checked at validate time against the settings of the LMCache version the spec targets."""

from __future__ import annotations

import json

import pytest

from deploy.errors import SpecError
from deploy.lmcache_keys import DEFAULT_VERSION, HERE, keys_for, kind_of, known_versions
from deploy.loader import spec_from_dict
from deploy.plan import build_plan
from roles.lmcache import env_lines, settings, yaml_body


def problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return [str(p) for p in info.value.problems]


def with_extra(reference_dict: dict, **extra) -> dict:
    reference_dict["kvcache"]["lmcache_extra"] = extra
    return reference_dict


def test_the_default_version_has_a_key_list() -> None:
    assert DEFAULT_VERSION in known_versions()
    keys = keys_for(DEFAULT_VERSION)
    assert keys.version == DEFAULT_VERSION
    assert {"chunk_size", "max_local_cpu_size", "local_disk", "extra_config", "save_decode_cache"} <= set(keys.settings)
    assert keys.settings["extra_config"] == "dict" and keys.settings["local_cpu"] == "bool"
    assert keys.renamed == {"external_backends": "storage_plugins", "plugin_locations": "runtime_plugin_locations"}
    assert "nixl_peer_port" in keys.ignored and "enable_xpyd" in keys.ignored


def test_the_key_list_is_what_the_generator_writes() -> None:
    data = json.loads((HERE / f"{DEFAULT_VERSION}.json").read_text())
    assert set(data) == {"lmcache", "source", "settings", "renamed", "ignored"}
    assert list(data["settings"]) == sorted(data["settings"])
    assert set(data["settings"].values()) <= {"bool", "int", "float", "str", "list", "dict"}


def test_kind_of_declared_types() -> None:
    from typing import Optional  # as LMCache declares its types

    assert kind_of(bool) == "bool" and kind_of(float) == "float"
    assert kind_of(Optional[str]) == "str"  # noqa: UP045
    assert kind_of(Optional[list[int]]) == "list"  # noqa: UP045
    assert kind_of(list[int]) == "list"
    assert kind_of(Optional[dict]) == "dict"  # noqa: UP045
    assert kind_of(int | None) == "int"


def test_known_settings_pass(reference_dict) -> None:
    extra = {"save_decode_cache": True, "extra_config": {"use_odirect": True}, "retrieve_locations": ["a", "b"]}
    spec = spec_from_dict(with_extra(reference_dict, **extra))
    assert spec.kvcache.lmcache_extra == extra


def test_unknown_setting_suggests_the_close_one(reference_dict) -> None:
    (line,) = problems(with_extra(reference_dict, save_decode_cach=True))
    assert line == (
        "kvcache.lmcache_extra.save_decode_cach: LMCache 0.5.6 has no setting 'save_decode_cach' "
        "(did you mean 'save_decode_cache'?)"
    )


def test_unknown_setting_without_a_close_one_points_at_the_list(reference_dict) -> None:
    (line,) = problems(with_extra(reference_dict, zzz=1))
    assert "has no setting 'zzz' (settings: deploy/lmcache_keys/0.5.6.json)" in line


def test_usage_tracking_is_not_a_setting(reference_dict) -> None:
    (line,) = problems(with_extra(reference_dict, track_usage=False))
    assert line.endswith("has no setting 'track_usage' (usage reporting is kvcache.lmcache_telemetry)")


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("chunk_size", "set kvcache.chunk_size instead"),
        ("max_local_cpu_size", "set kvcache.cpu_budget_gib instead"),
        ("max_local_disk_size", "set kvcache.disk_budget_gib instead"),
        ("local_disk", "set kvcache.path instead"),
        ("local_cpu", "kvpod always enables the host-DRAM tier"),
    ],
)
def test_an_extra_repeating_a_core_setting_is_refused(reference_dict, key: str, where: str) -> None:
    (line,) = problems(with_extra(reference_dict, **{key: 1}))
    assert line == f"kvcache.lmcache_extra.{key}: kvpod writes {key} itself ({where}): give it once"


def test_deprecated_and_dropped_names(reference_dict) -> None:
    out = problems(with_extra(reference_dict, plugin_locations=["/x"], enable_xpyd=True, nixl_peer_port=5))
    assert out == [
        "kvcache.lmcache_extra.enable_xpyd: LMCache 0.5.6 does not read enable_xpyd "
        "(earlier name of enable_pd, dropped as an unknown key: use enable_pd)",
        "kvcache.lmcache_extra.nixl_peer_port: LMCache 0.5.6 does not read nixl_peer_port "
        "(nixl_peer_port is deprecated, use nixl_receiver_port instead)",
        "kvcache.lmcache_extra.plugin_locations: plugin_locations is the deprecated name of "
        "runtime_plugin_locations in LMCache 0.5.6 (use runtime_plugin_locations)",
    ]


@pytest.mark.parametrize(
    ("key", "value", "wanted"),
    [
        ("save_decode_cache", "yes", "true or false"),
        ("blocking_timeout_secs", 1.5, "an integer"),
        ("extra_config", ["use_odirect"], "a mapping"),
        ("remote_url", {"a": 1}, "a string"),
        ("retrieve_locations", 3, "a list (or a comma-separated string)"),
    ],
)
def test_values_of_the_wrong_kind(reference_dict, key: str, value, wanted: str) -> None:
    (line,) = problems(with_extra(reference_dict, **{key: value}))
    assert line.startswith(f"kvcache.lmcache_extra.{key}: LMCache 0.5.6 takes {wanted} for {key}, not ")


def test_a_setting_without_value(reference_dict) -> None:
    (line,) = problems(with_extra(reference_dict, remote_url=None))
    assert "no value (give a string, or leave remote_url out for LMCache's default)" in line


def test_extra_config_may_not_resize_rank_zero(reference_dict) -> None:
    (line,) = problems(with_extra(reference_dict, extra_config={"first_rank_max_local_cpu_size": 60}))
    assert line.startswith("kvcache.lmcache_extra.extra_config.first_rank_max_local_cpu_size: kvpod sizes it")


def test_an_unknown_version_is_refused(reference_dict) -> None:
    reference_dict["kvcache"]["lmcache_version"] = "0.9.9"
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache.lmcache_version: kvpod has no list of LMCache 0.9.9's settings (known: 0.5.6;")


def test_the_role_helpers_never_write_a_setting_twice(reference_dict) -> None:
    """A plan built without validation keeps the core setting, and the helpers raise nothing (pure)."""
    lm = build_plan(spec_from_dict(reference_dict)).nodes[0].lmcache
    clash = lm.model_copy(update={"extra": {"chunk_size": 512, "save_decode_cache": True}})
    assert settings(clash)["chunk_size"] == 256 and settings(clash)["save_decode_cache"] is True
    assert env_lines(clash)["LMCACHE_CHUNK_SIZE"] == "256"
    assert yaml_body(clash).count("chunk_size") == 1
