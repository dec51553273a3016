"""vLLM: the unit is enabled and running as planned, with the planned arguments and LMCache environment, and healthy."""

from __future__ import annotations

from typing import Any

import pytest
from verify_expect import CONNECTOR_MODULE, Text, expect, fail, same_value
from verify_facts import HostFacts, argument_value, contains_sequence, serve_model

from deploy.plan import NodePlan

pytestmark = pytest.mark.area("vllm")


def main_pid(node: NodePlan, facts: HostFacts) -> str:
    """The unit's main process; fails the check when the unit runs nothing."""
    pid = facts.unit(node.vllm.unit).get("MainPID", "0")
    if pid in ("", "0"):
        fail(f"{node.vllm.unit} MainPID", Text("a running process"), Text("none"))
    return pid


class TestUnit:
    def test_unit_enabled(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The vLLM unit starts at boot (its UnitFileState is enabled)."""
        expect(f"{node.vllm.unit} UnitFileState", "enabled", node_facts.is_enabled(node.vllm.unit))

    def test_unit_active(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The vLLM unit is running."""
        props = node_facts.unit(node.vllm.unit)
        found = f"{props.get('ActiveState')} ({props.get('SubState')})"
        expect(f"{node.vllm.unit} state", "active (running)", found)

    def test_runs_as_planned_user(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The server process runs as the planned user, not root."""
        expect(f"user of {node.vllm.unit}", node.vllm.user, node_facts.proc_user(main_pid(node, node_facts)))

    def test_environment_file(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The unit loads the LMCache env file."""
        files = node_facts.unit(node.vllm.unit).get("EnvironmentFiles", "")
        if node.lmcache.env_file not in files.split():
            fail(f"{node.vllm.unit} EnvironmentFiles", Text(f"to include {node.lmcache.env_file!r}"), files or None)


class TestCommandLine:
    def test_argument(self, node: NodePlan, vllm_argument: tuple[str, Any], node_facts: HostFacts) -> None:
        """The running server's command line (/proc/PID/cmdline) carries the planned value."""
        flag, value = vllm_argument
        argv = node_facts.proc_cmdline(main_pid(node, node_facts))
        found = serve_model(argv) if flag == "model" else argument_value(argv, flag)
        if not same_value(value, found):
            fail(f"{flag} of the running server", value, found)

    def test_extra_arguments(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The planned extra arguments appear, in order, on the running server's command line."""
        extra = node.vllm.extra_args
        if not extra:
            pytest.skip("no extra arguments planned")
        argv = node_facts.proc_cmdline(main_pid(node, node_facts))
        if not contains_sequence(argv, extra):
            fail("extra arguments of the running server", Text(" ".join(extra)), Text(" ".join(argv)))


class TestEnvironment:
    def test_environment_variable(
        self, node: NodePlan, environment_variable: tuple[str, Any], node_facts: HostFacts
    ) -> None:
        """The running server's environment (/proc/PID/environ) has the planned LMCache setting or config path."""
        name, value = environment_variable
        found = node_facts.proc_environ(main_pid(node, node_facts)).get(name)
        if not same_value(value, found):
            fail(f"{name} in the server's environment", value, found)


class TestHealth:
    def test_health(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The health endpoint answers 200, asked from the node itself (it listens on loopback)."""
        status, raw = node_facts.http_status(node.vllm.health_url)
        expect(f"GET {node.vllm.health_url}", 200, status if status else Text(raw or "no answer"))


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
