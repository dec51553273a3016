"""What a run did, per host and as a whole: the result model every command reports from (JSON and tables)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.host_status import HostStatus
from deploy.rollout import Rollout
from deploy.secrets import redact
from deploy.unreachable import natural_key


@dataclass
class RunStats:
    """What a run cost, per host name: remote commands at the connector, fact reads served live."""

    commands: Counter = field(default_factory=Counter)
    live_reads: dict[str, list[str]] = field(default_factory=dict)
    snapshot_hits: Counter = field(default_factory=Counter)


@dataclass
class HostResult:
    """What one run did on one host."""

    name: str
    role: str  # switch | target | node
    status: HostStatus = HostStatus.UNCHANGED
    changed_ops: int = 0
    commands: int = 0
    changes: list[str] = field(default_factory=list)
    failed_step: str | None = None
    stderr: list[str] = field(default_factory=list)
    note: str | None = None
    restart_pending: bool = False
    restart_units: list[str] = field(default_factory=list)  # restart_pending: the engines due, in restart order
    planned: list[tuple[str, list[str]]] = field(default_factory=list)  # dry runs: (operation, commands)
    diffs: dict[str, str] = field(default_factory=dict)  # dry runs: remote path -> unified diff
    remote_commands: int = 0  # every command this host ran for the run, counted at the connector
    output: dict[str, list[str]] = field(default_factory=dict)  # run_output: operation -> its stdout lines
    cause: str | None = None  # unreachable: why, in one phrase (deploy.unreachable); the note adds where

    def fail(self, step: str, stderr: list[str]) -> None:
        """The host failed at ``step`` (the first failing step is kept) with ``stderr``."""
        self.status = HostStatus.FAILED
        self.failed_step = self.failed_step or step
        self.stderr = stderr

    def as_json(self) -> dict[str, Any]:
        return _redacted(self._as_json())

    def _as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "status": str(self.status),
            "changed_operations": self.changed_ops,
            "commands": self.commands,
            "changes": self.changes,
            "failed_step": self.failed_step,
            "stderr": self.stderr[-20:],
            "note": self.note,
            "restart_pending": self.restart_pending,
            "restart_units": self.restart_units,
            "planned": [{"operation": op, "commands": cmds} for op, cmds in self.planned],
            "diffs": self.diffs,
            "remote_commands": self.remote_commands,
            "cause": self.cause,
        }


def _redacted(value: Any) -> Any:
    """``value`` (JSON-like) with every known secret redacted in its strings (:mod:`deploy.secrets`)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


@dataclass
class RunReport:
    hosts: list[HostResult]
    seconds: float
    run_dir: Path | None
    dry: bool
    outcome: str = "completed"  # completed | refused (lock busy, unsafe step) | interrupted
    reason: str | None = None  # why a run was refused or interrupted
    rollout: Rollout | None = None  # the rolling restart of a real run, when one was due

    @property
    def ok(self) -> bool:
        bad = (HostStatus.FAILED, HostStatus.UNREACHABLE)
        return self.outcome == "completed" and all(h.status not in bad for h in self.hosts)

    @property
    def unreachable(self) -> list[HostResult]:
        """The unreachable hosts, numerically sorted by name."""
        down = (h for h in self.hosts if h.status == HostStatus.UNREACHABLE)
        return sorted(down, key=lambda h: natural_key(h.name))

    @property
    def changed(self) -> int:
        return sum(h.changed_ops for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "reason": self.reason,
            "dry": self.dry,
            "seconds": round(self.seconds, 1),
            "changed_operations": self.changed,
            "hosts": {h.name: h.as_json() for h in self.hosts},
            "rollout": _redacted(self.rollout.as_json()) if self.rollout else None,
        }
