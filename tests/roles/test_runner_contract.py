"""``roles.node.node`` driven exactly as the runner drives it (``deploy.engine.run_phase``: one State for all
nodes, ``check_for_changes`` only for dry runs, ``add_deploy`` then ``run_ops``), on ``@fake`` hosts whose facts
and commands go to simulated nodes."""

from __future__ import annotations

import shlex

import pytest
from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.host import Host
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, _content_of
from deploy.engine import connection_lost, run_phase
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from roles.node import node

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def pod(monkeypatch):
    plan = build_plan(load_spec(lab_spec()))
    remotes: dict[str, FakeRemote] = {f"@fake/{n.name}": fresh_node(n) for n in plan.nodes}

    def get_fact(self, cls, *args, **kwargs):
        return remotes[self.name].get_fact(cls, *args, **kwargs)

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        ok = remotes[self.host.name].run(text)
        stderr = [OutputLine("stderr", shlex.split(text)[1])] if not ok and text.startswith("echo") else []
        return ok, CommandOutput(stderr)

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        remotes[self.host.name].upload(_content_of(filename_or_io), remote_filename)  # a wheel is a file path
        return True

    monkeypatch.setattr(Host, "get_fact", get_fact)
    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    hosts = [
        (name, {"kvpod_node": n, "kvpod_wipe": False, "kvpod_defer_restart": False, "fake_delay": 0})
        for name, n in zip(remotes, plan.nodes, strict=True)
    ]
    return hosts, remotes


def test_runner_real_run_then_dry_run_of_the_converged_pod(pod) -> None:
    hosts, remotes = pod
    results = run_phase("node", hosts, node, dry=False)
    assert [r.status for r in results] == ["changed", "changed"], [(r.failed_step, r.stderr, r.note) for r in results]
    for name, remote in remotes.items():
        assert sum(c.startswith("nvme connect") for c in remote.executed) == 2, name
        assert sum("mkfs.ext4" in c for c in remote.executed) == 1, name

    dry = run_phase("node", hosts, node, dry=True)
    assert [(r.status, r.changes) for r in dry] == [("unchanged", []), ("unchanged", [])]
    again = run_phase("node", hosts, node, dry=False)
    assert [(r.status, r.changed_ops) for r in again] == [("unchanged", 0), ("unchanged", 0)]


def test_dry_prepare_of_a_fresh_node_raises_a_clear_error_naming_the_host(pod) -> None:
    hosts, _ = pod
    inventory = Inventory((hosts, {}))
    state = State(inventory, Config(FAIL_PERCENT=None), check_for_changes=True)
    connect_all(state)
    second = inventory.get_host(hosts[1][0])
    with pytest.raises(OperationError, match="not connected yet") as err:
        add_deploy(state, node, host=[second])
    assert err.value.host is second


def test_runner_dry_run_of_a_fresh_node_fails_with_a_clear_message(pod) -> None:
    hosts, _ = pod
    results = run_phase("node", hosts[:1], node, dry=True)
    assert results[0].status == "failed"
    assert "not connected yet" in results[0].stderr[0]


def test_runner_one_refusing_node_does_not_stop_the_other(pod) -> None:
    hosts, remotes = pod
    first = remotes[hosts[0][0]]
    first.facts["storage.MountedAt"]["path=/mnt/kvcache"] = {
        "source": "tmpfs",
        "fstype": "tmpfs",
        "options": ["rw"],
        "device": None,
    }
    results = run_phase("node", hosts, node, dry=False)
    assert [r.status for r in results] == ["failed", "changed"]
    assert results[0].failed_step.endswith("/mnt/kvcache mounted")
    assert results[0].stderr == [
        "kvpod: /mnt/kvcache is mounted from tmpfs, not from /dev/nvme1n1: refusing to mount over it"
    ]
    assert not any(c.startswith("systemctl start mnt-kvcache") for c in first.executed)


class _Transport:
    def is_active(self) -> bool:
        return False


class _LostClient:
    """An SSH client whose session died (the machine behind it went away)."""

    def get_transport(self):
        return _Transport()


