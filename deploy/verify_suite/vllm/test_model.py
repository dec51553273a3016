"""vLLM's model and Hugging Face settings: the env file holding the token (0640 or stricter, root:<vLLM group>),
loaded by the unit, with the planned values; the weights cache owned by the vLLM user; offline, the model's
files on the node. A plan without these settings has none of these checks."""

from __future__ import annotations

from typing import Any

import pytest
from verify_expect import Text, fail, model_config_pattern, same_value, token_file_mode_ok
from verify_facts import HostFacts
from verify_parse import parse_env_file

from deploy.plan import NodePlan

pytestmark = pytest.mark.area("vllm")


class TestHuggingFaceEnvFile:
    def test_hf_env_file_mode_and_owner(self, node: NodePlan, hf_env_file: str, node_facts: HostFacts) -> None:
        """The file may hold the token: 0640 or stricter, owned by root, group the vLLM user (vLLM may read it)."""
        found = node_facts.file_mode(hf_env_file)
        if not token_file_mode_ok(found, node.vllm.user):
            wanted = Text(f"0640 or stricter, root:{node.vllm.user}")
            fail(f"mode and owner of {hf_env_file}", wanted, Text(" ".join(found)) if found else None)

    def test_hf_env_file_loaded_by_the_unit(self, node: NodePlan, hf_env_file: str, node_facts: HostFacts) -> None:
        """Every engine's unit loads the Hugging Face env file."""
        for engine in node.engines:
            files = node_facts.unit(engine.unit).get("EnvironmentFiles", "")
            if hf_env_file not in files.split():
                fail(f"{engine.unit} EnvironmentFiles", Text(f"to include {hf_env_file!r}"), files or None)

    def test_hf_setting(self, node: NodePlan, hf_setting: tuple[str, Any], node_facts: HostFacts) -> None:
        """The env file holds the planned value (the token compared by its digest, never shown)."""
        name, value = hf_setting
        path = node.vllm.hf_env_file or ""
        text = node_facts.file_text(path)
        found = parse_env_file(text).get(name) if text is not None else None
        if not same_value(value, found):
            fail(f"{name} in {path}", value, found)


class TestWeights:
    def test_weights_cache_owned_by_the_vllm_user(
        self, node: NodePlan, weights_cache_dir: str, node_facts: HostFacts
    ) -> None:
        """The weights cache (HF_HOME) is a directory of the vLLM user, who downloads into it."""
        found = node_facts.file_mode(weights_cache_dir)
        if found is None or found[1] != node.vllm.user:
            fail(f"owner of {weights_cache_dir}", node.vllm.user, found[1] if found else Text("no such directory"))

    def test_offline_model_files_present(self, node: NodePlan, offline_model: str, node_facts: HostFacts) -> None:
        """Offline, the model is on the node: its config.json in the local path, or in a snapshot of the cache."""
        pattern = model_config_pattern(node) or ""
        found = node_facts.model_files(pattern)
        if not found:
            fail(f"files of {offline_model} on the node", Text(pattern), Text("no such file"))
