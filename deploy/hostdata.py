"""What kvpod puts in a pyinfra host's data for the roles, read back through one typed accessor.

The keys are in :mod:`deploy.names`; the runner and the orchestration write them, the roles read them here::

    from deploy.hostdata import host_data

    plan = host_data().node  # the host's NodePlan; an error naming the key when the runner did not set it
"""

from __future__ import annotations

from typing import Any

from pyinfra import host

from deploy import names
from deploy.bench import BenchJob
from deploy.operations import host_error
from deploy.plan import NodePlan
from deploy.release import ReleaseRequest


class HostData:
    """Typed view of one host's data: the plan parts kvpod gave it and the options of this run."""

    def __init__(self, data: Any, name: str):
        self._data, self._name = data, name

    def _required(self, key: str, kind: type, what: str, source: str) -> Any:
        value = self._data.get(key)
        if not isinstance(value, kind):
            raise host_error(f"host {self._name} has no {key} {what} in its data ({source} sets it)")
        return value

    @property
    def node(self) -> NodePlan:
        """The node's plan (``kvpod_node``)."""
        return self._required(names.NODE_KEY, NodePlan, "plan", "the runner")

    @property
    def release(self) -> ReleaseRequest:
        """What the node lets go of (``kvpod_release``)."""
        return self._required(names.RELEASE_KEY, ReleaseRequest, "request", "the caller")

    @property
    def bench(self) -> BenchJob:
        """The benchmark to run (``kvpod_bench``)."""
        return self._required(names.BENCH_KEY, BenchJob, "job", "kvpod bench")

    @property
    def wipe(self) -> bool:
        """True only when the user named this node's drive for reformatting (``kvpod_wipe``)."""
        return bool(self._data.get(names.WIPE_KEY, False))

    @property
    def defer_restart(self) -> bool:
        """True: leave vLLM's restart to the rolling restarts (``kvpod_defer_restart``)."""
        return bool(self._data.get(names.DEFER_RESTART_KEY, False))

    @property
    def restart_engines(self) -> list[str] | None:
        """The units the rollout restarts on this node in this batch (``kvpod_restart_engines``); None: all."""
        units = self._data.get(names.RESTART_ENGINES_KEY)
        return None if units is None else list(units)


def host_data() -> HostData:
    """The current pyinfra host's data."""
    return HostData(host.data, host.name)
