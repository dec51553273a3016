"""What kvpod keeps on the operator's machine (``$KVPOD_STATE_DIR``): run directories, the plan of the last
successful bring-up of each pod, the journal of a reassignment in progress; and the crash points that the
interruption tests kill kvpod at."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from deploy.plan import Plan, single_engine_upgraded


def state_dir() -> Path:
    base = os.environ.get("KVPOD_STATE_DIR") or Path.home() / ".local" / "state" / "kvpod"
    return Path(base)


def new_run_dir(pod: str, command: str) -> Path:
    """A fresh directory for one run's logs: ``<state>/runs/<pod>/<UTC time>-<command>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = state_dir() / "runs" / pod / f"{stamp}-{command}"
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{stamp}-{command}-{n}")
    path.mkdir(parents=True)
    return path


def applied_plan_path(pod: str) -> Path:
    return state_dir() / "pods" / pod / "applied-plan.json"


def load_applied_plan(pod: str) -> Plan | None:
    """The plan of the last successful ``kvpod up`` of this pod on this machine (for --prune and moves)."""
    path = applied_plan_path(pod)
    if not path.exists():
        return None
    return Plan.model_validate(single_engine_upgraded(json.loads(path.read_text())))


def save_applied_plan(plan: Plan) -> None:
    _replace(applied_plan_path(plan.pod), plan.to_json())


def pending_restarts_path(pod: str) -> Path:
    return state_dir() / "pending-restarts" / f"{pod}.json"


def load_pending_restarts(pod: str) -> set[str]:
    """Nodes whose vLLM restart a stopped rollout left due (their new configuration is on the node)."""
    return set(load_pending_units(pod))


def load_pending_units(pod: str) -> dict[str, list[str] | None]:
    """Per node whose vLLM restart a stopped rollout left due: the engine units still due (None: all of them, as
    recorded by releases that kept node names only)."""
    path = pending_restarts_path(pod)
    if not path.exists():
        return {}
    kept = json.loads(path.read_text())
    if isinstance(kept, list):
        return dict.fromkeys(kept)
    return {node: None if units is None else list(units) for node, units in kept.items()}


def save_pending_restarts(pod: str, nodes: set[str]) -> None:
    """Record the nodes whose restart is still due, all of their engines (none: the record is removed); atomic."""
    save_pending_units(pod, dict.fromkeys(nodes))


def save_pending_units(pod: str, units: dict[str, list[str] | None]) -> None:
    """Record, per node whose restart is still due, its engine units still due (None: all); none: the record is
    removed; atomic."""
    path = pending_restarts_path(pod)
    if not units:
        path.unlink(missing_ok=True)
        return
    _replace(path, json.dumps(dict(sorted(units.items())), indent=1) + "\n")


def journal_path(pod: str) -> Path:
    return state_dir() / "journal" / f"{pod}.json"


def read_journal(pod: str) -> dict | None:
    path = journal_path(pod)
    return json.loads(path.read_text()) if path.exists() else None


def write_journal(pod: str, entry: dict | None) -> None:
    """Record (or, with None, clear) the reassignment in progress; atomic, so a crash leaves a whole file."""
    path = journal_path(pod)
    if entry is None:
        path.unlink(missing_ok=True)
        return
    _replace(path, json.dumps(entry, indent=2, sort_keys=True) + "\n")


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def crash_point(step: str) -> None:
    """Fault injection for the interruption tests: ``KVPOD_CRASH_AFTER=<step>`` kills this process there."""
    if os.environ.get("KVPOD_CRASH_AFTER") == step:
        os.kill(os.getpid(), signal.SIGKILL)
