"""vLLM: each engine's unit is enabled and running as planned, with the planned arguments, GPUs and LMCache
environment, healthy and serving the planned model; LMCache's compiled ops load where there is a GPU."""

from __future__ import annotations

from typing import Any

import pytest
from verify_expect import CONNECTOR_MODULE, GPU_OPS_MODULE, Text, expect, fail, same_value
from verify_facts import HostFacts
from verify_parse_host import argument_value, contains_sequence, serve_model

from deploy.plan import EnginePlan, NodePlan

pytestmark = pytest.mark.area("vllm")


def main_pid(engine: EnginePlan, facts: HostFacts) -> str:
    """The engine unit's main process; fails the check when the unit runs nothing."""
    pid = facts.unit(engine.unit).get("MainPID", "0")
    if pid in ("", "0"):
        fail(f"{engine.unit} MainPID", Text("a running process"), Text("none"))
    return pid


class TestUnit:
    def test_unit_enabled(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine's unit starts at boot (its UnitFileState is enabled)."""
        expect(f"{engine.unit} UnitFileState", "enabled", node_facts.is_enabled(engine.unit))

    def test_unit_active(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine's unit is running."""
        props = node_facts.unit(engine.unit)
        found = f"{props.get('ActiveState')} ({props.get('SubState')})"
        expect(f"{engine.unit} state", "active (running)", found)

    def test_runs_as_planned_user(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine's server process runs as the planned user, not root."""
        expect(f"user of {engine.unit}", node.vllm.user, node_facts.proc_user(main_pid(engine, node_facts)))

    def test_environment_file(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine's unit loads its own LMCache env file."""
        files = node_facts.unit(engine.unit).get("EnvironmentFiles", "")
        if engine.lmcache.env_file not in files.split():
            fail(f"{engine.unit} EnvironmentFiles", Text(f"to include {engine.lmcache.env_file!r}"), files or None)


class TestCommandLine:
    def test_argument(self, node: NodePlan, vllm_argument: tuple[EnginePlan, str, Any], node_facts: HostFacts) -> None:
        """The engine's running server's command line (/proc/PID/cmdline) carries the planned value."""
        engine, flag, value = vllm_argument
        argv = node_facts.proc_cmdline(main_pid(engine, node_facts))
        found = serve_model(argv) if flag == "model" else argument_value(argv, flag)
        if not same_value(value, found):
            fail(f"{flag} of {engine.unit}'s server", value, found)

    def test_extra_arguments(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The planned extra arguments appear, in order, on the engine's running server's command line."""
        extra = node.vllm.extra_args
        if not extra:
            pytest.skip("no extra arguments planned")
        argv = node_facts.proc_cmdline(main_pid(engine, node_facts))
        if not contains_sequence(argv, extra):
            fail(f"extra arguments of {engine.unit}'s server", Text(" ".join(extra)), Text(" ".join(argv)))


class TestEnvironment:
    def test_environment_variable(
        self, node: NodePlan, environment_variable: tuple[EnginePlan, str, Any], node_facts: HostFacts
    ) -> None:
        """The engine's running server's environment (/proc/PID/environ) has its GPUs and the planned LMCache
        setting or config path."""
        engine, name, value = environment_variable
        found = node_facts.proc_environ(main_pid(engine, node_facts)).get(name)
        if not same_value(value, found):
            fail(f"{name} in {engine.unit}'s environment", value, found)


class TestHealth:
    def test_health(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine's health endpoint answers 200, asked from the node itself (it listens on loopback)."""
        status, raw = node_facts.http_status(engine.health_url)
        expect(f"GET {engine.health_url}", 200, status if status else Text(raw or "no answer"))

    def test_model_served(self, node: NodePlan, engine: EnginePlan, node_facts: HostFacts) -> None:
        """The engine lists the planned model in ``GET /v1/models`` (asked from the node itself)."""
        served, why = node_facts.served_models(engine.models_url)
        if served is None:
            fail(f"GET {engine.models_url}", Text(f"a model list naming {node.vllm.model!r}"), Text(why))
        if node.vllm.model not in served:
            fail(f"models served at {engine.models_url}", Text(f"to include {node.vllm.model!r}"), served)


class TestInstallation:
    def test_interpreter_imports_the_lmcache_connector(
        self, node: NodePlan, node_facts: HostFacts, record_property: Any
    ) -> None:
        """The interpreter vLLM's executable runs on imports the module LMCacheConnectorV1 loads; the
        versions of vllm and lmcache it sees are reported (and must be the pinned ones with vllm.install)."""
        ok, found, why = node_facts.connector_import()
        if not ok:
            fail(
                f"{node.vllm.executable}'s interpreter imports {CONNECTOR_MODULE}", Text("the import works"), Text(why)
            )
        for name in ("interpreter", "vllm", "lmcache"):
            record_property(name, found.get(name, "?"))
        install = node.vllm.install
        if install is not None:
            wanted = dict(r.split("==", 1) for r in install.requirements)
            seen = {name: found.get(name, "").split("+", 1)[0] for name in wanted}
            expect("versions in vLLM's environment", wanted, seen)

    def test_lmcache_gpu_ops(self, node: NodePlan, node_facts: HostFacts) -> None:
        """On a node with an NVIDIA GPU, the interpreter vLLM's engines run on imports LMCache's compiled CUDA
        ops (without them LMCache falls back to plain torch, logging only a warning). Not applicable, and
        reported so, on a node without one (no /dev/nvidia0, no nvidia-smi)."""
        outcome, said = node_facts.gpu_ops_import()
        if outcome == "not-applicable":
            pytest.skip(f"not applicable: no NVIDIA GPU on {node.name} (no /dev/nvidia0, no nvidia-smi)")
        if outcome != "imported":
            fail(f"{node.vllm.executable}'s interpreter imports {GPU_OPS_MODULE}", Text("the import works"), Text(said))
