"""``kvpod verify`` on the command line: the command registered on an app, its table, its exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import deploy.cli.verify as cli_verify
from deploy.cli import app as kvpod_app
from deploy.verify_runner import POD_ROW, Check, VerifyReport

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab" / "pod.yaml"


def _report(*checks: Check, error: str | None = None) -> VerifyReport:
    return VerifyReport(list(checks), ["node1", "node2", POD_ROW, "target"], ["fabric", "vllm", "target"], error)


PASS = Check(
    "test_vlan_mtu[node1]", "fabric/test_fabric.py::TestInterfaces::test_vlan_mtu[node1]", "node1", "fabric", "passed"
)
FAIL = Check(
    "test_vlan_mtu[node2]",
    "fabric/test_fabric.py::TestInterfaces::test_vlan_mtu[node2]",
    "node2",
    "fabric",
    "failed",
    "MTU of eth1.100",
    "9000",
    "1500",
)
DOWN = Check("test_port[target-iom-a-p1]", "t", "target", "target", "unreachable", "HostUnreachable: target: refused")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    return kvpod_app


@pytest.mark.parametrize(
    ("checks", "code", "says"),
    [
        ([PASS], 0, "the pod matches its plan"),
        ([PASS, FAIL], 1, "expected: 9000"),
        ([PASS, FAIL, DOWN], 2, "unreachable: target"),
    ],
)
def test_exit_codes_and_output(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, checks: list[Check], code: int, says: str
) -> None:
    seen = {}

    def fake_run(plan, run_dir, *, limit=None, junit_copy=None):
        seen.update(plan=plan, run_dir=run_dir, limit=limit, junit=junit_copy)
        return _report(*checks)

    monkeypatch.setattr(cli_verify, "run_verify", fake_run)
    result = CliRunner().invoke(app, ["verify", str(LAB), "--limit", "node1", "--limit", "node2", "--junit", "j.xml"])
    assert result.exit_code == code, result.output
    assert says in result.output
    assert seen["plan"].pod == "kvpod-lab"
    assert seen["limit"] == ["node1", "node2"]
    assert seen["junit"] == Path("j.xml")
    assert seen["run_dir"].is_dir()
    assert "fabric" in result.output and "node1" in result.output


def test_failure_lists_expected_and_found(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_verify, "run_verify", lambda plan, run_dir, **kw: _report(PASS, FAIL))
    result = CliRunner().invoke(app, ["verify", str(LAB)])
    assert "✗ node2 · fabric · test_vlan_mtu[node2]" in result.output
    assert "MTU of eth1.100" in result.output
    assert "found:    1500" in result.output
    assert "✓ 1" in result.output and "✗ 1/1" in result.output


def test_suite_error_is_exit_2(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_verify, "run_verify", lambda plan, run_dir, **kw: _report(error="pytest exited 4"))
    result = CliRunner().invoke(app, ["verify", str(LAB)])
    assert result.exit_code == 2
    assert "suite error" in result.output


def test_unknown_limit(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_verify, "run_verify", lambda *a, **kw: pytest.fail("must not run"))
    result = CliRunner().invoke(app, ["verify", str(LAB), "--limit", "node9"])
    assert result.exit_code == 1  # an input error, as in every command that takes --limit
    assert "unknown node node9" in result.output
