"""The only package that builds pyinfra's Inventory and State and runs deploys against hosts.

Hosts of a run go in parallel; a host that fails or cannot be reached does not stop the others. Each run
reports, per host, how many operations changed something and which step failed with its stderr.

Round trips: before a deploy runs, every fact it compares against (``reads``, listed by the role from the
plan) is read in one remote command per host (:class:`deploy.facts.snapshot.HostSnapshot`), and the
operations' fact reads are served from that snapshot until the host runs its first change; from then on
they are read live, so a step that depends on an earlier change sees the host as it is. :class:`Survey`
reads many hosts at once and evaluates their deploys without changing anything: a converged pod costs
one command per host. Every command is counted at the connector (``HostResult.remote_commands``).

Modules: ``session`` (connect, snapshots, prepare, execute, collect: one path for survey and phases),
``survey`` and ``phase`` (its two uses), ``snapshot_reader`` (the snapshot served to fact reads),
``pyinfra_adapter`` (everything beyond pyinfra's public API, pinned to one version), ``results`` (the result
model), ``describe`` (a dry run's commands and diffs), ``progress`` (the live view's events),
``reachability`` (unreachable hosts), ``log`` (pyinfra's log), ``hooks`` (test callbacks, off by default).
"""

from deploy.engine.phase import run_output, run_phase
from deploy.engine.progress import EventSink
from deploy.engine.pyinfra_adapter import connection_lost
from deploy.engine.reachability import where
from deploy.engine.results import HostResult, HostStatus, RunReport, RunStats
from deploy.engine.snapshot_reader import SnapshotReader
from deploy.engine.survey import Survey

__all__ = [
    "EventSink",
    "HostResult",
    "HostStatus",
    "RunReport",
    "RunStats",
    "SnapshotReader",
    "Survey",
    "connection_lost",
    "run_output",
    "run_phase",
    "where",
]
