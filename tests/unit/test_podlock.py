"""The pod lock: record, staleness, majority and messages; its scripts run by a real ``sh`` on this machine."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from deploy import podlock
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.podlock import (
    Attempt,
    Controller,
    LockRecord,
    acquire_script,
    lock_hosts,
    new_record,
    parse_clock,
    parse_output,
    parse_record,
    quorum,
    read_script,
    refusal,
    release_script,
    staleness,
)
from deploy.podlock_run import process_alive
from tests.conftest import LAB, REFERENCE

NOW = datetime(2026, 12, 2, 21, 0, 0, tzinfo=UTC)


def record(pid: int = 4242, controller: str = "laptop", command: str = "kvpod up pod.yaml", **kw) -> LockRecord:
    """A record written at NOW."""
    return new_record("p", user="ops", controller=controller, pid=pid, pid_start=None, command=command, now=NOW, **kw)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(podlock, "LOCK_DIR", str(tmp_path / "lock"))
    return tmp_path / "lock"


def sh(script: str) -> LockRecord | None:
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return parse_output(done.stdout.splitlines())


def test_record_round_trips_as_one_line_whatever_the_command_holds():
    r = record(command='kvpod up \'my pod.yaml\'\n"x": "token": "00"')
    assert "\n" not in r.line()
    assert parse_record(r.line()) == r
    assert len(r.token) == 32 and r.token != record().token
    assert r.since == "2026-12-02T21:00:00Z" and r.expires == "2026-12-02T22:00:00Z"


@pytest.mark.parametrize("text", ["garbage", "{}", '{"pod": "p"}', "[1]", ""])
def test_unparseable_record_is_kept_raw(text):
    assert parse_record(text).raw == text.strip()


def test_staleness():
    dead = lambda pid, start: False  # noqa: E731
    alive = lambda pid, start: True  # noqa: E731
    r = record()
    laptop, other = Controller("laptop"), Controller("other")
    assert staleness(r, now=NOW, here=laptop, alive=alive) is None
    assert staleness(r, now=NOW, here=laptop, alive=dead) == "its process 4242 on laptop is gone"
    assert staleness(r, now=NOW, here=other, alive=dead) is None  # not checkable from here
    later = NOW + timedelta(hours=1)
    assert staleness(r, now=later, here=other, alive=alive) == "its lease expired at 2026-12-02T22:00:00Z"
    assert staleness(LockRecord(raw="x"), now=NOW, here=other, alive=alive) == "its record cannot be read"


def test_staleness_knows_machines_by_their_id_and_pids_only_within_a_boot():
    dead = lambda pid, start: False  # noqa: E731
    alive = lambda pid, start: True  # noqa: E731
    r = record(controller="vm", machine="m1", boot="b1")
    namesake = Controller("vm", "m2", "b9")  # another machine with the same host name
    assert staleness(r, now=NOW, here=namesake, alive=dead) is None
    assert staleness(r, now=NOW, here=Controller("vm", "m1", "b1"), alive=dead) == "its process 4242 on vm is gone"
    assert staleness(r, now=NOW, here=Controller("vm", "m1", "b1"), alive=alive) is None
    assert staleness(r, now=NOW, here=Controller("vm", "m1", "b2"), alive=alive) == "vm has restarted since"


def test_process_alive_sees_this_process_and_not_a_dead_one():
    from deploy.podlock_run import _start_ticks

    me = os.getpid()
    assert process_alive(me, _start_ticks(me))
    assert not process_alive(me, (_start_ticks(me) or 0) + 1)  # the pid reused by another process
    child = subprocess.Popen(["true"])
    child.wait()
    assert not process_alive(child.pid, None)


@pytest.mark.parametrize(("count", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (24, 13)])
def test_quorum_is_a_strict_majority(count, need):
    assert quorum(count) == need


def test_lock_hosts_are_the_nvmet_targets_else_the_nodes():
    assert [h for h, _ in lock_hosts(build_plan(load_spec(LAB)))] == ["target"]
    data24 = [h for h, _ in lock_hosts(build_plan(load_spec(REFERENCE)))]
    assert data24 == sorted(f"gpu{i:02d}" for i in range(1, 25))


def test_enclosures_on_one_server_are_one_lock_host(tmp_path):
    """Two enclosures behind one SSH endpoint are one server: the lock is taken there once, by its host name."""
    from tests.two_enclosures import two_enclosures

    path = tmp_path / "pod.yaml"
    path.write_text(two_enclosures(LAB.read_text()))
    plan = build_plan(load_spec(path))
    assert len([t for t in plan.targets if t.kind == "linux-nvmet"]) == 2
    assert [h for h, _ in lock_hosts(plan)] == ["target"]


def test_attempt_holds_with_a_majority_only():
    mine, other = record(), record(pid=1)
    a = Attempt(mine.token, ["a", "b", "c"], {"a": mine, "b": mine, "c": other})
    assert a.held and a.held_on == ["a", "b"] and a.others() == {"c": other}
    b = Attempt(mine.token, ["a", "b", "c"], {"a": mine, "b": other}, {"c"})
    assert not b.held and b.held_on == ["a"]


def test_refusal_prints_the_holder_and_whether_it_is_stale():
    mine, other = record(), record(pid=99, command="kvpod reassign pod.yaml --drive t/1 --to n2")
    attempt = Attempt(mine.token, ["target"], {"target": other})
    live = str(refusal("p", attempt, {"target": None}))
    assert "pod p is locked by another kvpod run; nothing was changed" in live
    assert f"lock on target: ops@laptop pid 99, `{other.command}`, since 2026-12-02T21:00:00Z" in live
    assert "may still be running" in live
    stale = str(refusal("p", attempt, {"target": "its process 99 on laptop is gone"}))
    assert "stale (its process 99 on laptop is gone): run again with --break-lock" in stale
    gone = str(refusal("p", Attempt(mine.token, ["target"], {}, {"target"}), {}))
    assert gone.splitlines() == [
        "pod p: 1 of its 1 lock host(s) down (the lock needs 1 answering); nothing was changed",
        "  target: did not answer",
    ]
    many = Attempt(mine.token, [f"gpu{i}" for i in range(1, 12)], {}, {"gpu10", "gpu9", "gpu11"})
    many.causes = {"gpu9": "10.0.0.9:22: connection refused", "gpu10": "10.0.0.10:22: timed out"}
    down = refusal("p", many, {})
    assert str(down).splitlines()[1:] == [
        "  gpu9: 10.0.0.9:22: connection refused",
        "  gpu10: 10.0.0.10:22: timed out",
        "  gpu11: did not answer",
    ]
    assert "cannot take the lock" not in str(down) and "gpu1," not in str(down)
    assert down.down == {"gpu9": many.causes["gpu9"], "gpu10": many.causes["gpu10"], "gpu11": "did not answer"}


def test_scripts_take_refuse_break_and_release(lock_dir):
    a, b = record(), record(pid=1)
    assert sh(read_script("p")) is None
    assert sh(acquire_script(a)).token == a.token
    assert sh(acquire_script(a)).token == a.token  # the holder takes it again (renewal)
    assert sh(acquire_script(b)).token == a.token  # refused: the record read back is the holder's
    assert sh(acquire_script(b, "0" * 32)).token == a.token  # a break of another token breaks nothing
    assert sh(release_script(b)).token == a.token  # release by another token removes nothing
    assert sh(acquire_script(b, a.token)).token == b.token  # the break of exactly the stale record
    assert sh(release_script(b)) is None
    assert os.listdir(lock_dir) == []


def stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_the_lock_host_writes_since_and_expires_from_its_own_clock(lock_dir):
    """The controller's clock (NOW, days behind) does not count: the host stamps the record it writes."""
    before = datetime.now(UTC).replace(microsecond=0)
    written = sh(acquire_script(record(lease=timedelta(minutes=20))))
    after = datetime.now(UTC)
    assert before <= stamp(written.since) <= after
    assert stamp(written.expires) - stamp(written.since) == timedelta(minutes=20)


