"""A pod behind a recording runner: ``kvpod up``/``check``/``diff``/``reassign`` run through the real command line
and orchestration, while the two runner entry points the orchestration uses (the survey that reads and evaluates
every host, and ``run_phase`` that applies one deploy to hosts) are replaced by fakes that answer from a small
model of the live pod and record, in order, every phase with its hosts and their host data.

The live pod: which NVMe subsystems each node holds, which host NQNs the target admits to each subsystem, the
status each host's evaluation reports (``would-change`` by default, so a real run goes through every phase) and
the hosts that do not answer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from deploy.engine import HostResult
from deploy.names import NODE_KEY, RESTART_ENGINES_KEY
from deploy.plan import Plan


@dataclass
class Step:
    """One thing the engine did: ``kind`` is ``read`` (a survey), ``evaluate`` (a dry evaluation) or ``phase``."""

    kind: str
    role: str
    hosts: list[str]
    data: dict[str, dict] = field(default_factory=dict)
    deploys: list[str] = field(default_factory=list)  # an evaluation's deploys, by name


class RecordedPod:
    """The live pod the fakes answer from, and the steps the engine took."""

    def __init__(self, held: dict[str, set[str]], admitted: dict[str, list[str]] | None = None):
        self.held = held
        self.admitted = admitted or {}
        self.status: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.failing: set[str] = set()  # phases (roles) whose hosts all fail
        self.restart_pending: set[str] = set()  # nodes whose node phase leaves a vLLM restart to the rollout
        self.restart_units: dict[str, list[str]] = {}  # the engines those restarts are due on (none named: all)
        self.unhealthy: set[str] = set()  # nodes (or ``node/unit`` engines) not healthy after a restart
        self.steps: list[Step] = []

    @classmethod
    def as_applied(cls, plan: Plan) -> RecordedPod:
        """A pod where ``plan`` is in place: each node holds its drive, the target admits each to it alone."""
        held = {n.name: {n.namespace.subsystem_nqn} for n in plan.nodes}
        admitted = {s.nqn: [s.allowed_host_nqn] for t in plan.targets for s in t.subsystems if s.allowed_host_nqn}
        return cls(held, admitted)

    def phases(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "phase"]

    def phase(self, role: str) -> Step:
        found = [s for s in self.phases() if s.role == role]
        assert len(found) == 1, f"expected one {role} phase, got {[(s.role, s.hosts) for s in self.phases()]}"
        return found[0]

    def phase_order(self) -> list[str]:
        return [s.role for s in self.phases()]

    def touched(self) -> list[Step]:
        """Every step that reached a host (a survey or a phase)."""
        return [s for s in self.steps if s.kind in ("read", "phase")]

    # -- the fakes -----------------------------------------------------------------------------------------

    def survey_class(self) -> type:
        pod = self

        class FakeSurvey:
            def __init__(self, hosts: list[tuple[str, dict, list]], **_: Any):
                self.names = [name for name, _, _ in hosts]

            def __enter__(self) -> FakeSurvey:
                pod.steps.append(Step("read", "survey", list(self.names)))
                return self

            def __exit__(self, *exc: Any) -> None:
                return None

            def reachable(self, name: str) -> bool:
                return name not in pod.unreachable

            def read(self, name: str, fact: type, **_: Any) -> Any:
                if fact.__name__ == "NvmetConfig":
                    return {"subsystems": {nqn: {"allowed_hosts": list(h)} for nqn, h in pod.admitted.items()}}
                assert fact.__name__ == "NvmeSubsystems", fact
                held = pod.held.get(name, set())
                return {nqn: {"controllers": [{"transport": "rdma"}], "namespaces": []} for nqn in held}

            def evaluate(self, name: str, role: str, deploys: list, data: dict, describe: bool) -> HostResult:
                names = [getattr(d, "__name__", repr(d)) for d in deploys]
                pod.steps.append(Step("evaluate", role, [name], {name: dict(data)}, names))
                if name in pod.unreachable:
                    return HostResult(name, role, status="unreachable", note="SSH connection failed")
                return HostResult(name, role, status=pod.status.get(name, "would-change"))

        return FakeSurvey

    def run_phase(self, role: str, hosts: list[tuple[str, dict]], deploy: Any, **_: Any) -> list[HostResult]:
        self.steps.append(Step("phase", role, [n for n, _ in hosts], {n: dict(d) for n, d in hosts}))
        if role == "restart":
            return [self._restart(n, d) for n, d in hosts]
        results = [HostResult(n, role, status=self._phase_status(role, n), changed_ops=1) for n, _ in hosts]
        for r in results:
            r.restart_pending = role == "node" and r.name in self.restart_pending and r.status == "changed"
            r.restart_units = list(self.restart_units.get(r.name, [])) if r.restart_pending else []
        return results

    def _restart(self, name: str, data: dict) -> HostResult:
        """A restart batch on one node: each engine's verdict as the wait probe prints it."""
        from roles.vllm_restart import RESULT_PREFIX, WAIT_OPERATION

        if name in self.unreachable:
            return HostResult(name, "restart", status="unreachable", note="SSH connection lost")
        lines = []
        units = data[RESTART_ENGINES_KEY]
        verdicts = {u: name not in self.unhealthy and f"{name}/{u}" not in self.unhealthy for u in units}
        healthy = all(verdicts.values())
        for unit, ok in verdicts.items():
            verdict = {"unit": unit, "healthy": ok, "detail": "healthy" if ok else "GET /health answered 503"}
            if not ok:
                verdict["journal"] = [f"{name} {unit} journal line {i}" for i in range(1, 21)]
            lines.append(RESULT_PREFIX + json.dumps(verdict))
        result = HostResult(name, "restart", status="changed" if healthy else "failed", changed_ops=1)
        result.output = {f"vllm restart | {WAIT_OPERATION}": lines}  # pyinfra names it after its deploy too
        if not healthy:
            result.failed_step = WAIT_OPERATION
            result.stderr = [f"kvpod: {unit} not healthy after 30 s" for unit, ok in verdicts.items() if not ok]
        return result

    def _phase_status(self, role: str, name: str) -> str:
        if name in self.unreachable:
            return "unreachable"
        return "failed" if role in self.failing else "changed"


