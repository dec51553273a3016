"""Taking and releasing the pod lock on its hosts, through :mod:`deploy.engine` (decisions: :mod:`deploy.podlock`).

A changing run takes the lock in the same command as its state read (``kvpod up`` on a converged pod: the read
and the release, two commands on a lock host, one elsewhere). ``kvpod reassign`` and ``--break-lock`` take it
first, on their own; the read then finds it held by the same token.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from deploy.engine import RunStats, Survey
from deploy.facts.podlock import PodLockAcquire, PodLockHolder, PodLockRelease
from deploy.facts.snapshot import Read
from deploy.hosts import ssh_host_data
from deploy.plan import Plan, SshPlan
from deploy.podlock import (
    DEFAULT_LEASE,
    NO_TOKEN,
    Attempt,
    Controller,
    LockRecord,
    lock_hosts,
    new_record,
    refusal,
    staleness,
)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (``/proc/<pid>/stat``, field 22); None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` runs on this machine and is the one that started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or _start_ticks(pid) in (start, None)


def _first_line(path: str) -> str:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""


def this_controller() -> Controller:
    """This machine: host name, ``/etc/machine-id``, boot id."""
    return Controller(
        socket.gethostname(), _first_line("/etc/machine-id"), _first_line("/proc/sys/kernel/random/boot_id")
    )


def lease() -> timedelta:
    """The lock's lease: ``KVPOD_LOCK_LEASE`` seconds, default one hour; renewed after each phase of a run."""
    text = os.environ.get("KVPOD_LOCK_LEASE", "")
    return timedelta(seconds=int(text)) if text.isdigit() and int(text) > 0 else DEFAULT_LEASE


@dataclass
class PodLock:
    """One run's hold on its pod's lock: its record, the lock hosts, and where it holds the lock now."""

    record: LockRecord
    hosts: list[tuple[str, SshPlan]]
    held_on: list[str] = field(default_factory=list)
    break_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_run(cls, plan: Plan, argv: list[str] | None = None) -> PodLock:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        command = shlex.join(["kvpod", *(sys.argv[1:] if argv is None else argv)])
        pid, here = os.getpid(), this_controller()
        record = new_record(
            plan.pod,
            user=user,
            controller=here.host,
            machine=here.machine,
            boot=here.boot,
            pid=pid,
            pid_start=_start_ticks(pid),
            command=command,
            now=datetime.now(UTC),
            lease=lease(),
            hosts=[name for name, _ in lock_hosts(plan)],
        )
        return cls(record, lock_hosts(plan))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.hosts]

    def acquire_read(self, host: str) -> Read:
        return Read.of(PodLockAcquire, record=self.record.line(), break_token=self.break_tokens.get(host, NO_TOKEN))

    def with_acquire(self, hosts: list[tuple[str, dict, list]]) -> list[tuple[str, dict, list]]:
        """A survey's ``(name, data, reads)`` with the lock taken in the lock hosts' read."""
        mine = set(self.names)
        return [
            (name, data, [*reads, self.acquire_read(name)] if name in mine else reads) for name, data, reads in hosts
        ]

    def confirm(self, survey: Survey) -> None:
        """After the survey: hold the lock on a majority of the lock hosts, or release what was taken and refuse."""
        attempt = _attempt(self, survey, {h: self.acquire_read(h) for h in self.names})
        self.held_on = attempt.held_on
        if not attempt.held:
            raise _refusal(self, attempt, breaking=bool(self.break_tokens))

    def acquire(self, *, break_lock: bool, stats: RunStats | None = None) -> None:
        """Take the lock on its own (before anything else); with ``break_lock``, take over stale locks only."""
        if break_lock:
            seen = self._run({h: Read.of(PodLockHolder, pod=self.record.pod) for h in self.names}, stats)
            stale = _stale(seen)
            live = {h for h in seen.others() if not stale.get(h)}
            if live:
                raise _refusal(self, seen)
            self.break_tokens = {h: r.token or "unreadable" for h, r in seen.others().items()}
        attempt = self._run({h: self.acquire_read(h) for h in self.names}, stats)
        self.held_on = attempt.held_on
        if not attempt.held:
            self.release(stats)
            raise _refusal(self, attempt, breaking=break_lock)

    def renew(self, stats: RunStats | None = None) -> None:
        """Extend the lease where the lock is held (between the phases of a long run)."""
        if self.held_on:
            self.record = self.record.renewed(datetime.now(UTC), lease())
            self.break_tokens = {}
            self._run({h: self.acquire_read(h) for h in self.held_on}, stats)

    def release(self, stats: RunStats | None = None) -> None:
        """Remove the lock wherever it still carries this run's token."""
        if self.held_on:
            held, self.held_on = self.held_on, []
            self._run({h: Read.of(PodLockRelease, record=self.record.line()) for h in held}, stats)

    def _run(self, reads: dict[str, Read], stats: RunStats | None) -> Attempt:
        ssh = dict(self.hosts)
        hosts = [(name, ssh_host_data(ssh[name]), [read]) for name, read in reads.items()]
        with Survey(hosts, stats=stats if stats is not None else RunStats()) as survey:
            return _attempt(self, survey, reads)


def _attempt(lock: PodLock, survey: Survey, reads: dict[str, Read]) -> Attempt:
    attempt = Attempt(lock.record.token, lock.names)
    for name in lock.names:
        values = None
        with contextlib.suppress(KeyError):
            values = survey.values(name)
        if name not in reads or values is None or reads[name].key not in values:
            attempt.unanswered.add(name)
            if name in reads and values is None:
                attempt.causes[name] = survey.cause(name)
        else:
            attempt.found[name] = values[reads[name].key]["lock"]
            clock = values[reads[name].key].get("clock")
            if clock is not None:
                attempt.clocks[name] = clock
    return attempt


def _stale(attempt: Attempt) -> dict[str, str | None]:
    """Why each other run's record is stale; its lease judged by the lock host's own clock."""
    now, here = datetime.now(UTC), this_controller()
    return {
        h: staleness(r, now=attempt.clocks.get(h, now), here=here, alive=process_alive)
        for h, r in attempt.others().items()
    }


def _refusal(lock: PodLock, attempt: Attempt, breaking: bool = False):
    return refusal(lock.record.pod, attempt, _stale(attempt), breaking=breaking)
