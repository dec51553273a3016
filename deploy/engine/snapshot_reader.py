"""Round trips: a host's fact reads served from its one-command snapshot while the host is unchanged.

Before a deploy runs, every fact it compares against (``reads``, listed by the role from the plan) is read in
one remote command per host (:class:`deploy.facts.snapshot.HostSnapshot`), and the operations' fact reads are
served from that snapshot until a command the host runs may change them (:mod:`deploy.facts.effects`; an
unknown command, every read): those are read live again, so a step that depends on an earlier change sees the
host as it is, and a value read live is served again until a command may change it. Every command is counted
at the connector (:class:`deploy.engine.RunStats`), through the seam :func:`deploy.engine.pyinfra_adapter.serve`
gives.

A stale read the snapshot declared is read again with every other declared read that is stale at that moment, in
one command (the same script over those reads: a refresh): the refreshed values are kept as a live read's are
(served until a command stales them; a read of a part still settling is served to the read that asked for it
and kept for no other), so a later step's read is often already fresh. A read the snapshot did not declare, or
one the refresh could not answer, is read on its own.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from typing import Any

from pyinfra.api import State
from pyinfra.facts.server import TmpDir

from deploy.engine.pyinfra_adapter import LiveRead, live_read, serve
from deploy.engine.results import RunStats
from deploy.facts.copies import deep_copy
from deploy.facts.effect_model import ReadInvalidation
from deploy.facts.effects import effect_of_call
from deploy.facts.read_keys import read_key_of
from deploy.facts.snapshot import DEVICE_FACTS, HostSnapshot, NamespaceReads, Read, SnapshotReads, fact_class

# where pyinfra puts an upload before moving it into place (read once per host, by the first upload; the same
# for the whole run: it depends on nothing a command changes)
TMP_DIR = Read.of(TmpDir)


class SnapshotReader:
    """Serves the host's fact reads from its snapshot while it is fresh; counts the host's commands.

    A command the host runs while executing (not a fact read) stales the values it may change
    (:mod:`deploy.facts.effects`; an unknown command every value): those are read live again, and kept.
    """

    def __init__(self, state: State, host, stats: RunStats):
        self.state, self.host, self.stats = state, host, stats
        self.values: dict[str, Any] = {}
        self.reads: list = []  # the snapshot's reads (their keys are found at the first refresh: most hosts need none)
        self.first: set[str] = set()  # the keys the snapshot answered
        self.declared: dict[str, Read] = {}  # the snapshot's reads by key: refreshed together when stale
        self.namespaces: tuple[NamespaceReads, ...] = ()  # its reads of a namespace's devices (keys found on the host)
        self.unanswered: set[str] = set()  # declared reads a snapshot could not answer: read on their own
        self.answered: set[str] = set()  # values the snapshot gave besides its reads (a path's other stat fact)
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
        """Read ``reads`` (and :data:`TMP_DIR`) in one command; nothing to read (or a failure) leaves every read
        live."""
        if not reads:
            return
        if TMP_DIR not in reads:
            reads = [*reads, TMP_DIR]
        try:
            self.values = self._live(HostSnapshot, reads=SnapshotReads(reads))
        except Exception:  # an unreachable host or a broken shell: the deploy reads live and reports it
            self.values = {}
        self.fresh = bool(self.values)
        self.reads, self.first = reads, set(self.values)

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
        """A fact read: from the snapshot while fresh, else by a refresh or live (each recorded in
        ``stats.live_reads``)."""
        key = None
        if not args:
            with contextlib.suppress(TypeError):
                key = read_key_of(cls, kwargs)
        if self.fresh and key in self.values:
            self.stats.snapshot_hits[self.host.name] += 1
            return deep_copy(self.values[key])
        if self.fresh and key is not None and self._refreshable() and key not in self.unanswered:
            devices = bool(self.namespaces) and cls in DEVICE_FACTS
            if key in self.declared or key in self.answered or devices:
                found, value = self._refresh(key, devices)
                if found:
                    return value
        self.stats.live_reads.setdefault(self.host.name, []).append(key or cls.__name__)
        value = self._live(cls, *args, **kwargs)
        if self.fresh and self.effects.keep(key):  # served again until a command stales it
            self.values[key] = deep_copy(value)
        return value

    def _refreshable(self) -> bool:
        """Whether stale reads may be refreshed (their keys found from the snapshot's reads the first time)."""
        if self.reads:
            self.declared = {r.key: r for r in self.reads if isinstance(r, Read)}
            self.namespaces = tuple(r for r in self.reads if isinstance(r, NamespaceReads))
            self.unanswered = {k for k in self.declared if k not in self.first}
            self.answered = {k for k in self.first if k not in self.declared}
            self.reads = []
        return bool(self.declared or self.namespaces)

    def _refresh(self, key: str, devices: bool) -> tuple[bool, Any]:
        """Read every declared read that is stale now in one command (``devices``: the namespace's devices too);
        keep what may be kept; ``(True, value of key)``, or ``(False, None)`` when the refresh did not answer it."""
        stale = [r for k, r in self.declared.items() if k not in self.values and k not in self.unanswered]
        stale += [r for k in self.answered if k not in self.values and (r := read_of(k)) and k not in self.unanswered]
        reads = [*stale, *(self.namespaces if devices else ())]
        self.stats.live_reads.setdefault(self.host.name, []).append(f"{key} (refresh of {len(reads)} reads)")
        try:
            values = self._live(HostSnapshot, reads=SnapshotReads(reads))
        except Exception:  # as the first read: values = None, and the reads are read live from now on
            values = None
        if not isinstance(values, dict):
            self.declared, self.answered, self.namespaces = {}, set(), ()  # pyinfra reports it, read by read
            return False, None
        self.unanswered |= {r.key for r in stale if r.key not in values}
        for k, v in values.items():
            if k not in self.values and self.effects.keep(k):
                self.values[k] = deep_copy(v)
        if key not in values:
            self.unanswered.add(key)
            return False, None
        return True, values[key]


@functools.lru_cache(maxsize=4096)
def read_of(key: str) -> Read | None:
    """The read of a value's key (``module.Fact {"arg": value}``), to read it again; None if not a fact of
    pyinfra's or kvpod's (every host of a fleet has the same keys)."""
    name, _, args = key.partition(" ")
    cls = fact_class(name)
    try:
        kwargs = json.loads(args) if args else {}
    except ValueError:
        return None
    if cls is None or not isinstance(kwargs, dict):
        return None
    try:
        read = Read.of(cls, **kwargs)
        return read if read.key == key else None
    except (TypeError, ValueError):  # arguments the fact does not take
        return None


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
