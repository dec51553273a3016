"""A set of files (and the directories kvpod manages) written in one upload and one command.

:func:`files_written` compares each wanted :class:`Entry` with the facts ``files.put`` reads (the file, its
checksum; a directory's owner and mode), packs those that differ into a deterministic tar (names, modes, owners,
a fixed modification time, nothing else), uploads it into a root-only directory (root's home when it is ``0700
root:root``, as Debian makes it; else kvpod's own, made first) and extracts its members in one command
(:mod:`deploy.facts.bundle_command`), which removes the archive. A file whose content is right but whose owner or
mode is not gets ``chown``/``chmod`` instead: its content, a secret perhaps, is not sent again. Nothing runs when
every entry matches. (With ``ssh.sudo``, pyinfra's SSH connector stages any upload in the remote temporary
directory before copying it as root, the bundle's as ``files.put``'s.)

Each entry's own change is kept apart: :meth:`Written.change` of a path is a result :func:`deploy.operations.changed`
accepts, true only when that path was written, so a step after the bundle reacts to its own files alone.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import Directory, File, Sha1File

from deploy.facts.bundle_command import ARCHIVE_PREFIX, EXTRACT_SCRIPT, ROOT_HOME, STAGING_DIR

STAGING_MODE = "700"


@dataclass(frozen=True)
class LocalFile:
    """A file on the machine running kvpod, given as an entry's content: its checksum is streamed (once per file
    and version) and the archive streams it, so a large wheel is never held in memory."""

    path: str

    def __call__(self) -> bytes:
        return Path(self.path).read_bytes()

    def sha1(self) -> str:
        st = os.stat(self.path)
        return _local_sha1(self.path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _local_sha1(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Content = bytes | LocalFile | None  # an entry's content as the bundle holds it: bytes, a local file, none (a dir)


@dataclass(frozen=True)
class Entry:
    """A wanted file (``content``) or directory (``content`` None) with its mode (octal text) and owner; ``when``:
    wanted only when it answers true on the host (None: always)."""

    path: str
    content: Callable[[], bytes] | None
    mode: str = "644"
    user: str = "root"
    group: str = "root"
    when: Callable[[], bool] | None = None
    differs: Callable[[], bool] | None = None  # a file compared by another fact than its checksum (owner not)

    @property
    def is_dir(self) -> bool:
        return self.content is None


@dataclass(eq=False)
class Written:
    """A bundle's result: its operation's ``meta`` and the paths it wrote (while preparing: would write), filled
    when its commands are generated; ``paths_of``: every path it holds. Read as its operation's result."""

    paths_of: tuple[str, ...] = ()
    paths: frozenset[str] = frozenset()
    meta: object = None
    labels: dict[str, str] = field(default_factory=dict)  # path -> what a report calls the file (its step's name)

    def written_labels(self) -> list[str]:
        """What a report lists for this bundle: each file it wrote (would write), by its label, in order."""
        return [self.labels.get(p, p) for p in self.paths_of if p in self.paths]

    def change(self, path: str) -> FileChange:
        return FileChange(self, path)

    def is_complete(self) -> bool:
        return self.meta is not None and self.meta.is_complete()  # type: ignore[attr-defined]

    def did_change(self) -> bool:
        return bool(self.meta.did_change())  # type: ignore[attr-defined]

    @property
    def will_change(self) -> bool:
        return self.meta is not None and bool(self.meta.will_change)  # type: ignore[attr-defined]


_BY_META: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember(written: Written) -> Written:
    """Keep ``written`` findable from its operation's result (:func:`written_by`)."""
    _BY_META[written.meta] = written
    return written


def written_by(meta: object) -> Written | None:
    """The bundle an operation's result belongs to (None: not a bundle's): a report lists its files one by one."""
    try:
        return _BY_META.get(meta)
    except TypeError:  # not weakly referable: not a bundle's
        return None


@dataclass(frozen=True)
class FileChange:
    """One path's share of a bundle operation's result, as :func:`deploy.operations.changed` reads results."""

    written: Written = field(compare=False)
    path: str

    def is_complete(self) -> bool:
        return self.written.is_complete()

    def did_change(self) -> bool:
        return self.written.did_change() and self.path in self.written.paths

    @property
    def will_change(self) -> bool:
        return self.written.will_change and self.path in self.written.paths


def _octal(mode: object) -> int | None:
    """A mode as pyinfra's facts give it (``644``, ``"0644"``) as its number (``0o644``)."""
    try:
        return int(str(mode), 8)
    except (TypeError, ValueError):
        return None


def _owned(found: dict, entry: Entry) -> bool:
    same_owner = (found.get("user"), found.get("group")) == (entry.user, entry.group)
    return same_owner and _octal(found.get("mode")) == _octal(entry.mode)


def _sha1(content: Content) -> str:
    if isinstance(content, LocalFile):
        return content.sha1()
    return hashlib.sha1(content or b"").hexdigest()


