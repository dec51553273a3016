"""A pod whose only SSH host refuses the connection, for real: one node at 127.0.0.1 on a port nobody listens on
(loopback only), reached through pyinfra and paramiko by the real command line."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from deploy.cli import main
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from fleet_spec import fleet_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def refused_pod(tmp_path, monkeypatch) -> tuple[Path, str]:
    """The spec of a one-node Data24 pod (no switch or target to reach) whose node is 127.0.0.1 on a closed port."""
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = yaml.safe_load(fleet_spec(1))
    data["nodes"]["generate"].update(ssh_address="127.0.0.1", ssh_port=port)
    spec = tmp_path / "pod.yaml"
    spec.write_text(yaml.safe_dump(data))
    return spec, f"127.0.0.1:{port}"


def kvpod(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["kvpod", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def run_dir(out: str) -> Path:
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("logs: ") and out.count("logs: ") == 1, out
    return Path(last.removeprefix("logs: "))


def test_check_names_the_refusing_host_with_address_port_and_cause(refused_pod, monkeypatch, capsys, tmp_path):
    spec, where = refused_pod
    code, out, err = kvpod(monkeypatch, capsys, "check", str(spec), "--report", str(tmp_path / "check.json"))
    assert code == 2, out + err
    assert "1 host unreachable; 0 hosts of the others differ" in out and "Traceback" not in err
    [line] = [line for line in out.splitlines() if "gpu001" in line]
    assert f"{where}: connection refused" in line
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved == json.loads((run_dir(out) / "report.json").read_text())
    assert saved["hosts"]["gpu001"]["cause"] == "connection refused"
    assert "Unable to connect to port" in (run_dir(out) / "pyinfra.log").read_text()


def test_up_refused_because_its_lock_host_is_down_says_so_and_writes_the_report(
    refused_pod, monkeypatch, capsys, tmp_path
):
    spec, where = refused_pod
    report = tmp_path / "up.json"
    code, out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--report", str(report))
    assert code == 2, out + err
    assert err.splitlines() == [
        "error: pod fleet-1: 1 of its 1 lock host(s) down (the lock needs 1 answering); nothing was changed",
        f"  gpu001: {where}: connection refused",
    ]
    saved = json.loads(report.read_text())
    assert saved == json.loads((run_dir(out) / "report.json").read_text())
    assert (saved["outcome"], saved["ok"]) == ("refused", False)
    assert saved["hosts"]["gpu001"]["note"] == f"{where}: connection refused"
