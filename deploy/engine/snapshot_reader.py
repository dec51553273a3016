"""Round trips: a host's fact reads served from its one-command snapshot while the host is unchanged.

Before a deploy runs, every fact it compares against (``reads``, listed by the role from the plan) is read in
one remote command per host (:class:`deploy.facts.snapshot.HostSnapshot`), and the operations' fact reads are
served from that snapshot until the host runs its first change; from then on they are read live, so a step
that depends on an earlier change sees the host as it is. Every command is counted at the connector
(:class:`deploy.engine.RunStats`), through the seam :func:`deploy.engine.pyinfra_adapter.serve` gives.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

from pyinfra.api import State

from deploy.engine.pyinfra_adapter import LiveRead, live_read, serve
from deploy.engine.results import RunStats
from deploy.facts.snapshot import HostSnapshot, read_key


class SnapshotReader:
    """Serves the host's fact reads from its snapshot while it is fresh; counts the host's commands.

    The snapshot goes stale at the first command the host runs while executing that is not a fact read
    (a change), after which every read is live again.
    """

    def __init__(self, state: State, host, stats: RunStats):
        self.state, self.host, self.stats = state, host, stats
        self.values: dict[str, Any] = {}
        self.fresh = False
        self.reading = False
        serve(host, self)
        self.live: LiveRead = live_read(host)

    def command(self) -> None:
        """A command at the connector: counted; one that is not a read while executing stales the snapshot."""
        self.stats.commands[self.host.name] += 1
        if not self.reading and self.state.is_executing:
            self.fresh = False

    def load(self, reads: list) -> None:
        """Read ``reads`` in one command; nothing to read (or a failure) leaves every read live."""
        if not reads:
            return
        try:
            self.values = self._live(HostSnapshot, reads=tuple(reads))
        except Exception:  # an unreachable host or a broken shell: the deploy reads live and reports it
            self.values = {}
        self.fresh = bool(self.values)

    def seed(self, values: dict[str, Any]) -> None:
        """Serve ``values`` (a snapshot read by an earlier state of this run) without reading again."""
        self.values, self.fresh = values, bool(values)

    def _live(self, cls, *args, **kwargs):
        self.reading = True
        try:
            return self.live(cls, *args, **kwargs)
        finally:
            self.reading = False

    def read(self, cls, args: tuple, kwargs: dict[str, Any]):
        """A fact read: from the snapshot while fresh, else live (recorded in ``stats.live_reads``)."""
        key = None
        if not args:
            with contextlib.suppress(TypeError):
                key = read_key(cls, kwargs)
        if self.fresh and key in self.values:
            self.stats.snapshot_hits[self.host.name] += 1
            return copy.deepcopy(self.values[key])
        self.stats.live_reads.setdefault(self.host.name, []).append(key or cls.__name__)
        return self._live(cls, *args, **kwargs)


def load_snapshots(state: State, readers: dict, reads_of: Callable[[Any], list]) -> None:
    """Read every reachable host's snapshot in parallel (one command each); ``reads_of(host)`` lists its reads."""
    import gevent
    from pyinfra.context import ctx_host, ctx_state

    def load(host) -> None:
        with ctx_state.use(state), ctx_host.use(host):
            try:
                reads = reads_of(host)
            except Exception:  # a plan the deploy will refuse with its own message: read live
                reads = []
            readers[host].load(reads)

    gevent.joinall([state.pool.spawn(load, h) for h in readers if h in state.active_hosts])
