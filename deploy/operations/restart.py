"""The pending restart: which engines of a node wait for the rolling restart, as the result of one step.

The vllm role makes one :class:`PendingRestart` per deploy, hands it to each engine's service operation (which
records whether that engine's restart was deferred) and ends with :func:`restart_step`, the decision. Whoever
ran the deploy reads the decision through :func:`restart_pending` (per engine: :func:`pending_units`) from the
operations of the host in its pyinfra state; nothing travels in host data.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from pyinfra import host
from pyinfra.api import operation

RESTART_STEP = "vLLM restarts"


class PendingRestart:
    """The restart decision of one node's deploy: the engines whose restart waits for the rollout, or ``force``
    (all of them: a retired unit still running must be stopped by the rollout first)."""

    def __init__(self, force: bool = False) -> None:
        self.force = force
        self.engines: dict[str, bool] = {}  # unit -> its restart is deferred
        self.decided = False  # the decision step has run (a real run: the engines' operations ran before it)

    def record(self, unit: str, deferred: bool) -> None:
        self.engines[unit] = deferred

    @property
    def due(self) -> bool:
        return self.decided and (self.force or any(self.engines.values()))

    @property
    def units(self) -> list[str]:
        """The engines' units whose restart is due (all recorded ones when forced), in recording order."""
        if not self.decided:
            return []
        return [u for u, deferred in self.engines.items() if deferred or self.force]


_decisions: WeakKeyDictionary = WeakKeyDictionary()  # the decision step's operation result -> its decision


@operation()
def restart_decided(decision: PendingRestart):
    """
    The engines' deferred restarts, decided: noop either way; the decision is read with :func:`restart_pending`.

    + decision: the :class:`PendingRestart` the engines' service operations recorded into
    """
    decision.decided = True
    host.noop("engine restarts deferred to the rollout" if decision.due else "no engine restart due")
    return
    yield


def decide_restart(decision: PendingRestart, name: str = RESTART_STEP):
    """Add the decision step; returns its operation result, which the decision is attached to."""
    meta = restart_decided(name=name, decision=decision)
    _decisions[meta] = decision
    return meta


def _host_decisions(state, host_) -> list[PendingRestart]:
    ops = state.ops.get(host_, {}).values()
    return [d for d in (_decisions.get(op.operation_meta) for op in ops) if d is not None]


def restart_pending(state, host_) -> bool:
    """Whether the host's deploy in ``state`` left a vLLM restart due (deferred to the rollout)."""
    return any(d.due for d in _host_decisions(state, host_))


def pending_units(state, host_) -> list[str]:
    """The engine units whose restart the host's deploy in ``state`` left due."""
    return [u for d in _host_decisions(state, host_) for u in d.units]
