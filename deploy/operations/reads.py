"""What operations read, as :class:`deploy.facts.snapshot.Read` lists: the wanted snapshot of a host.

Each role step carries its reads, built with these (:mod:`deploy.operations.steps`), and a role's ``reads(plan)``
is those of its steps; the runner reads them all in one command before the deploy and serves the operations'
fact reads from that snapshot.
A read missing from the list is still correct (read live), only slower; tests check that a converged host
needs none.
"""

from __future__ import annotations

import posixpath

from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from deploy.facts.snapshot import Read

Reads = list[Read]


def file_reads(path: str) -> Reads:
    """What ``files.put``/``files.template`` read: the file, its directory, its checksum."""
    return [Read.of(File, path=path), Read.of(Directory, path=posixpath.dirname(path)), Read.of(Sha1File, path=path)]


def absent_file_reads(path: str) -> Reads:
    """What ``files.file(present=False)`` reads."""
    return [Read.of(File, path=path)]


def directory_reads(path: str) -> Reads:
    """What ``files.directory`` reads."""
    return [Read.of(Directory, path=path)]


def unit_reads(unit: str) -> Reads:
    """What :func:`deploy.operations.units.service` reads."""
    return [Read.of(SystemdStatus, services=[unit]), Read.of(SystemdEnabled, services=[unit])]


def sysctl_reads(keys: list[str]) -> Reads:
    """What ``server.sysctl`` reads, one key at a time."""
    return [Read.of(Sysctl, keys=[key]) for key in keys]


def apt_package_reads() -> Reads:
    """What ``server.packages`` reads on a Debian host to pick apt and list the installed packages."""
    from pyinfra.facts.deb import DebPackages

    return [*(Read.of(Which, command=c) for c in ("zypper", "apk", "apt")), Read.of(DebPackages)]


def unique(reads: Reads) -> Reads:
    """``reads`` without repeats, in first-seen order."""
    return list(dict.fromkeys(reads))
