"""Round trips: a host's fact reads served from its one-command snapshot while the host is unchanged.

Before a deploy runs, every fact it compares against (``reads``, listed by the role from the plan) is read in
one remote command per host (:class:`deploy.facts.snapshot.HostSnapshot`), and the operations' fact reads are
served from that snapshot until a command the host runs may change them (:mod:`deploy.facts.effects`; an
unknown command, every read): those are read live again, so a step that depends on an earlier change sees the
host as it is, and a value read live is served again until a command may change it. Every command is counted
at the connector (:class:`deploy.engine.RunStats`), through the seam :func:`deploy.engine.pyinfra_adapter.serve`
gives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pyinfra.api import State

from deploy.engine.pyinfra_adapter import LiveRead, live_read, serve
from deploy.engine.results import RunStats
from deploy.facts.copies import deep_copy
from deploy.facts.effects import ReadInvalidation, effect_of_call
from deploy.facts.read_keys import read_key_of
from deploy.facts.snapshot import HostSnapshot, SnapshotReads


class SnapshotReader:
    """Serves the host's fact reads from its snapshot while it is fresh; counts the host's commands.

    A command the host runs while executing (not a fact read) stales the values it may change
    (:mod:`deploy.facts.effects`; an unknown command every value): those are read live again, and kept.
    """

    def __init__(self, state: State, host, stats: RunStats):
        self.state, self.host, self.stats = state, host, stats
        self.values: dict[str, Any] = {}
        self.fresh = False
        self.reading = False
        self.effects, self.inside = ReadInvalidation(), False  # reads go stale by what commands change
        serve(host, self)
        self.live: LiveRead = live_read(host)

    def command(self, name: str, args: tuple, kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
        """A command at the connector: counted; one that is not a read while executing stales what it may change."""
        self.stats.commands[self.host.name] += 1
        if self.reading or self.inside or not self.state.is_executing:
            return run()
        self.effects.ran(self.values, effect_of_call(name, args, kwargs))
        self.inside = True  # an upload's own commands (the move of a sudo upload) are the upload's
        try:
            return run()
        finally:
            self.inside = False

    def load(self, reads: list) -> None:
        """Read ``reads`` in one command; nothing to read (or a failure) leaves every read live."""
        if not reads:
            return
        try:
            self.values = self._live(HostSnapshot, reads=SnapshotReads(reads))
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
                key = read_key_of(cls, kwargs)
        if self.fresh and key in self.values:
            self.stats.snapshot_hits[self.host.name] += 1
            return deep_copy(self.values[key])
        self.stats.live_reads.setdefault(self.host.name, []).append(key or cls.__name__)
        value = self._live(cls, *args, **kwargs)
        if self.fresh and self.effects.keep(key):  # served again until a command stales it
            self.values[key] = deep_copy(value)
        return value


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