def _content(entry: Entry) -> Content:
    """What the bundle holds of ``entry``: a local file stays a file (streamed), other content is made now."""
    if entry.is_dir:
        return None
    return entry.content if isinstance(entry.content, LocalFile) else entry.content()  # type: ignore[misc]


def differs(entry: Entry, content: Content) -> bool:
    """Whether the host's ``entry.path`` differs from the entry: a directory in mode or owner, a file in content
    (:func:`owner_fixes` says what a file of the right content needs)."""
    if entry.differs is not None:
        return entry.differs()
    if entry.is_dir:
        found = host.get_fact(Directory, path=entry.path)
        return not found or not _owned(found, entry)
    found = host.get_fact(File, path=entry.path)
    return not found or host.get_fact(Sha1File, path=entry.path) != _sha1(content)


def owner_fixes(entry: Entry) -> list[StringCommand]:
    """``chown``/``chmod`` of a file whose content is right but whose owner or mode is not (its content, which may
    be a secret, is not sent again)."""
    found = host.get_fact(File, path=entry.path) or {}
    fixes = []
    if (found.get("user"), found.get("group")) != (entry.user, entry.group):
        fixes.append(StringCommand("chown", QuoteString(f"{entry.user}:{entry.group}"), QuoteString(entry.path)))
    if _octal(found.get("mode")) != _octal(entry.mode):
        fixes.append(StringCommand("chmod", QuoteString(entry.mode), QuoteString(entry.path)))
    return fixes


def archive(entries: Iterable[tuple[Entry, Content]]) -> bytes:
    """A deterministic tar of ``entries`` (by path, so a directory precedes what it holds): names relative to
    ``/``, modes, owners by name (uid and gid 0 where a name is unknown on the host), modification time 0."""
    with _archive_file(entries) as f:
        return f.read()


SPOOL_BYTES = 64 << 20  # an archive above this waits on the local disk, not in memory


def _archive_file(entries: Iterable[tuple[Entry, Content]]):
    """:func:`archive` into a temporary file (in memory up to :data:`SPOOL_BYTES`), rewound; local files streamed."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 -- handed to the upload, closed by it
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry, content in sorted(entries, key=lambda pair: pair[0].path):
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mode = _octal(entry.mode) or 0
            info.uname, info.gname, info.uid, info.gid, info.mtime = entry.user, entry.group, 0, 0, 0
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, LocalFile):
                info.size = os.stat(content.path).st_size
                with open(content.path, "rb") as f:
                    tar.addfile(info, f)
            else:
                info.size = len(content or b"")
                tar.addfile(info, io.BytesIO(content or b""))
    out.seek(0)
    return out


def _archive_sha1(f) -> str:
    digest = hashlib.sha1()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
    f.seek(0)
    return digest.hexdigest()


def root_only(path: str) -> bool:
    """Whether ``path`` is a directory only root may enter (``0700 root:root``)."""
    found = host.get_fact(Directory, path=path)
    return bool(found) and _owned(found, Entry(path, None, STAGING_MODE))


def members_of(stale: list[tuple[Entry, Content]]) -> list[tuple[str, bytes | LocalFile]]:
    """Each file's path and content (text, or a :class:`LocalFile`: a wheel is not diffed) for a dry run's diffs."""
    return [(e.path, c) for e, c in stale if c is not None]


@operation()
def files_written(entries: list[Entry], written: Written | None = None):
    """
    Every wanted entry on the host as it is given (content, mode, owner): those that differ in one tar, uploaded
    into a root-only directory and extracted by one command.

    + entries: the files and directories (:class:`Entry`), each path once
    + written: filled with the paths written (for per-path results)
    """
    wanted = [e for e in entries if e.when is None or e.when()]
    contents = [(e, _content(e)) for e in wanted]
    stale = [(e, c) for e, c in contents if differs(e, c)]
    stale_paths = {e.path for e, _ in stale}
    fixes = {e.path: owner_fixes(e) for e, _ in contents if not (e.is_dir or e.differs or e.path in stale_paths)}
    fixes = {path: commands for path, commands in fixes.items() if commands}
    if written is not None:
        written.paths = frozenset([*(e.path for e, _ in stale), *fixes])
    for commands in fixes.values():
        yield from commands
    if not stale:
        if not fixes:
            host.noop("every file is as wanted")
        return
    staging = ROOT_HOME if root_only(ROOT_HOME) else STAGING_DIR
    if staging == STAGING_DIR and not root_only(STAGING_DIR):
        yield StringCommand("install", "-d", "-m", STAGING_MODE, "-o", "root", "-g", "root", QuoteString(STAGING_DIR))
    src = _archive_file(stale)
    src.members = members_of(stale)  # type: ignore[attr-defined]
    dest = f"{staging}/{ARCHIVE_PREFIX}{_archive_sha1(src)[:16]}.tar"
    yield FileUploadCommand(src, dest)
    names = [QuoteString(e.path.lstrip("/")) for e, _ in sorted(stale, key=lambda pair: pair[0].path)]
    yield StringCommand("sh", "-c", QuoteString(EXTRACT_SCRIPT), QuoteString(dest), *names)
