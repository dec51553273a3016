"""The one command that extracts a file bundle (:mod:`deploy.operations.bundle`), recognised by its whole text.

``sh -c '<EXTRACT_SCRIPT>' ARCHIVE MEMBER...``: GNU tar extracts the named members of ``ARCHIVE`` into ``/`` with
the modes and owners the archive records (``-p --same-owner``; ``-m``: modification times are the extraction's;
``--no-recursion``: a directory named is that directory alone, each file is named itself),
then the archive is removed whether tar succeeded or not, and tar's status is the command's. Members are paths
relative to ``/``. Its effects are known (:mod:`deploy.facts.effects`): the archive and the members, nothing else.
"""

from __future__ import annotations

import posixpath
import shlex

# where an archive waits for its extraction: root's home when only root may enter it (Debian makes it 0700), else
# kvpod's own root-only directory
ROOT_HOME = "/root"
STAGING_DIR = "/var/lib/kvpod/staging"
STAGING_DIRS = (ROOT_HOME, STAGING_DIR)
ARCHIVE_PREFIX = ".kvpod-files-"
EXTRACT_SCRIPT = 'tar -x -m -p --same-owner --no-recursion -f "$0" -C / -- "$@"; s=$?; rm -f -- "$0"; exit $s'


def extract_command(archive: str, members: list[str]) -> str:
    """The extraction of ``members`` (absolute paths) from ``archive`` (a path in one of :data:`STAGING_DIRS`)."""
    names = [shlex.quote(m.lstrip("/")) for m in members]
    return " ".join(["sh", "-c", shlex.quote(EXTRACT_SCRIPT), shlex.quote(archive), *names])


def extracted(command: str) -> tuple[str, list[str]] | None:
    """``(archive, members as absolute paths)`` of an extraction command; None for any other command."""
    if not command.startswith("sh -c "):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 5 or words[:3] != ["sh", "-c", EXTRACT_SCRIPT]:
        return None
    archive, members = words[3], words[4:]
    in_staging = posixpath.dirname(archive) in STAGING_DIRS and posixpath.basename(archive).startswith(ARCHIVE_PREFIX)
    clean = [posixpath.normpath("/" + m) for m in members]
    plain = all(m and not m.startswith(("/", "-")) and ".." not in m.split("/") for m in members)
    if not in_staging or not plain or archive != posixpath.normpath(archive):
        return None
    if command != extract_command(archive, clean):  # exactly as kvpod writes it: nothing added, nothing chained on
        return None
    return archive, clean
