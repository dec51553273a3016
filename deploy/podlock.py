"""The pod lock: one run at a time changes a pod, whichever machine it runs from. Pure: records, scripts, decisions.

The lock lives on hosts every changing run must reach, never only on the operator's machine:

- a pod with ``linux-nvmet`` targets: on those targets (every run configures them);
- a pod without one (Data24 enclosures have no SSH): on its nodes.

A run holds the lock when it holds it on a **strict majority** of those hosts, so two runs can never both
hold it (two majorities share a host), yet one dead node does not block a Data24 pod of three or more nodes.
On each host the lock is the file ``/var/lib/kvpod/lock/<pod>.json``: one JSON line naming its holder (user,
controller host, pid, command, since, lease) and a random token. Taking it is atomic on the host (``flock``
on the directory, and the file is created with ``ln``, which fails when it exists); it is written whole
(a temporary file linked or renamed into place) and read back, and the run holds it only where the file it
read back carries its token. Release removes the file only where it still carries that token.

The record names the lock hosts it was taken over (``hosts``): a spec that gains or loses lock hosts cannot
make a second majority, because a run holds the lock only with a majority of its own lock hosts **and** of
the host set of every record it finds (two majorities of one set share a host). Its ``since`` and
``expires`` are written in the lock host's own clock (the script fills them in from ``date``), and every
lock script prints that clock (``@@kvpod-clock <epoch>``): a lease is judged by the clock that wrote it, so
the controllers' clocks need not agree.

A lock is *stale* when its lease expired, or when its holder ran on this machine and its process is gone.
A stale lock is still refused; ``--break-lock`` takes over exactly the stale record it saw (the token must
still match on the host), never a live one.
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from deploy.errors import KvpodError
from deploy.plan import Plan, SshPlan
from deploy.unreachable import sorted_names

LOCK_DIR = "/var/lib/kvpod/lock"
MARKER = "@@kvpod-lock"
CLOCK = "@@kvpod-clock"
DEFAULT_LEASE = timedelta(hours=1)
NO_TOKEN = "-"  # never a token: the break token of a run that breaks nothing


def lock_path(pod: str) -> str:
    return f"{LOCK_DIR}/{pod}.json"


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class LockRecord:
    """Who holds a pod's lock. ``raw`` is set (and the rest empty) when a host's lock file cannot be parsed."""

    pod: str = ""
    token: str = ""
    user: str = ""
    controller: str = ""  # the host name of the machine that ran kvpod
    machine: str = ""  # that machine's /etc/machine-id (host names repeat; machine ids do not)
    boot: str = ""  # its boot id: a pid means something only within one boot
    pid: int = 0
    pid_start: int | None = None  # the process's start time (clock ticks after boot): a reused pid is not it
    command: str = ""
    since: str = ""
    expires: str = ""
    hosts: tuple[str, ...] = ()  # the lock hosts it was taken over (empty: a record of an older kvpod)
    lease_s: int = 0  # the lease in seconds: the lock host writes since/expires from its own clock
    raw: str | None = None

    def line(self) -> str:
        """The record as written on the host: one JSON line (newlines in the command are escaped by JSON)."""
        data = {k: (list(v) if k == "hosts" else v) for k, v in asdict(self).items() if k != "raw"}
        return json.dumps(data, sort_keys=True, separators=(", ", ": "))

    def renewed(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> LockRecord:
        return replace(self, expires=_stamp(now + lease), lease_s=int(lease.total_seconds()))

    def describe(self) -> str:
        if self.raw is not None:
            return f"an unreadable lock record: {self.raw[:200]!r}"
        return (
            f"{self.user}@{self.controller} pid {self.pid}, `{self.command}`, since {self.since}, "
            f"lease until {self.expires}"
        )


def new_record(
    pod: str,
    *,
    user: str,
    controller: str,
    pid: int,
    pid_start: int | None,
    command: str,
    now: datetime,
    lease: timedelta | None = None,
    machine: str = "",
    boot: str = "",
    hosts: list[str] | tuple[str, ...] = (),
) -> LockRecord:
    """A fresh record with a random token, taken over the lock hosts ``hosts``."""
    lease = lease or DEFAULT_LEASE
    return LockRecord(
        pod=pod,
        token=secrets.token_hex(16),
        user=user,
        controller=controller,
        machine=machine,
        boot=boot,
        pid=pid,
        pid_start=pid_start,
        command=command,
        since=_stamp(now),
        expires=_stamp(now + lease),
        hosts=tuple(sorted(hosts)),
        lease_s=int(lease.total_seconds()),
    )


def parse_record(text: str) -> LockRecord:
    """A lock file's content as a record; anything that is not a record comes back with ``raw`` set."""
    try:
        data = json.loads(text)
        record = LockRecord(
            pod=str(data["pod"]),
            token=str(data["token"]),
            user=str(data["user"]),
            controller=str(data["controller"]),
            machine=str(data.get("machine", "")),
            boot=str(data.get("boot", "")),
            pid=int(data["pid"]),
            pid_start=None if data.get("pid_start") is None else int(data["pid_start"]),
            command=str(data["command"]),
            since=str(data["since"]),
            expires=str(data["expires"]),
            hosts=tuple(str(h) for h in data.get("hosts", [])),
            lease_s=int(data.get("lease_s", 0)),
        )
        _parse_stamp(record.expires)
        return record
    except (ValueError, KeyError, TypeError):
        return LockRecord(raw=text.strip())


