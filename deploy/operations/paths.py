"""Paths on a host: directories made with their mode and owner in one command."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import Directory
from pyinfra.operations import files


@operation()
def directory(path: str, user: str | None = None, group: str | None = None, mode: str | None = None, present=True):
    """
    ``files.directory``, except that a missing directory wanted with a mode, a user and a group is made with them
    by one ``install -d`` (its parents as ``mkdir -p`` makes them) instead of ``mkdir -p``, ``chmod`` and ``chown``.

    + path, user, group, mode, present: as ``files.directory`` takes them
    """
    if present and user and group and mode and host.get_fact(Directory, path=path) is None:
        yield StringCommand(
            "install",
            "-d",
            "-m",
            QuoteString(mode),
            "-o",
            QuoteString(user),
            "-g",
            QuoteString(group),
            QuoteString(path),
        )
        return
    yield from files.directory._inner(path=path, user=user, group=group, mode=mode, present=present)


@operation()
def directories(paths: list[str], user: str, group: str, mode: str):
    """
    Directories of one owner and mode: those missing made by one ``install -d`` (in the order given, so a parent
    named before its children gets its mode and owner first); one already there, put right as ``files.directory``
    does.

    + paths: the directories, parents first
    + user, group, mode: as ``files.directory`` takes them
    """
    missing = [p for p in paths if host.get_fact(Directory, path=p) is None]
    if missing:
        modes = ["-m", QuoteString(mode), "-o", QuoteString(user), "-g", QuoteString(group)]
        yield StringCommand("install", "-d", *modes, *(QuoteString(p) for p in missing))
    for path in paths:
        if path not in missing:
            yield from files.directory._inner(path=path, user=user, group=group, mode=mode)
