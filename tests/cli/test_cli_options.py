"""Every command-line mistake is refused before any host is contacted: exit 1, the option named, what is valid.

The pod behind the commands is the recording one (``tests/recorded_pod.py``); on top, the pod lock, the verify
runner and the benchmark record whether they were reached. A refused command reached none of them and made no
run directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.statedir import save_applied_plan
from tests.cli.test_up_wiring import lab_text, plan_of
from tests.recorded_pod import NoLock, RecordedPod, install, kvpod

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``run(*argv)`` → (exit code, output, what was reached): the lab spec (without its wheelhouse) in place."""
    from deploy import podlock_run
    from deploy.cli import bench, verify

    text = lab_text()
    spec = tmp_path / "pod.yaml"
    spec.write_text(text)
    recorded = RecordedPod.as_applied(plan_of(text))
    state = tmp_path / "state"
    install(monkeypatch, recorded, state)
    save_applied_plan(plan_of(text))
    reached: list[str] = []  # beyond the recorded pod: the lock, the verify runner, the benchmark

    def lock(cls, plan, argv=None):
        reached.append("lock")
        return NoLock()

    monkeypatch.setattr(podlock_run.PodLock, "for_run", classmethod(lock))
    monkeypatch.setattr(verify, "run_verify", lambda *a, **k: reached.append("verify"))
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: reached.append("bench"))

    def run(*argv: str) -> tuple[int, str, list[str]]:
        args = [a.replace("SPEC", str(spec)).replace("TMP", str(tmp_path)) for a in argv]
        code, out = kvpod(monkeypatch, capsys, *args)
        runs = state / "runs"
        made = [p.name for p in runs.glob("*/*")] if runs.exists() else []
        return code, out, reached + [s.kind for s in recorded.touched()] + made

    return run


MISTAKES = [
    # --batch: checked first, not at the rolling restart after switches, targets and nodes changed
    (["up", "SPEC", "--yes", "--batch", "abc"], "--batch 'abc': expected a number of engines (at least 1, e.g. 2)"),
    (["up", "SPEC", "--yes", "--batch", "0"], "--batch '0': expected a number of engines"),
    (["up", "SPEC", "--yes", "--max-unavailable", "150%"], "--max-unavailable '150%': expected a number of engines"),
    (
        ["up", "SPEC", "--yes", "--batch", "0%"],
        "--batch '0%': expected a number of engines (at least 1, e.g. 2) or a percentage of the pod's engines "
        "(above 0 and at most 100, e.g. 25%)",
    ),
    (["reassign", "SPEC", "--drive", "target/3", "--to", "node1", "--batch", "x"], "--batch 'x': expected"),
    # --limit and --wipe name nodes and drives of the spec
    (["up", "SPEC", "--yes", "--limit", "node9"], "--limit: unknown node node9 (valid: node1, node2)"),
    (["check", "SPEC", "--limit", "node9"], "--limit: unknown node node9 (valid: node1, node2)"),
    (["up", "SPEC", "--yes", "--wipe", "target/9"], "--wipe: unknown drive target/9 (valid: ENCLOSURE/SLOT"),
    (["up", "SPEC", "--dry", "--wipe", "nope"], "--wipe: unknown drive nope"),
    # reassign: the drive and the node, before the lock is taken
    (["reassign", "SPEC", "--drive", "target/9", "--to", "node1"], "--drive target/9: the spec has no such drive"),
    (["reassign", "SPEC", "--drive", "target", "--to", "node1"], "--drive 'target': expected ENCLOSURE/SLOT"),
    (["reassign", "SPEC", "--drive", "target/3", "--to", "node9"], "--to 'node9': no such node (valid: node1, node2)"),
    (["reassign", "SPEC", "--drive", "target/2", "--to", "node1"], "target/2 is held by node2; a node holds exactly"),
    # sizes and durations
    (["bench", "SPEC", "--size", "abc"], "--size 'abc': expected a size like 64M"),
    (["bench", "SPEC", "--runtime", "abc"], "--runtime 'abc': expected a duration from 1 second to 24 h"),
    (["bench", "SPEC", "--runtime", "0"], "--runtime '0': expected a duration"),
    (["bench", "SPEC", "--runtime", "2d"], "--runtime '2d': expected a duration"),
    # files a run writes: an existing, writable directory, and not a directory itself
    (["up", "SPEC", "--yes", "--report", "TMP/missing/up.json"], "--report TMP/missing/up.json: directory TMP/missing"),
    (["up", "SPEC", "--yes", "--report", "TMP"], "--report TMP: is a directory (give a file name"),
    (["check", "SPEC", "--report", "TMP"], "--report TMP: is a directory"),
    (["diff", "SPEC", "--report", "TMP/no/d.json"], "--report TMP/no/d.json: directory TMP/no does not exist"),
    (["verify", "SPEC", "--junit", "TMP"], "--junit TMP: is a directory"),
    (["bench", "SPEC", "--json", "TMP/no/b.json"], "--json TMP/no/b.json: directory TMP/no does not exist"),
    (["map", "SPEC", "-o", "TMP/no/map.svg"], "--output TMP/no/map.svg: directory TMP/no does not exist"),
    (["schema", "-o", "TMP"], "--output TMP: is a directory"),
]