def parse_output(lines: list[str]) -> LockRecord | None:
    """What a lock script printed after its marker: the lock file now on the host (None: there is none)."""
    if MARKER not in lines:
        raise ValueError("the lock script did not finish")
    rest = [line for line in lines[lines.index(MARKER) + 1 :] if line.strip()]
    return parse_record("\n".join(rest)) if rest else None


def parse_clock(lines: list[str]) -> datetime | None:
    """The lock host's clock as its lock script printed it (``@@kvpod-clock <epoch>``); None when absent."""
    for line in lines:
        word, _, value = line.partition(" ")
        if word == CLOCK and value.strip().isdigit():
            return datetime.fromtimestamp(int(value.strip()), UTC)
    return None


# -- scripts run on a lock host ---------------------------------------------------------------------------


def _prologue(pod: str) -> str:
    d, f = shlex.quote(LOCK_DIR), shlex.quote(lock_path(pod))
    return (
        f"umask 077; d={d}; f={f}\n"
        'mkdir -p "$d" || exit 1\n'
        'exec 9<"$d" || exit 1\n'
        "if command -v flock >/dev/null 2>&1; then flock -w 30 9 || exit 1; fi\n"
    )


def _epilogue() -> str:
    return f"printf '%s %s\\n' {CLOCK} \"$(date +%s)\"\nprintf '%s\\n' {MARKER}\ncat \"$f\" 2>/dev/null\ntrue"


def _host_stamps(record: LockRecord) -> str:
    """Shell that writes the record's line into ``$t`` with ``since`` and ``expires`` from the host's clock
    (GNU ``date -d @N``; the controller's stamps are kept where the host's ``date`` cannot)."""
    line = shlex.quote(record.line())
    lease = int(record.lease_s or (_parse_stamp(record.expires) - _parse_stamp(record.since)).total_seconds())
    fmt = "+%Y-%m-%dT%H:%M:%SZ"
    since, expires = _stamp(_parse_stamp(record.since)), _stamp(_parse_stamp(record.expires))  # [0-9TZ:-] only
    return (
        "now=$(date +%s)\n"
        f'since=$(date -u -d "@$now" {fmt} 2>/dev/null) || since={since}\n'
        f'exp=$(date -u -d "@$((now + {lease}))" {fmt} 2>/dev/null) || exp={expires}\n'
        f"printf '%s\\n' {line} | sed"
        f""" -e 's/"since": "{since}"/"since": "'"$since"'"/'"""
        f""" -e 's/"expires": "{expires}"/"expires": "'"$exp"'"/' > "$t" || exit 1\n"""
    )


