"""``kvpod drill`` on the pod: each round's steps through the runner, the portal put back and the fio files removed
however the round ends (an error, Ctrl-C, SIGTERM or SIGHUP).

The drill itself (rounds, scripts, parsing, judging) is pure, in :mod:`deploy.drill`. Nothing here prints: what
the operator must know or do (a Data24's port to disable and enable again) goes through ``say``.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy import drill as d
from deploy.host_status import HostStatus
from deploy.names import DRILL_KEY, NODE_KEY
from deploy.plan import Plan


@dataclass(frozen=True)
class DrillStep:
    """One step on one host: its name (the operation's), the script, and how long it may take."""

    name: str
    script: str
    timeout_s: int
    job: d.DrillJob | None = None


Say = Callable[[str], None]


def _sleep(seconds: float) -> None:
    """Wait (``time.sleep`` as found now: gevent's once the command line patched it for the runner)."""
    time.sleep(seconds)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP end the drill as Ctrl-C does (its ``finally`` puts the portal back)."""
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """While the portal is put back and the files removed, a second Ctrl-C (or TERM, HUP) does not stop it."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class RoundRun:
    """One round on the pod: its nodes and target, and what each step answered."""

    def __init__(self, plan: Plan, rnd: d.Round, duration_s: int, max_stall_s: float, say: Say, run_dir: Path | None):
        self.plan, self.rnd, self.duration_s, self.say, self.run_dir = plan, rnd, duration_s, say, run_dir
        self.max_stall_s = max_stall_s
        self.jobs = {name: d.drill_job(plan.node(name), rnd, duration_s) for name in rnd.nodes}
        self.answers: dict[str, dict[str, list[str]]] = {name: {} for name in rnd.nodes}
        self.errors: dict[str, tuple[str, str]] = {}  # node -> (status, why): it dropped out of the round
        self.running: set[str] = set()  # nodes whose fio was started and not yet finished
        self.taken = False

    # -- plumbing ---------------------------------------------------------------------------------------

    def _nodes_step(
        self, what: str, names: list[str], script: Callable[[d.DrillJob], str], timeout_s: int, start: bool = False
    ) -> None:
        from deploy.engine import run_output
        from deploy.hosts import node_hosts
        from roles.kv_drill import kv_drill_start, kv_drill_step, reads

        if not names:
            return
        extra = {
            n: {DRILL_KEY: DrillStep(f"{what} {self.jobs[n].mount}", script(self.jobs[n]), timeout_s, self.jobs[n])}
            for n in names
        }
        hosts = node_hosts(self.plan, names, extra)
        deploy = kv_drill_start if start else kv_drill_step
        reads_for = (lambda data: reads(data[NODE_KEY], data[DRILL_KEY])) if start else None  # a step reads nothing
        for r in run_output(
            f"drill {what}", hosts, deploy, run_dir=self.run_dir, connect_timeout=30, reads_for=reads_for
        ):
            if r.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
                why = (r.stderr[-1] if r.stderr else "") or r.note or r.status
                self.errors.setdefault(r.name, (r.status, f"{what}: {why}"))
            else:
                self.answers[r.name][what] = [line for lines in r.output.values() for line in lines]

    def _target_step(self, what: str, script: str) -> None:
        """Run ``script`` on the linux-nvmet target of the round; a failure raises (the drill cannot go on)."""
        from deploy.engine import run_output
        from deploy.errors import KvpodError
        from deploy.hosts import ssh_host_data

        target = next(t for t in self.plan.targets if t.name == self.rnd.enclosure)
        assert target.ssh is not None
        hosts = [(target.name, ssh_host_data(target.ssh) | {DRILL_KEY: DrillStep(what, script, 120)})]
        from roles.kv_drill import kv_drill_step

        (r,) = run_output(f"drill {what}", hosts, kv_drill_step, run_dir=self.run_dir, connect_timeout=30)
        if r.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
            why = (r.stderr[-1] if r.stderr else "") or r.note or r.status
            raise KvpodError(f"{self.rnd.label}: {what} on {target.name} failed: {why}")

    def _awaited(self, job: d.DrillJob) -> tuple[str, ...]:
        """The paths to wait for: those live before the drill and those it took away (a path missing before the
        drill does not come back by the portal's return: it is reported, not waited for)."""
        node = next(n for n, j in self.jobs.items() if j is job)
        before = d.live_addresses(d.path_lines(self.answers[node].get("start", [])), job.planned)
        return tuple(a for a in job.planned if a in before or a in job.dropped)

    def _live(self) -> list[str]:
        return [n for n in self.rnd.nodes if n not in self.errors]

    # -- the round --------------------------------------------------------------------------------------

    def run(self) -> list[d.NodeDrill]:
        try:
            self.running = set(self.rnd.nodes)  # a start that broke halfway may have left fio running
            self._nodes_step("start", list(self.rnd.nodes), d.start_script, 120, start=True)
            if not self._live():  # no node writes: nothing to take a portal away from
                return self.results()
            _sleep(d.SETTLE_S)
            self._take_away()
            wait = d.DROP_TIMEOUT_S if self.rnd.managed else d.OPERATOR_TIMEOUT_S
            self._nodes_step("down", self._live(), lambda j: d.wait_script(j, "down", wait), wait + 60)
            self.say(f"{self.rnd.label}: down; holding it down for {self.duration_s} s")
            _sleep(self.duration_s)
            self._restore()
            wait = 3 * max(self.plan.node(n).namespace.reconnect_delay for n in self.rnd.nodes) + 30
            if not self.rnd.managed:
                wait += d.OPERATOR_TIMEOUT_S
            back = lambda j: d.wait_script(j, "back", wait, self._awaited(j))  # noqa: E731
            self._nodes_step("back", self._live(), back, wait + 60)
            _sleep(d.TAIL_S)
            self._nodes_step("finish", self._live(), d.finish_script, d.STOP_TIMEOUT_S + 60)
            self.running -= {n for n in self.rnd.nodes if "finish" in self.answers[n]}  # its script removed its files
        finally:
            with shielded():
                try:
                    if self.taken:
                        self._restore()
                finally:
                    if self.running:
                        self._nodes_step("cleanup", sorted(self.running), lambda j: d.cleanup_script(j.directory), 60)
        return self.results()

    def _take_away(self) -> None:
        ports = ", ".join(f"{p.iom}/{p.port} ({p.address})" for p in self.rnd.ports)
        if self.rnd.managed:
            self.taken = True  # set first: an interruption during the step still puts back what it removed
            self._target_step("take away", d.take_away_script([p.port_id for p in self.rnd.ports]))
            self.say(f"{self.rnd.label}: port(s) {ports} unlinked from their subsystems on {self.rnd.enclosure}")
        else:
            self.taken = True
            self.say(
                f"{self.rnd.label}: DISABLE port(s) {ports} of {self.rnd.enclosure} now (the enclosure's management "
                f"interface, or unplug); kvpod waits up to {d.OPERATOR_TIMEOUT_S} s for the nodes' paths to drop"
            )

    def _restore(self) -> None:
        if self.rnd.managed:
            self._target_step("restore", d.restore_script([p.port_id for p in self.rnd.ports]))
            self.taken = False
            self.say(f"{self.rnd.label}: port(s) linked to their subsystems again")
        else:
            self.taken = False
            self.say(
                f"{self.rnd.label}: ENABLE port(s) {', '.join(p.address for p in self.rnd.ports)} of "
                f"{self.rnd.enclosure} again now; kvpod waits up to {d.OPERATOR_TIMEOUT_S} s for every path"
            )

    def results(self) -> list[d.NodeDrill]:
        out = []
        for n in self.rnd.nodes:
            if n in self.errors:
                status, why = self.errors[n]
                out.append(d.unanswered(n, self.rnd.label, status, why))
                continue
            a = self.answers[n]
            out.append(
                d.judge(
                    n,
                    self.rnd.label,
                    self.jobs[n],
                    self.max_stall_s,
                    start=a.get("start", []),
                    down=a.get("down"),
                    back=a.get("back"),
                    finish=a.get("finish", []),
                    down_timeout_s=d.DROP_TIMEOUT_S if self.rnd.managed else d.OPERATOR_TIMEOUT_S,
                )
            )
        return out


def run_drill(
    plan: Plan,
    rounds: list[d.Round],
    duration_s: int,
    max_stall_s: float,
    say: Say,
    run_dir: Path | None = None,
) -> d.DrillReport:
    """Every round in turn; each puts its portal back and removes its files however it ends."""
    results: list[d.NodeDrill] = []
    notes: list[str] = []
    with interruptible():
        for i, rnd in enumerate(rounds):
            say(f"round {d.describe_round(rnd)}")
            mine = RoundRun(plan, rnd, duration_s, max_stall_s, say, run_dir).run()
            results.extend(mine)
            short = [n.node for n in mine if n.paths_back is not True]
            if short and i + 1 < len(rounds):
                notes.append(
                    f"stopped after {rnd.label}: {', '.join(short)} did not get every path back, and the next round "
                    "would take away a path it may depend on (not drilled: "
                    + ", ".join(r.label for r in rounds[i + 1 :])
                    + ")"
                )
                break
    return d.DrillReport(plan.pod, "failover", duration_s, max_stall_s, [r.label for r in rounds], results, notes)