@pytest.mark.parametrize(("argv", "message"), MISTAKES, ids=[" ".join(a[0:1] + a[2:]) for a, _ in MISTAKES])
def test_a_mistake_is_refused_before_any_host_is_contacted(pod, tmp_path: Path, argv, message) -> None:
    code, out, reached = pod(*argv)
    assert code == 1, out
    assert f"error: {message.replace('TMP', str(tmp_path))}" in out
    assert reached == [], f"reached {reached} before refusing"
    assert "Traceback" not in out


def test_a_read_only_directory_is_refused(pod, tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    import os

    if os.access(locked, os.W_OK):
        pytest.skip("running as root: every directory is writable")
    code, out, reached = pod("check", "SPEC", "--report", "TMP/ro/c.json")
    assert code == 1 and f"--report {locked}/c.json: directory {locked} is not writable" in out
    assert reached == []


def test_valid_values_go_through(pod, tmp_path: Path) -> None:
    """The same options, well formed, reach the pod: the checks refuse only mistakes."""
    code, out, reached = pod("up", "SPEC", "--yes", "--no-verify", "--batch", "50%", "--report", "TMP/up.json")
    assert code == 0, out
    assert "lock" in reached and "phase" in reached
    assert (tmp_path / "up.json").is_file()


def test_reassign_asks_at_a_terminal_unless_yes(pod, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from deploy.cli import shared

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr(shared.out, "input", lambda prompt: asked.append(prompt) or "n")
    code, out, reached = pod("reassign", "SPEC", "--drive", "target/3", "--to", "node1")
    assert code == 0, out
    assert asked == ["move? [y/N] "] and "would move target/3: spare -> node1" in out
    assert reached == [], "declined: nothing reached"
    code, out, reached = pod("reassign", "SPEC", "--drive", "target/3", "--to", "node1", "--yes")
    assert code == 0, out
    assert asked == ["move? [y/N] "], "--yes does not ask"
    assert "lock" in reached and "phase" in reached


def test_ctrl_c_prints_one_line_and_exits_130(pod, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy import orchestrate

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(orchestrate, "run_phase", interrupted)
    code, out, _ = pod("up", "SPEC", "--yes", "--no-verify")
    assert code == 130
    assert out.strip().splitlines()[-1] == "interrupted"
    assert out.count("interrupted") == 1 and "KeyboardInterrupt" not in out and "Traceback" not in out


def test_ctrl_c_in_a_command_that_reaches_no_host(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from deploy.cli import shared

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(shared, "load_spec_file", interrupted)
    code, out = kvpod(monkeypatch, capsys, "validate")
    assert (code, out) == (130, "interrupted\n")


def test_ctrl_c_while_kvpod_starts() -> None:
    """An interrupt during the command line's own imports: the same line and exit code, no traceback."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'deploy.cli.offline':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from deploy.cli import main\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "up"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "interrupted\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up"], "Missing argument"),
        (["bench", "SPEC", "--runtime"], "Option '--runtime' requires an argument"),
        (["up", "SPEC", "--batchsize", "2"], "No such option: --batchsize"),
        (["reassign", "SPEC", "--to", "node1"], "Missing option '--drive'"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_a_command_line_usage_mistake_exits_1(pod, argv, message) -> None:
    """Click's usage errors are input errors too: exit 1, as every option's (2 means a host failed)."""
    code, out, reached = pod(*argv)
    assert code == 1, out
    assert message in " ".join(out.replace("│", " ").split())
    assert reached == []


def test_ctrl_c_reaches_the_command_without_the_event_loop_printing_it() -> None:
    """pyinfra's hosts run on gevent: an interrupt the event loop catches goes to the command, not to a traceback."""
    from gevent.hub import Hub

    from deploy.cli.hosts import use_hosts

    use_hosts()
    assert KeyboardInterrupt in Hub.NOT_ERROR
    assert KeyboardInterrupt in Hub.SYSTEM_ERROR  # still raised in the main greenlet, where the command ends it
