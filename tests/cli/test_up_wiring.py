"""The wiring of ``kvpod up``, ``reassign``, ``check`` and ``diff`` through the real command line and
orchestration, behind a recording runner (``tests/recorded_pod.py``): the order of the phases for every kind of
handover, where ``--wipe`` goes, and the exit codes of a read-only run."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.loader import load_spec_text
from deploy.names import RELEASE_KEY, WIPE_KEY
from deploy.plan import Plan, build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.spec_edit import set_node_namespaces
from deploy.statedir import save_applied_plan
from tests.conftest import LAB
from tests.recorded_pod import RecordedPod, install, kvpod
from tests.two_enclosures import two_enclosures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def lab_text() -> str:
    """The lab spec without its wheelhouse (a directory of the lab machine, checked before any host)."""
    head, _install = LAB.read_text().split("\n  install:", 1)  # the last block of the lab spec
    return head + "\n"


def plan_of(text: str) -> Plan:
    return build_plan(load_spec_text(text))


def reassigned(text: str, drive: str, to: str, swap: bool = False) -> str:
    r = plan_reassignment(load_spec_text(text), parse_drive(drive), to, swap)
    return set_node_namespaces(text, r.assignments)


def without_node2(text: str) -> str:
    assert "\n    count: 2\n    name: node{n}" in text
    return text.replace("\n    count: 2\n    name: node{n}", "\n    count: 1\n    name: node{n}")


def chained(text: str) -> str:
    """node1 moves to the spare, node2 takes node1's old drive: node2's new holder must wait for node1."""
    return set_node_namespaces(text, {"node1": ("target", 3), "node2": ("target", 1)})


def one_enclosure_after_two(text: str) -> tuple[str, str]:
    """Applied: node2 on the second enclosure; now: that enclosure left the spec, node2 on the spare of the first."""
    return two_enclosures(text), set_node_namespaces(text, {"node2": ("target", 3)})


def handovers() -> dict[str, tuple[str, str, list[str]]]:
    """Kind of handover -> (applied spec, new spec, extra ``kvpod up`` arguments)."""
    base = lab_text()
    before, after = one_enclosure_after_two(base)
    return {
        "drive-to-spare": (base, reassigned(base, "target/3", "node1"), []),
        "swap": (base, reassigned(base, "target/1", "node2", swap=True), []),
        "chained-move": (base, chained(base), []),
        "node-removed": (base, without_node2(base), ["--prune"]),
        "enclosure-removed": (before, after, []),
    }


def expected_releasers(applied: Plan, plan: Plan) -> set[str]:
    """Nodes holding (as applied) a drive that is not their planned one now."""
    planned = {n.name: n.namespace.subsystem_nqn for n in plan.nodes}
    return {n.name for n in applied.nodes if planned.get(n.name) != n.namespace.subsystem_nqn}


@pytest.fixture
def up_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``run(applied text, new text, *args)``: the applied plan in place, then ``kvpod up`` of the new spec."""

    def run(
        applied_text: str, new_text: str, *args: str, status: dict | None = None, failing: set[str] = frozenset()
    ) -> tuple[RecordedPod, int, str]:
        applied = plan_of(applied_text)
        pod = RecordedPod.as_applied(applied)
        pod.status = status or {}
        pod.failing = set(failing)
        install(monkeypatch, pod, tmp_path / "state")
        save_applied_plan(applied)
        spec = tmp_path / "pod.yaml"
        spec.write_text(new_text)
        code, out = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", *args)
        return pod, code, out

    return run


# -- the handover order ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(handovers()))
def test_release_runs_before_targets_change_access_and_before_any_node_connects(up_pod, kind: str) -> None:
    applied_text, new_text, args = handovers()[kind]
    pod, code, out = up_pod(applied_text, new_text, *args)
    assert code == 0, out
    assert pod.phase_order() == ["switch", "release", "target", "node"]
    releasers = expected_releasers(plan_of(applied_text), plan_of(new_text))
    assert releasers, "the scenario moves a drive"
    assert set(pod.phase("release").hosts) == releasers


