"""LMCache: the configuration the vLLM unit loads holds the planned per-rank values; its disk is the mount.

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
from verify_facts import HostFacts, parse_env_file

from deploy.plan import NodePlan

pytestmark = pytest.mark.area("lmcache")


def env_file(node: NodePlan, facts: HostFacts) -> dict[str, str]:
    text = facts.file_text(node.lmcache.env_file)
    if text is None:
        fail(f"{node.lmcache.env_file}", Text("present"), Text("absent"))
    return parse_env_file(text)


def yaml_config(node: NodePlan, facts: HostFacts) -> dict[str, Any]:
    path = node.lmcache.config_file or ""
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
    def test_config_source(self, node: NodePlan, node_facts: HostFacts) -> None:
        """Env mode: the env file holds the settings and names no config file. Yaml mode: it names the YAML file."""
        found = env_file(node, node_facts).get(CONFIG_FILE_VAR)
        expect(f"{CONFIG_FILE_VAR} in {node.lmcache.env_file}", node.lmcache.config_file, found)

    def test_setting(self, node: NodePlan, lmcache_setting: tuple[str, Any], node_facts: HostFacts) -> None:
        """The active configuration holds the planned per-rank value of this setting."""
        key, value = lmcache_setting
        if node.lmcache.config_mode == "yaml":
            where = node.lmcache.config_file
            config = yaml_config(node, node_facts)
            raw = config.get(key)
            found = None if raw is None else (raw if isinstance(raw, dict | list) else str(raw))
            ok = found == value if isinstance(value, dict | list) else same_value(value, found)
            name = key
        else:
            where = node.lmcache.env_file
            name = env_var(key)
            found = env_file(node, node_facts).get(name)
            ok = same_value(value, found)
        if not ok:
            fail(f"{name} in {where}", value, found if found is not None else None)

    def test_python_hash_seed(self, node: NodePlan, node_facts: HostFacts) -> None:
        """PYTHONHASHSEED=0, so every rank hashes KV chunks alike and finds each other's entries."""
        expect(f"PYTHONHASHSEED in {node.lmcache.env_file}", "0", env_file(node, node_facts).get("PYTHONHASHSEED"))


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
        """The local disk directory exists on the KV cache mount (not on the root filesystem)."""
        directory = local_disk_dir(node)
        found = node_facts.mount_of(directory) or Text("no such directory")
        expect(f"mount holding {directory}", node.mount.path, found)

    def test_local_disk_writable(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The vLLM user can write LMCache's files."""
        directory = local_disk_dir(node)
        ok, why = node_facts.writable_by(node.vllm.user, directory)
        if not ok:
            fail(f"{directory} writable by {node.vllm.user}", Text("yes"), Text(why or "no"))
