"""The pod lock's scripts as facts, so a lock host's lock is taken in the same command as its state read.

These are the only "facts" that write: :class:`PodLockAcquire` takes (or renews, or breaks) the lock and
:class:`PodLockRelease` drops it (see :mod:`deploy.podlock`). Each returns the lock file as the host holds
it afterwards: ``{"lock": LockRecord}`` or ``{"lock": None}`` when there is none, and the host's clock
(``"clock"``: a UTC datetime, None when it printed none).
"""

from __future__ import annotations

from pyinfra.api import FactBase

from deploy.podlock import (
    NO_TOKEN,
    acquire_script,
    parse_clock,
    parse_output,
    parse_record,
    read_script,
    release_script,
)


class _LockFact(FactBase[dict]):
    def process(self, output: list[str]) -> dict:
        return {"lock": parse_output(output), "clock": parse_clock(output)}


class PodLockAcquire(_LockFact):
    """
    Take the pod lock for ``record`` (a :meth:`LockRecord.line`), or take over the lock of ``break_token``.

    .. code:: python

        {"lock": LockRecord(pod="kvpod-lab", token="9f0c...", user="ops", pid=4242, ...)}
    """

    def command(self, record: str, break_token: str = NO_TOKEN) -> str:
        return acquire_script(parse_record(record), break_token)


class PodLockRelease(_LockFact):
    """Remove the pod lock where it carries ``record``'s token; the lock left afterwards (None: none)."""

    def command(self, record: str) -> str:
        return release_script(parse_record(record))


class PodLockHolder(_LockFact):
    """The pod's lock as the host holds it, read only."""

    def command(self, pod: str) -> str:
        return read_script(pod)
