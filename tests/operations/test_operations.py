"""Operation fixtures (``tests/operations/<module>.<op>/<case>.json``: arguments and facts in, commands out).

Each case runs the operation's body against a fake host (real pyinfra 3 ``State``/``Host``). A case that yields
commands is then *applied* to a simulated host and run again, which must yield nothing (``"converges": false``
opts out, e.g. for a wipe that is meant to repeat). Keys: ``kwargs``, ``facts``, ``files``, ``dirs``,
``mounts``, ``data`` (host data), ``executing``, ``commands``, ``noop`` (a substring of the noop message),
``exception`` (``name`` and ``message_contains``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import OperationError

from benchmarks.kvpod_sim import simulated
from benchmarks.pyinfra_fake import FakeRemote, op_commands
from deploy.operations.nvme import wait_for_namespace

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*/*.json"))


def operation(key: str):
    module, name = key.split(".")
    return getattr(importlib.import_module(f"deploy.operations.{module}"), name)


def remote_for(data: dict) -> FakeRemote:
    return simulated(
        FakeRemote(
            facts=data.get("facts"),
            files=data.get("files"),
            dirs=data.get("dirs"),
            mounts=data.get("mounts"),
            sysctls=data.get("sysctls"),
        )
    )


def kwargs_for(data: dict) -> dict:
    kwargs = dict(data.get("kwargs", {}))
    if "template" in kwargs:
        kwargs["template"] = str(HERE / kwargs["template"])
    for key in ("portals",):
        if key in kwargs:
            kwargs[key] = [tuple(p) for p in kwargs[key]]
    return kwargs


def apply(remote: FakeRemote, commands: list) -> None:
    for command in commands:
        if isinstance(command, str):
            assert remote.run(command), f"the simulated host rejected: {command}"
        elif command[0] == "upload":
            remote.upload(command[1], command[2])


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_operation_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    op = operation(path.parent.name)
    remote = remote_for(data)
    kwargs = kwargs_for(data)
    run = {"kwargs": kwargs, "data": data.get("data"), "executing": data.get("executing", False)}

    if "exception" in data:
        with pytest.raises(OperationError) as err:
            op_commands(op, remote, **run)
        assert type(err.value).__name__ == data["exception"]["name"]
        assert data["exception"]["message_contains"] in str(err.value)
        return

    commands, noops = op_commands(op, remote, **run)
    assert commands == data["commands"]
    if "noop" in data:
        assert any(data["noop"] in n for n in noops), noops
    if not commands:
        assert noops, "an operation that changes nothing says why (host.noop)"
    elif data.get("converges", True):
        apply(remote, commands)
        again, _ = op_commands(op, remote, **run)
        assert again == [], f"not converged after applying the commands: {again}"


def test_every_operation_has_fresh_and_converged_cases() -> None:
    by_op: dict[str, set[str]] = {}
    for path in CASES:
        by_op.setdefault(path.parent.name, set()).add(path.stem)
    for op, names in by_op.items():
        if op in ("nvme.disconnected", "storage.ext4", "storage.mounted", "storage.mount_unit"):
            continue  # named by what they protect; checked below
        assert any(n.startswith("fresh") for n in names), op
        assert any(n.startswith("converged") for n in names), op
    ext4 = by_op["storage.ext4"]
    assert {
        "blank_device_is_formatted",
        "existing_ext4_is_never_formatted",
        "existing_ext4_with_wipe_is_recreated",
    } <= ext4


def test_mkfs_without_wipe_never_forces() -> None:
    """Data safety across every fixture: ``-F`` appears only in cases that pass ``wipe``."""
    for path in HERE.glob("storage.ext4/*.json"):
        data = json.loads(path.read_text())
        forced = [c for c in data.get("commands", []) if isinstance(c, str) and "mkfs.ext4 -F" in c]
        assert not forced or data["kwargs"].get("wipe") is True, path.name
        for c in data.get("commands", []):
            if isinstance(c, str) and "mkfs.ext4" in c and not data["kwargs"].get("wipe"):
                assert c.startswith("if blkid -p"), "an unforced mkfs re-checks blkid on the host"


def test_wait_for_namespace_script(tmp_path: Path) -> None:
    """The wait after ``nvme connect`` ends as soon as the subsystem shows a namespace, and fails after the limit."""
    subsys = tmp_path / "nvme-subsys1"
    (subsys / "nvme1n1").mkdir(parents=True)
    (subsys / "subsysnqn").write_text("nqn.test:drive01\n")

    def wait(nqn: str) -> int:
        script = wait_for_namespace(nqn, seconds=1).get_raw_value()
        script = script.replace("/sys/class/nvme-subsystem", str(tmp_path))
        return subprocess.run(["sh", "-c", script], capture_output=True).returncode

    assert wait("nqn.test:drive01") == 0
    assert wait("nqn.test:drive02") == 1


def test_no_operation_admits_any_host() -> None:
    for path in HERE.glob("nvmet.*/*.json"):
        for command in json.loads(path.read_text()).get("commands", []):
            assert not ("attr_allow_any_host" in command and "'%s' 1" in command), path.name