@pytest.mark.parametrize("kind", ["drive-to-spare", "swap", "chained-move", "enclosure-removed"])
def test_a_releasing_node_that_also_deploys_its_new_drive_is_released_first(up_pod, kind: str) -> None:
    applied_text, new_text, args = handovers()[kind]
    pod, code, out = up_pod(applied_text, new_text, *args)
    assert code == 0, out
    release, nodes = pod.phase("release"), pod.phase("node")
    plan = plan_of(new_text)
    for name in release.hosts:
        assert name in nodes.hosts, f"{name} deploys its new drive after releasing the old one"
        request = release.data[name][RELEASE_KEY]
        assert request.keep_subsystem == next(n.namespace.subsystem_nqn for n in plan.nodes if n.name == name)
        assert not request.purge


def test_a_removed_node_is_purged_in_the_release_phase_and_never_deployed(up_pod) -> None:
    applied_text, new_text, args = handovers()["node-removed"]
    pod, code, out = up_pod(applied_text, new_text, *args)
    assert code == 0, out
    request = pod.phase("release").data["node2"][RELEASE_KEY]
    assert request.purge and request.keep_subsystem is None
    assert pod.phase("node").hosts == ["node1"]


def test_the_dry_evaluation_follows_the_same_order(up_pod) -> None:
    applied_text, new_text, args = handovers()["swap"]
    pod, code, out = up_pod(applied_text, new_text, *args)
    assert code == 0, out
    roles = [s.role for s in pod.steps if s.kind == "evaluate" and s.role in ("release", "target", "node")]
    assert roles == sorted(roles, key=["release", "target", "node"].index), roles
    assert roles.count("release") == 2 and roles.count("target") == 1


def test_the_dry_evaluation_of_a_swap_shows_each_releasing_node_its_release_and_its_new_drive(up_pod) -> None:
    applied_text, new_text, args = handovers()["swap"]
    pod, code, out = up_pod(applied_text, new_text, *args)
    assert code == 0, out
    releases = {s.hosts[0]: s.deploys for s in pod.steps if s.kind == "evaluate" and s.role == "release"}
    assert set(releases) == {"node1", "node2"}
    assert all(deploys[0] == "node_release" and len(deploys) == 2 for deploys in releases.values()), releases


@pytest.mark.parametrize("failing", ["release", "target"])
def test_no_node_connects_when_an_earlier_phase_failed(up_pod, failing: str) -> None:
    applied_text, new_text, args = handovers()["drive-to-spare"]
    pod, code, out = up_pod(applied_text, new_text, *args, failing={failing})
    assert code == 2, out
    order = ["switch", "release", "target"]
    assert pod.phase_order() == order[: order.index(failing) + 1], "the nodes phase never runs after a failure"


def test_a_converged_pod_runs_no_phase(up_pod) -> None:
    base = lab_text()
    pod, code, out = up_pod(base, base, status=dict.fromkeys(["@local", "target", "node1", "node2"], "unchanged"))
    assert code == 0, out
    assert pod.phases() == []


# -- --wipe ------------------------------------------------------------------------------------------------------


def test_wipe_goes_only_to_the_named_drives_node(up_pod) -> None:
    base = lab_text()
    pod, code, out = up_pod(base, base, "--wipe", "target/2")
    assert code == 0, out
    nodes = pod.phase("node")
    assert {name: data[WIPE_KEY] for name, data in nodes.data.items()} == {"node1": False, "node2": True}
    evaluated = {s.hosts[0]: s.data[s.hosts[0]].get(WIPE_KEY) for s in pod.steps if s.kind == "evaluate"}
    assert evaluated["node1"] is False and evaluated["node2"] is True


def test_wipe_of_a_spare_drive_goes_to_no_node(up_pod) -> None:
    base = lab_text()
    pod, code, out = up_pod(base, base, "--wipe", "target/3")
    assert code == 0, out
    assert {name: data[WIPE_KEY] for name, data in pod.phase("node").data.items()} == {
        "node1": False,
        "node2": False,
    }


def test_wipe_goes_to_the_new_holder_of_a_moved_drive_not_its_old_one(up_pod) -> None:
    base = lab_text()
    pod, code, out = up_pod(base, reassigned(base, "target/1", "node2", swap=True), "--wipe", "target/1")
    assert code == 0, out
    assert {name: data[WIPE_KEY] for name, data in pod.phase("node").data.items()} == {
        "node1": False,
        "node2": True,
    }


@pytest.mark.parametrize("name", ["target/9", "shelf/1", "node1"])
def test_an_unknown_wipe_name_is_refused_with_exit_1_before_any_host(up_pod, name: str) -> None:
    base = lab_text()
    pod, code, out = up_pod(base, base, "--wipe", "target/1", "--wipe", name)
    assert code == 1
    assert f"--wipe: unknown drive {name}" in out and "Traceback" not in out
    assert pod.touched() == []


