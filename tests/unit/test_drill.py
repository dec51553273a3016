"""``kvpod drill``'s pure part: its rounds and input checks, its scripts (encoded, clean under ``sh``, ``bash`` and
shellcheck, the target's run on a scratch configfs tree, the node's with the real fio), and the verdict from fio's
own reports (``tests/unit/data/drill``: a clean run, and one whose file was overwritten behind fio's back).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from deploy import drill as d
from deploy.errors import InputError
from deploy.loader import load_spec
from deploy.plan import build_plan
from tests import sinks
from tests.conftest import LAB

DATA = Path(__file__).parent / "data" / "drill"
PLAN = build_plan(load_spec(LAB))
REFERENCE = build_plan(load_spec(Path(__file__).resolve().parents[2] / "inventories" / "reference" / "pod.yaml"))
NQN = "nqn.2024-01.io.kvpod.lab:target-drive01"
JOB = d.DrillJob("/mnt/kvcache", NQN, ("10.78.0.1", "10.78.0.2"), ("10.78.0.1",), 99)
BOTH_LIVE = ["path live traddr=10.78.0.1,trsvcid=4420", "path live traddr=10.78.0.2,trsvcid=4420"]
DOWN = ["waited=800ms", "reached=1"]
BACK = ["waited=2400ms", "reached=1", *BOTH_LIVE]


def finish(name: str = "finish-pass.txt", **fields) -> list[str]:
    """A recorded finish answer; ``fields`` overwrite fio's figures of the drill job (``write.lat_ns.max`` ...)."""
    text = (DATA / name).read_text()
    if not fields:
        return text.splitlines()
    head, brace, body = text.partition("\n{")
    doc = json.loads(brace.strip() + body)
    job = doc["jobs"][0]
    for path, value in fields.items():
        where = job
        *parents, last = path.split("__")
        for p in parents:
            where = where[p]
        where[last] = value
    return [*head.splitlines(), *json.dumps(doc, indent=2).splitlines()]


def verdict(**kwargs) -> d.NodeDrill:
    answers = {"start": BOTH_LIVE, "down": DOWN, "back": BACK, "finish": finish()} | kwargs
    return d.judge("node1", "target/iom-a/p1", JOB, 10.0, **answers)


# -- rounds and input ---------------------------------------------------------------------------------------


def test_without_portal_each_iom_in_turn() -> None:
    rounds = d.plan_rounds(PLAN, None)
    assert [r.label for r in rounds] == ["target/iom-a/p1", "target/iom-b/p1"]
    assert [r.nodes for r in rounds] == [("node1", "node2")] * 2
    assert [[p.port_id for p in r.ports] for r in rounds] == [[1], [2]]
    assert all(r.managed for r in rounds)


def test_a_data24_round_takes_every_port_of_one_iom_and_is_the_operators() -> None:
    rounds = d.plan_rounds(REFERENCE, None)
    assert len(rounds) == 2 and not any(r.managed for r in rounds)
    assert len(rounds[0].nodes) == len(REFERENCE.nodes)
    assert {p.iom for p in rounds[0].ports} != {p.iom for p in rounds[1].ports}


def test_portal_names_one_round() -> None:
    (rnd,) = d.plan_rounds(PLAN, "target/iom-b/p1")
    assert rnd.label == "target/iom-b/p1" and rnd.addresses == (PLAN.targets[0].portals[1].address,)


def test_unknown_portal_names_the_valid_ones() -> None:
    with pytest.raises(InputError, match=r"--portal 'target/iom-c/p1': unknown portal \(valid: target/iom-a/p1, "):
        d.plan_rounds(PLAN, "target/iom-c/p1")


def test_a_portal_no_node_uses_is_refused() -> None:
    single = PLAN.model_copy(
        update={
            "nodes": [
                n.model_copy(update={"namespace": n.namespace.model_copy(update={"portals": n.namespace.portals[:1]})})
                for n in PLAN.nodes
            ]
        }
    )
    with pytest.raises(InputError, match="no node reaches its namespace through it"):
        d.plan_rounds(single, "target/iom-b/p1")
    assert [r.label for r in d.plan_rounds(single, None)] == ["target/iom-a/p1"]


@pytest.mark.parametrize(
    "duration,stall,message",
    [
        (0, 10, "--duration 0: expected a positive"),
        (10, 0, "--max-stall 0: expected a positive"),
        (5, 10, "--duration 5: shorter than the stall threshold"),
        (899, 10, "fabric.ctrl_loss_tmo = 900 s"),
    ],
)
def test_timing_errors(duration, stall, message) -> None:
    with pytest.raises(InputError, match=message):
        d.check_timing(PLAN, d.plan_rounds(PLAN, None), duration, stall)