def test_renewal_rewrites_the_lease(lock_dir):
    a = record()
    first = sh(acquire_script(a))
    renewed = a.renewed(NOW + timedelta(minutes=30), timedelta(hours=2))
    again = sh(acquire_script(renewed))
    assert again.token == a.token and stamp(again.expires) - stamp(first.since) >= timedelta(hours=2)


def test_every_lock_script_prints_the_hosts_clock(lock_dir):
    for script in (read_script("p"), acquire_script(record()), release_script(record())):
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
        clock = parse_clock(out)
        assert clock is not None and abs((clock - datetime.now(UTC)).total_seconds()) < 5


def test_a_lease_is_judged_by_the_lock_hosts_clock_not_the_controllers(pod_lock_survey):
    """The record expired by the host's clock (an hour ahead of this machine): stale, whatever this clock says."""
    stale = pod_lock_survey(host_offset=timedelta(hours=2))
    assert stale["target"] == "its lease expired at 2026-12-02T22:00:00Z"
    assert pod_lock_survey(host_offset=timedelta(minutes=-30))["target"] is None


@pytest.fixture
def pod_lock_survey(monkeypatch):
    """``_stale`` of a record written at NOW with a one-hour lease, the lock host's clock at NOW + offset, and
    this machine's clock far in the future (its own judgement would call every lease expired)."""
    from deploy import podlock_run

    class Future(datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW + timedelta(days=30)

    monkeypatch.setattr(podlock_run, "datetime", Future)

    def judge(host_offset: timedelta) -> dict[str, str | None]:
        other = record(controller="elsewhere")
        attempt = Attempt("mine", ["target"], {"target": other}, clocks={"target": NOW + host_offset})
        return podlock_run._stale(attempt)

    return judge


def test_a_record_fixes_its_host_set_so_a_grown_spec_makes_no_second_majority():
    """Run 1 took the lock over a, b, c and holds a and b. The spec grows to a..e: run 2 reaches c, d, e (a
    majority of five) but not a majority of a, b, c, the set run 1's record names: it does not hold the lock."""
    first = record(hosts=["a", "b", "c"])
    second = record(pid=2, hosts=["a", "b", "c", "d", "e"])
    attempt = Attempt(second.token, ["a", "b", "c", "d", "e"], {"a": first, "b": first, "c": second, "d": second})
    attempt.found["e"] = second
    assert attempt.held_on == ["c", "d", "e"] and not attempt.held
    assert (("a", "b", "c"), 2) in attempt.short_of()
    # without the record's host set (an older record), five hosts and three held would be a majority
    legacy = Attempt(second.token, list("abcde"), {**attempt.found, "a": record(), "b": record()})
    assert legacy.held


def test_a_shrunk_spec_counts_the_hosts_only_a_record_names():
    """Run 1 holds c, d, e of a..e; the spec shrinks to a, b, c: run 2 holds a, b (a majority of its own three)
    but the record on c names a..e, of which a and b are no majority."""
    first = record(hosts=list("abcde"))
    second = record(pid=2, hosts=list("abc"))
    attempt = Attempt(second.token, list("abc"), {"a": second, "b": second, "c": first})
    assert not attempt.held
    message = str(refusal("p", attempt, {"c": None}))
    assert "locked by another kvpod run" in message


def test_the_record_lists_its_hosts_and_round_trips():
    r = record(hosts=["node2", "node1"])
    assert r.hosts == ("node1", "node2") and '"hosts": ["node1", "node2"]' in r.line()
    assert parse_record(r.line()) == r
    assert parse_record(r.line().replace(', "hosts": ["node1", "node2"]', "")).hosts == ()


def test_an_unreadable_lock_file_is_refused_and_broken_only_as_unreadable(lock_dir):
    lock_dir.mkdir()
    (lock_dir / "p.json").write_text("half a rec")
    a = record()
    assert sh(acquire_script(a)).raw == "half a rec"
    assert sh(acquire_script(a, "unreadable")).token == a.token


def test_racing_acquires_leave_exactly_one_holder(lock_dir):
    records = [record(pid=i) for i in range(1, 17)]
    with ThreadPoolExecutor(16) as pool:
        seen = list(pool.map(lambda r: sh(acquire_script(r)), records))
    holders = {s.token for s in seen}
    assert len(holders) == 1
    assert sum(s.token == r.token for s, r in zip(seen, records, strict=True)) == 1
    assert [p.name for p in lock_dir.iterdir()] == ["p.json"]