def acquire_script(record: LockRecord, break_token: str = NO_TOKEN) -> str:
    """Take the lock (or renew it: the file carries our token), or take over the record of ``break_token``.

    Prints the marker and then the lock file as it now is: the caller holds the lock when it carries its token.
    """
    token, brk = shlex.quote(record.token), shlex.quote(break_token)
    return (
        _prologue(record.pod) + f't="$f.new."{token}\n' + _host_stamps(record) + 'if [ -e "$f" ]; then\n'
        '  tok=$(sed -n \'s/.*"token": "\\([0-9a-f]*\\)".*/\\1/p\' "$f" | head -n 1)\n'
        f'  case "${{tok:-unreadable}}" in {token}|{brk}) mv -f "$t" "$f" ;; esac\n'
        'else ln "$t" "$f" 2>/dev/null\n'
        "fi\n"
        'rm -f "$t"\n' + _epilogue()
    )


def release_script(record: LockRecord) -> str:
    """Remove the lock where it carries our token; prints what is left (nothing, or another run's lock)."""
    needle = shlex.quote(f'"token": "{record.token}"')
    return _prologue(record.pod) + f'grep -qF {needle} "$f" 2>/dev/null && rm -f "$f"\n' + _epilogue()


def read_script(pod: str) -> str:
    """Only read the lock file."""
    return f"f={shlex.quote(lock_path(pod))}\n" + _epilogue()


# -- where the lock lives, and what a run's attempt means --------------------------------------------------


def lock_hosts(plan: Plan) -> list[tuple[str, SshPlan]]:
    """The hosts that hold the pod's lock: its target servers whose driver says so (linux-nvmet), else its nodes
    (sorted by name).

    Enclosures served through one SSH endpoint are one server, named after its first enclosure in the spec,
    as the runner names the host that configures them.
    """
    from deploy.targets import driver_for

    servers: dict[tuple, tuple[str, SshPlan]] = {}
    for t in plan.targets:
        if t.ssh is not None and driver_for(t.kind).lock_host:
            servers.setdefault((t.ssh.host, t.ssh.port, t.ssh.user), (t.name, t.ssh))
    return sorted(list(servers.values()) or [(n.name, n.ssh) for n in plan.nodes])


def quorum(count: int) -> int:
    """A strict majority of ``count`` lock hosts."""
    return count // 2 + 1


Alive = Callable[[int, int | None], bool]  # (pid, start time) -> is that process still running here


@dataclass(frozen=True)
class Controller:
    """The machine running kvpod: host name, machine id, boot id (the last two may be unknown: empty)."""

    host: str
    machine: str = ""
    boot: str = ""


def staleness(record: LockRecord, *, now: datetime, here: Controller, alive: Alive) -> str | None:
    """Why ``record``'s holder is surely gone, or None when it may still be running.

    Its process can be checked only when it ran on this machine: the same machine id (or, for a record
    without one, the same host name).
    """
    if record.raw is not None:
        return "its record cannot be read"
    if now >= _parse_stamp(record.expires):
        return f"its lease expired at {record.expires}"
    same = record.machine == here.machine if record.machine and here.machine else record.controller == here.host
    if not same:
        return None
    if record.boot and here.boot and record.boot != here.boot:
        return f"{record.controller} has restarted since"
    if not alive(record.pid, record.pid_start):
        return f"its process {record.pid} on {record.controller} is gone"
    return None