def test_timing_accepted() -> None:
    d.check_timing(PLAN, d.plan_rounds(PLAN, None), 10, 10)


# -- scripts ------------------------------------------------------------------------------------------------

HOSTILE = d.DrillJob("/mnt/k v'$(touch x)`y`", "nqn.2024-01.io.x:a'b c", ("10.78.0.1",), ("10.78.0.1",), 9)


def scripts(job: d.DrillJob) -> dict[str, str]:
    return {
        "start": d.start_script(job),
        "down": d.wait_script(job, "down", 60),
        "back": d.wait_script(job, "back", 60),
        "finish": d.finish_script(job),
        "cleanup": d.cleanup_script(job.directory),
        "take away": d.take_away_script([1, 2]),
        "restore": d.restore_script([1, 2]),
    }


@pytest.mark.skipif(not sinks.SHELLCHECK, reason="needs shellcheck")
@pytest.mark.parametrize("job", [JOB, HOSTILE], ids=["lab", "hostile"])
def test_every_script_passes_sh_bash_and_shellcheck(job, tmp_path) -> None:
    for name, text in scripts(job).items():
        path = tmp_path / f"{name}.sh"
        path.write_text(text + "\n")
        if job is HOSTILE:  # shellcheck notes that '$(touch x)' does not expand in single quotes (SC2016): the point
            for argv in (["bash", "-n"], ["sh", "-n"], [sinks.SHELLCHECK, "-s", "sh", "-e", "SC2016"]):
                result = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False)
                assert result.returncode == 0, (name, argv, result.stdout + result.stderr)
        else:
            assert sinks.shell_checks(path) == [], name


def test_a_hostile_mount_path_is_one_word_on_the_host(tmp_path) -> None:
    """The cleanup of a drill directory under a path holding quotes, ``$( )`` and backquotes removes that directory
    and runs nothing."""
    mount = tmp_path / "k v'$(touch x)`touch y`"
    (mount / d.DRILL_DIRNAME).mkdir(parents=True)
    result = subprocess.run(["sh", "-c", d.cleanup_script(f"{mount}/{d.DRILL_DIRNAME}")], cwd=tmp_path, check=False)
    assert result.returncode == 0
    assert not (mount / d.DRILL_DIRNAME).exists() and mount.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [mount.name]


def test_values_are_encoded_as_one_shell_word() -> None:
    text = d.start_script(HOSTILE)
    assert "mnt='/mnt/k v'\"'\"'$(touch x)`y`'" in text
    assert "nqn='nqn.2024-01.io.x:a'\"'\"'b c'" in text


def test_fio_verifies_with_direct_io_and_counts_errors() -> None:
    argv = d.fio_argv(JOB)
    for arg in ("--direct=1", "--verify=crc32c", "--verify_fatal=1", "--continue_on_error=io", "--time_based"):
        assert arg in argv
    assert "--verify_backlog=16" in argv and f"--filename={JOB.file}" in argv


def run_sh(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=60, check=False)


def test_take_away_then_restore_on_a_scratch_configfs(tmp_path) -> None:
    """Port 1 loses exactly its links, recorded first; the restore puts back those only, once, and forgets them."""
    root, state = tmp_path / "nvmet", tmp_path / "run"
    for nqn in ("nqn.a:d1", "nqn.a:d2"):
        (root / "subsystems" / nqn).mkdir(parents=True)
    for port, nqns in (("1", ["nqn.a:d1", "nqn.a:d2"]), ("2", ["nqn.a:d1"])):
        (root / "ports" / port / "subsystems").mkdir(parents=True)
        for nqn in nqns:
            (root / "ports" / port / "subsystems" / nqn).symlink_to(root / "subsystems" / nqn)
    taken = run_sh(d.take_away_script([1], str(root), str(state)))
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.split("\n")[:2] == ["1 nqn.a:d1", "1 nqn.a:d2"]
    assert list((root / "ports" / "1" / "subsystems").iterdir()) == []
    assert [p.name for p in (root / "ports" / "2" / "subsystems").iterdir()] == ["nqn.a:d1"]
    # taken away again (an interrupted run repeated): the record is kept, not overwritten by the empty port
    assert run_sh(d.take_away_script([1], str(root), str(state))).returncode == 0
    for _ in range(2):  # the restore is safe to repeat
        restored = run_sh(d.restore_script([1], str(root), str(state)))
        assert restored.returncode == 0, restored.stderr
        links = sorted(p.name for p in (root / "ports" / "1" / "subsystems").iterdir())
        assert links == ["nqn.a:d1", "nqn.a:d2"]
        assert (root / "ports" / "1" / "subsystems" / "nqn.a:d2").resolve() == root / "subsystems" / "nqn.a:d2"
    assert not list(state.iterdir())


