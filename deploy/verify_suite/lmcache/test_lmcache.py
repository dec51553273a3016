"""LMCache: the configuration each engine's unit loads holds the planned per-rank values; its disk is the mount.

These checks read the configuration files (the env file, and the YAML file in yaml mode); the vllm area
checks that the running process was started with them.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from verify_expect import (
    CONFIG_FILE_VAR,
    Text,
    credential_file_owner,
    credential_files_of,
    env_var,
    expect,
    fail,
    local_disk_dir,
    same_value,
)
from verify_facts import HostFacts
from verify_parse import parse_env_file

from deploy.plan import EnginePlan, NodePlan

pytestmark = pytest.mark.area("lmcache")


def env_file(engine: EnginePlan, facts: HostFacts) -> dict[str, str]:
    text = facts.file_text(engine.lmcache.env_file)
    if text is None:
        fail(f"{engine.lmcache.env_file}", Text("present"), Text("absent"))
    return parse_env_file(text)


def yaml_config(engine: EnginePlan, facts: HostFacts) -> dict[str, Any]:
    path = engine.lmcache.config_file or ""
    text = facts.file_text(path)
    if text is None:
        fail(path, Text("present"), Text("absent"))
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        fail(path, Text("YAML"), Text(f"unparsable: {exc}".splitlines()[0]))
    if not isinstance(data, dict):
        fail(path, Text("a mapping of settings"), Text(type(data).__name__))
    return data


class TestConfiguration:
    def test_config_source(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """Env mode: the env file holds the settings and names no config file. Yaml mode: it names the YAML file."""
        found = env_file(engine, node_facts).get(CONFIG_FILE_VAR)
        expect(f"{CONFIG_FILE_VAR} in {engine.lmcache.env_file}", engine.lmcache.config_file, found)

    def test_setting(self, node: NodePlan, lmcache_setting: tuple[EnginePlan, str, Any], node_facts: HostFacts) -> None:
        """The engine's active configuration holds the planned per-rank value of this setting (its own disk-tier
        directory, its share of the budgets)."""
        engine, key, value = lmcache_setting
        if engine.lmcache.config_mode == "yaml":
            where = engine.lmcache.config_file
            config = yaml_config(engine, node_facts)
            raw = config.get(key)
            found = None if raw is None else (raw if isinstance(raw, dict | list) else str(raw))
            ok = found == value if isinstance(value, dict | list) else same_value(value, found)
            name = key
        else:
            where = engine.lmcache.env_file
            name = env_var(key)
            found = env_file(engine, node_facts).get(name)
            ok = same_value(value, found)
        if not ok:
            fail(f"{name} in {where}", value, found if found is not None else None)

    def test_python_hash_seed(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """PYTHONHASHSEED=0, so every rank hashes KV chunks alike and finds each other's entries."""
        path = engine.lmcache.env_file
        expect(f"PYTHONHASHSEED in {path}", "0", env_file(engine, node_facts).get("PYTHONHASHSEED"))


class TestCredentialFiles:
    def test_credential_files_mode_and_owner(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The files that may carry credentials (LMCache env file, YAML config) are 0640 root:<vLLM user's group>:
        vLLM reads them, no other user does."""
        wanted = credential_file_owner(node)
        for path in credential_files_of(node):
            found = node_facts.file_mode(path)
            if found != wanted:
                fail(f"mode and owner of {path}", Text(" ".join(wanted)), Text(" ".join(found)) if found else None)


class TestLocalDisk:
    def test_local_disk_on_mount(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The disk-tier root holding the engines' directories exists on the KV cache mount (not on the root
        filesystem)."""
        directory = node.lmcache_root
        found = node_facts.mount_of(directory) or Text("no such directory")
        expect(f"mount holding {directory}", node.mount.path, found)

    def test_local_disk_writable(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The vLLM user can write the engine's own disk-tier directory."""
        directory = local_disk_dir(node, engine)
        ok, why = node_facts.writable_by(node.vllm.user, directory)
        if not ok:
            fail(f"{directory} writable by {node.vllm.user}", Text("yes"), Text(why or "no"))
