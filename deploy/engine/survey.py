"""Many hosts read at once (one command each) and their deploys evaluated without changing anything.

A converged pod costs one command per host: its snapshot. The survey runs the same :class:`Session` as a
phase, with operations evaluated as they are prepared and never executed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.engine.describe import describe_host
from deploy.engine.log import pyinfra_log
from deploy.engine.results import HostResult, RunStats
from deploy.engine.session import Session


class Survey:
    """``hosts`` are ``(name, host data, reads)``. Use as a context manager; :meth:`values` gives a host's
    snapshot (None when unreachable), :meth:`evaluate` prepares deploys on one host as a dry run would and
    reports what they would change.
    """

    def __init__(
        self,
        hosts: list[tuple[str, dict[str, Any], list]],
        *,
        stats: RunStats,
        run_dir: Path | None = None,
        connect_timeout: int = 20,
    ):
        self.hosts, self.stats, self.run_dir, self.connect_timeout = hosts, stats, run_dir, connect_timeout
        self._reads = {name: reads for name, _, reads in hosts}

    def __enter__(self) -> Survey:
        self._log = pyinfra_log(self.run_dir)
        self._log.__enter__()
        self.session = Session(
            [(name, data) for name, data, _ in self.hosts],
            check_for_changes=True,  # evaluate deploys, change nothing
            stats=self.stats,
            connect_timeout=self.connect_timeout,
        )
        if self.hosts:
            self.session.connect(lambda h: self._reads.get(h.name) or [])
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()
        self._log.__exit__(None, None, None)

    @property
    def state(self):
        return self.session.state

    def reachable(self, name: str) -> bool:
        return self.session.reachable(self.session.by_name[name])

    def cause(self, name: str) -> str:
        """Where an unreachable host is and why it did not answer (``127.0.0.1:2203: connection refused``)."""
        result = HostResult(name, "")
        self.session.errors.mark(self.session.by_name[name], result)
        return result.note or ""

    def values(self, name: str) -> dict[str, Any] | None:
        """The host's snapshot (``{read_key: value}``), None when it could not be reached."""
        if not self.reachable(name):
            return None
        return self.session.readers[self.session.by_name[name]].values

    def read(self, name: str, fact: type, **kwargs: Any) -> Any:
        """One fact of a reachable host: from its snapshot, else read now."""
        host = self.session.by_name[name]
        from pyinfra.context import ctx_host, ctx_state

        with ctx_state.use(self.state), ctx_host.use(host):
            return host.get_fact(fact, **kwargs)

    def evaluate(
        self, name: str, role: str, deploys: list[Callable[..., Any]], data: dict[str, Any], describe: bool
    ) -> HostResult:
        """Prepare ``deploys`` on host ``name`` (with ``data`` added to its host data) as a dry run."""
        host = self.session.by_name[name]
        result = HostResult(name, role)
        before = self.session.commands(host)
        if not self.reachable(name):
            self.session.errors.mark(host, result)
            return result
        for key, value in data.items():
            setattr(host.data, key, value)
        if self.session.prepare(host, deploys, result, isolate=False):
            if describe:
                describe_host(self.state, host, result)
            self.session.collect(host, result, dry=True)
        result.remote_commands = self.session.commands(host) - before
        return result