@dataclass
class Attempt:
    """The lock as each lock host reported it after a lock script (None: the host did not answer)."""

    token: str
    hosts: list[str]
    found: dict[str, LockRecord | None] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    clocks: dict[str, datetime] = field(default_factory=dict)  # each lock host's clock, as its script printed it
    causes: dict[str, str] = field(default_factory=dict)  # unanswered host -> where and why (deploy.unreachable)

    @property
    def held_on(self) -> list[str]:
        return [h for h in self.hosts if (r := self.found.get(h)) is not None and r.token == self.token]

    def host_sets(self) -> list[tuple[str, ...]]:
        """The host sets a majority is counted over: this run's lock hosts, the set each record found was taken
        over, and their union (a host named only by a record is one this run does not hold)."""
        sets = [tuple(sorted(self.hosts))]
        sets += [tuple(sorted(r.hosts)) for r in self.found.values() if r is not None and r.raw is None and r.hosts]
        sets.append(tuple(sorted({h for s in sets for h in s})))
        return list(dict.fromkeys(sets))

    def short_of(self) -> list[tuple[tuple[str, ...], int]]:
        """The host sets of which this run does not hold a majority, with the majority each needs."""
        mine = set(self.held_on)
        return [(s, quorum(len(s))) for s in self.host_sets() if len(mine & set(s)) < quorum(len(s))]

    @property
    def held(self) -> bool:
        return not self.short_of()

    def others(self) -> dict[str, LockRecord]:
        """Lock records of other runs, by host."""
        return {h: r for h, r in self.found.items() if r is not None and r.token != self.token}


class PodLocked(KvpodError):
    """Another run holds the pod's lock, or too few lock hosts answered: nothing was changed."""

    def __init__(self, message: str, holders: dict[str, LockRecord] | None = None, down: dict[str, str] | None = None):
        super().__init__(message)
        self.holders = holders or {}
        self.down = down or {}  # lock hosts that did not answer -> where and why


def refusal(pod: str, attempt: Attempt, stale: dict[str, str | None], *, breaking: bool = False) -> PodLocked:
    """The message of a run that does not hold the lock: each holder's record, and whether it is stale."""
    others = attempt.others()
    need = quorum(len(attempt.hosts))
    lines = []
    if others:
        lines.append(f"pod {pod} is locked by another kvpod run; nothing was changed")
        for host, record in sorted(others.items()):
            lines.append(f"  lock on {host}: {record.describe()}")
            why = stale.get(host)
            if why and not breaking:
                lines.append(f"  stale ({why}): run again with --break-lock to take it over")
            elif why:
                lines.append(f"  stale ({why}), but it changed while being broken; run again")
            else:
                lines.append(
                    "  held by a run that may still be running: wait for it to finish "
                    "(--break-lock takes over a lock only once its holder is gone or its lease expired)"
                )
    missing = sorted_names(attempt.unanswered)
    unwritten = [h for h in attempt.hosts if h in attempt.found and attempt.found[h] is None]
    if missing:
        lines.append(
            f"pod {pod}: {len(missing)} of its {len(attempt.hosts)} lock host(s) down (the lock needs {need} "
            "answering); nothing was changed"
        )
        lines += [f"  {host}: {attempt.causes.get(host, 'did not answer')}" for host in missing]
    if unwritten and not others:
        lines.append(
            f"cannot take the lock of pod {pod}: no lock could be written on {', '.join(sorted_names(unwritten))} "
            f"(the lock needs {need} of {len(attempt.hosts)}); nothing was changed"
        )
    wider = [(s, n) for s, n in attempt.short_of() if set(s) != set(attempt.hosts)]
    if wider and not others and not missing:
        sets = "; ".join(f"{n} of {', '.join(s)}" for s, n in wider)
        lines.append(
            f"cannot take the lock of pod {pod}: a lock record names other lock hosts than this spec, and the lock "
            f"needs a majority of each host set ({sets}); nothing was changed"
        )
    return PodLocked("\n".join(lines), others, {h: attempt.causes.get(h, "did not answer") for h in missing})