# -- reassign ----------------------------------------------------------------------------------------------------


@pytest.fixture
def reassign_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    def run(*args: str) -> tuple[RecordedPod, int, str]:
        base = lab_text()
        applied = plan_of(base)
        pod = RecordedPod.as_applied(applied)
        install(monkeypatch, pod, tmp_path / "state")
        save_applied_plan(applied)
        spec = tmp_path / "pod.yaml"
        spec.write_text(base)
        code, out = kvpod(monkeypatch, capsys, "reassign", str(spec), *args)
        return pod, code, out

    return run


def test_reassign_without_wipe_wipes_nothing(reassign_pod) -> None:
    pod, code, out = reassign_pod("--drive", "target/3", "--to", "node1")
    assert code == 0, out
    assert pod.phase_order() == ["switch", "release", "target", "node"]
    assert pod.phase("release").hosts == ["node1"]
    wipes = [data.get(WIPE_KEY) for s in pod.steps for data in s.data.values() if WIPE_KEY in data]
    assert wipes and not any(wipes)


def test_reassign_with_wipe_wipes_only_the_moved_drive_on_its_new_holder(reassign_pod) -> None:
    pod, code, out = reassign_pod("--drive", "target/1", "--to", "node2", "--swap", "--wipe")
    assert code == 0, out
    assert {name: data[WIPE_KEY] for name, data in pod.phase("node").data.items()} == {
        "node1": False,
        "node2": True,
    }


def test_reassign_reads_a_token_file_relative_to_the_spec(tmp_path: Path, monkeypatch, capsys) -> None:
    """The edited spec is validated before it replaces the file, its secret files read from the spec's directory."""
    base = lab_text()
    applied = plan_of(base)
    pod = RecordedPod.as_applied(applied)
    install(monkeypatch, pod, tmp_path / "state")
    save_applied_plan(applied)
    token = tmp_path / "hf-token"
    token.write_text("hf_kvpodRelativeTestToken\n")
    token.chmod(0o600)
    lines = [f"  hf_token_file: {token.name}" if "hf_token_file:" in line else line for line in base.splitlines()]
    spec = tmp_path / "pod.yaml"
    spec.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir("/")
    code, out = kvpod(monkeypatch, capsys, "reassign", str(spec), "--drive", "target/3", "--to", "node1")
    assert code == 0, out
    assert "namespace" in spec.read_text() and "hf_token_file: hf-token" in spec.read_text()


# -- check and diff exit codes -----------------------------------------------------------------------------------


@pytest.fixture
def read_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    def run(command: str, status: dict[str, str], unreachable: set[str] = frozenset()) -> tuple[RecordedPod, int, str]:
        base = lab_text()
        applied = plan_of(base)
        pod = RecordedPod.as_applied(applied)
        pod.status = {"@local": "unchanged", "target": "unchanged", "node1": "unchanged", "node2": "unchanged"}
        pod.status.update(status)
        pod.unreachable = set(unreachable)
        install(monkeypatch, pod, tmp_path / "state")
        spec = tmp_path / "pod.yaml"
        spec.write_text(base)
        code, out = kvpod(monkeypatch, capsys, command, str(spec))
        return pod, code, out

    return run


@pytest.mark.parametrize(
    ("status", "unreachable", "check_code", "diff_code"),
    [
        pytest.param({}, set(), 0, 0, id="converged"),
        pytest.param({"node2": "would-change"}, set(), 1, 0, id="drifted-node"),
        pytest.param({"target": "would-change"}, set(), 1, 0, id="drifted-target"),
        pytest.param({"node1": "failed"}, set(), 2, 2, id="failed"),
        pytest.param({"node1": "failed", "node2": "would-change"}, set(), 2, 2, id="failed-and-drifted"),
        pytest.param({}, {"node2"}, 2, 2, id="unreachable"),
    ],
)
def test_check_and_diff_exit_codes(read_pod, status, unreachable, check_code, diff_code) -> None:
    pod, code, out = read_pod("check", status, unreachable)
    assert code == check_code, out
    assert pod.phases() == [], "check changes nothing"
    pod, code, out = read_pod("diff", status, unreachable)
    assert code == diff_code, out
    assert pod.phases() == [], "diff changes nothing"