class NoLock:
    """The pod lock, taken nowhere (the lock has its own tests)."""

    names: tuple[str, ...] = ()

    def with_acquire(self, hosts: list) -> list:
        return hosts

    def confirm(self, survey: Any) -> None:
        return None

    def acquire(self, **_: Any) -> None:
        return None

    def renew(self, *_: Any) -> None:
        return None

    def release(self, *_: Any) -> None:
        return None


def install(monkeypatch: pytest.MonkeyPatch, pod: RecordedPod, state_dir: Any) -> None:
    """Put the fakes in place of the runner's survey and phases, and of the pod lock."""
    from deploy import orchestrate, podlock_run
    from deploy.pipeline import restarts

    monkeypatch.setenv("KVPOD_STATE_DIR", str(state_dir))
    monkeypatch.setattr(orchestrate, "Survey", pod.survey_class())
    monkeypatch.setattr(orchestrate, "run_phase", pod.run_phase)
    monkeypatch.setattr(restarts, "run_phase", pod.run_phase)
    monkeypatch.setattr(podlock_run.PodLock, "for_run", classmethod(lambda cls, plan, argv=None: NoLock()))


def kvpod(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run ``kvpod ARGS`` through its entry point: (exit code, stdout + stderr)."""
    from deploy.cli import main

    monkeypatch.setattr(sys, "argv", ["kvpod", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out + captured.err


def node_data(step: Step) -> dict[str, dict]:
    """Host data of the nodes of a step, by node name."""
    return {name: data for name, data in step.data.items() if NODE_KEY in data or "kvpod_release" in data}