def test_a_node_that_goes_away_mid_phase_is_unreachable_and_the_other_converges(pod, monkeypatch) -> None:
    hosts, remotes = pod
    dying = hosts[0][0]
    fake_run = FakeConnector.run_shell_command

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        if self.host.name == dying and text.startswith("nvme connect"):
            self.client = _LostClient()  # the VM is gone: the command ends without an exit status
            return False, CommandOutput([])
        return fake_run(self, command, *args, **kwargs)

    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    first, second = run_phase("node", hosts, node, dry=False)
    assert (first.status, second.status) == ("unreachable", "changed")
    assert first.failed_step and "nvme" in first.failed_step.lower()
    assert first.note is not None and first.note.endswith(": connection lost (the host went away during this step)")
    assert first.cause == "connection lost during the run"
    assert not any("mkfs" in c for c in remotes[dying].executed)


def test_connection_lost_only_for_an_ssh_session_that_died() -> None:
    def host(client):
        return type("Host", (), {"connector": type("Connector", (), {"client": client})()})()

    def client(transport):
        return type("Client", (), {"get_transport": lambda self: transport})()

    live = type("Transport", (), {"is_active": lambda self: True})()
    assert not connection_lost(host(client(live)))
    assert connection_lost(host(client(_Transport())))
    assert connection_lost(host(client(None)))
    assert not connection_lost(host(None))  # @local, @fake: no SSH session to lose


def test_the_runner_reports_the_restart_the_node_left_pending(pod) -> None:
    """A deferred restart is the result of the vllm role's decision step: the runner reports it per host, for a
    dry run (would be due) and a real one (is due), and not for a node whose engines' files did not change."""
    hosts, _ = pod
    assert [r.restart_pending for r in run_phase("node", hosts, node, dry=False)] == [False, False]
    (first, data), second = hosts
    deferred = [
        (first, {**data, "kvpod_node": data["kvpod_node"].with_lmcache(chunk_size=512), "kvpod_defer_restart": True}),
        (second[0], {**second[1], "kvpod_defer_restart": True}),
    ]
    assert [r.restart_pending for r in run_phase("node", deferred, node, dry=True)] == [True, False]
    assert [r.restart_pending for r in run_phase("node", deferred, node, dry=False)] == [True, False]


def test_the_runner_reports_which_engines_the_node_left_due(pod) -> None:
    """Only the engine whose LMCache settings changed is due, in the dry run's result and the real run's, and the
    report JSON names it (``restart_units`` beside ``restart_pending``)."""
    hosts, _ = pod
    run_phase("node", hosts, node, dry=False)
    (first, data), (second, other) = hosts
    plan = data["kvpod_node"]
    engines = [e.model_copy(update={"lmcache": e.lmcache.model_copy(update={"chunk_size": 512})}) for e in plan.engines]
    one_changed = plan.model_copy(update={"engines": [plan.engines[0], engines[1]]})
    deferred = [
        (first, {**data, "kvpod_node": one_changed, "kvpod_defer_restart": True}),
        (second, {**other, "kvpod_defer_restart": True}),
    ]
    for dry in (True, False):
        results = run_phase("node", deferred, node, dry=dry)
        assert [r.restart_units for r in results] == [[plan.engines[1].unit], []], dry
        assert [r.restart_pending for r in results] == [True, False]
        assert results[0].as_json()["restart_units"] == ["kvpod-vllm@1.service"]
        assert results[1].as_json()["restart_units"] == [] and results[1].as_json()["restart_pending"] is False


def test_a_bundle_reports_each_file_it_writes_by_its_role(pod) -> None:
    """The node's bundle is one operation, but the run's changes (the summary, ``report.json``) name each file it
    wrote as its role's step, in the dry run and the real run: an edit of one engine's LMCache settings shows as
    that engine's env file, nothing else."""
    hosts, _ = pod
    run_phase("node", hosts, node, dry=False)
    (first, data), (second, other) = hosts
    plan = data["kvpod_node"]
    engine = plan.engines[1]
    edited = engine.model_copy(update={"lmcache": engine.lmcache.model_copy(update={"chunk_size": 512})})
    one_changed = plan.model_copy(update={"engines": [plan.engines[0], edited]})
    edit = [
        (first, {**data, "kvpod_node": one_changed, "kvpod_defer_restart": True}),
        (second, {**other, "kvpod_defer_restart": True}),
    ]
    for dry in (True, False):
        results = run_phase("node", edit, node, dry=dry)
        assert results[0].changes == ["kvpod node | lmcache | LMCache env file of engine 1"], dry
        assert results[0].changed_ops == 1 and results[1].changes == [], dry