@pytest.mark.skipif(not (shutil.which("fio") and shutil.which("setsid")), reason="needs fio")
def test_start_and_finish_run_the_real_fio(tmp_path) -> None:
    """The node's scripts with the real fio on a scratch directory: verified writes, its report judged, and the
    directory gone afterwards."""
    job = replace(JOB, mount=str(tmp_path), size_bytes=4 * d.MIB)
    started = run_sh(d.start_script(job, mountpoint_check="true"))
    if started.returncode != 0 and "O_DIRECT" in started.stderr + started.stdout:
        pytest.skip("the scratch filesystem refuses O_DIRECT")
    assert started.returncode == 0, started.stderr
    time.sleep(0.5)
    done = run_sh(d.finish_script(job))
    assert done.returncode == 0, done.stderr
    result = d.judge("here", "t/a/p1", job, 10.0, start=BOTH_LIVE, down=None, back=None, finish=done.stdout.split("\n"))
    assert result.verify == "clean" and result.io_errors == 0 and result.written_bytes
    assert not (tmp_path / d.DRILL_DIRNAME).exists()


# -- the verdict --------------------------------------------------------------------------------------------


def test_a_clean_run_passes() -> None:
    result = verdict()
    assert result.status == "passed", result.reasons
    assert (result.io_errors, result.verify, result.paths_before, result.paths_back) == (0, "clean", "2/2 live", True)
    assert result.back_after_s == 2.4 and result.down_after_s == 0.8 and result.mount_rw
    assert 0 < result.max_stall_s < 1


def test_io_errors_fail() -> None:
    result = verdict(finish=finish(total_err=3, first_error=5))
    assert result.status == "failed" and result.io_errors == 3
    assert "3 I/O error(s) (first: errno 5)" in result.reasons


def test_a_verification_failure_fails_with_fios_words() -> None:
    result = verdict(finish=finish("finish-verify-failed.txt"))
    assert result.status == "failed"
    assert result.verify.startswith("verify: bad magic header")
    assert any(r.startswith("verification failed: verify: bad magic header") for r in result.reasons)


def test_a_stall_above_the_threshold_fails() -> None:
    result = verdict(finish=finish(write__lat_ns__max=12_400_000_000))
    assert result.status == "failed" and result.max_stall_s == 12.4
    assert "I/O stalled 12.4 s (threshold 10 s)" in result.reasons
    assert verdict(finish=finish(write__lat_ns__max=9_900_000_000)).status == "passed"


def test_ext4_read_only_fails() -> None:
    lines = [("options=ro,noatime" if line.startswith("options=") else line) for line in finish()]
    result = verdict(finish=lines)
    assert result.status == "failed" and result.mount_rw is False
    assert "/mnt/kvcache is not mounted read-write (ro,noatime)" in result.reasons


def test_a_path_that_does_not_come_back_fails() -> None:
    connecting = "path connecting traddr=10.78.0.1,trsvcid=4420"
    result = verdict(back=["waited=36000ms", "reached=0", BOTH_LIVE[1], connecting])
    assert result.status == "failed" and result.paths_back is False
    assert "paths not back: 1/2 live after 36 s" in result.reasons


def test_a_single_path_node_fails_honestly() -> None:
    """One path before the drill, and the whole outage as one I/O's latency: both named."""
    back = ["waited=2400ms", "reached=1", BOTH_LIVE[0]]  # the path it waited for came back; the other never was
    result = verdict(start=BOTH_LIVE[:1], back=back, finish=finish(write__lat_ns__max=11_800_000_000))
    assert result.status == "failed" and result.paths_back is False
    assert result.reasons[0] == "only 1/2 live before the portal went away"
    assert "I/O stalled 11.8 s (threshold 10 s)" in result.reasons
    assert "paths not back: 1/2 live after 2.4 s" in result.reasons


def test_fio_stuck_and_no_report_fail() -> None:
    lines = ["stopped=0", "options=rw", "errors-begin", "fio: io_u error", "errors-end"]
    result = verdict(finish=lines)
    assert result.status == "failed"
    assert any(r.startswith("fio's report not found") for r in result.reasons)
    assert any("did not stop" in r for r in result.reasons)


def test_a_path_that_never_dropped_fails() -> None:
    result = verdict(down=["waited=60000ms", "reached=0"])
    assert result.status == "failed" and any("was not taken away" in r for r in result.reasons)


def test_report_json() -> None:
    report = d.DrillReport("kvpod-lab", "failover", 10, 10.0, ["target/iom-a/p1"], [verdict()])
    doc = json.loads(report.to_json())
    assert doc["ok"] is True and doc["max_stall_s"] == 10.0
    assert doc["results"][0]["node"] == "node1" and doc["results"][0]["io_errors"] == 0
    assert not d.DrillReport("p", "failover", 10, 10.0, [], []).ok
