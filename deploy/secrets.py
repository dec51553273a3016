"""Secrets in a spec: which values are secrets, how they are carried, read from files, and redacted.

A secret is carried as :class:`Secret` (pydantic's ``SecretStr``): its ``str()``/``repr()`` are
``<secret:1a2b3c4d>`` (the first 8 hex digits of its SHA-256: two plans show whether a secret changed without
showing it), its JSON is ``**********``; only :meth:`Secret.reveal`, called where a host file is rendered,
gives the value. A value is a secret when it comes from a file (``{from_file: PATH}``, read by the loader at
the command line's edge), when its key names a credential (:func:`is_secret_key`), or when it is a URL with a
password (``redis://user:pass@host``).

Every secret made in this process is remembered (:func:`redact` replaces each by its display), so what kvpod
writes for people (plans, diffs, reports, the pyinfra log) never holds one; :func:`redact_assignments`
also hides the value of any ``KEY=value`` / ``key: value`` line whose key or value looks like a secret, for
file diffs whose old side holds a secret kvpod no longer knows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from pydantic import SecretStr

FROM_FILE = "from_file"
_SECRET_WORDS = re.compile(r"(^|[_.-])(password|passwd|pass|token|secret|key|credentials?|auth)($|[_.-])", re.I)
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")
_ASSIGNMENT = re.compile(
    r"^(?P<lead>[ +-]?\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>=|:\s+)(?P<value>.+)$"
)
_DISPLAY = re.compile(r"^<secret:[0-9a-f]{8}>$")
_KNOWN: set[str] = set()


class Secret(SecretStr):
    """A secret value: shown as ``<secret:sha256-prefix>``, revealed only for a host file."""

    def __init__(self, secret_value: str) -> None:
        super().__init__(secret_value)
        if secret_value:
            _KNOWN.add(secret_value)

    def _display(self) -> str:  # str(), repr()
        return display(self.get_secret_value())

    def reveal(self) -> str:
        return self.get_secret_value()


class SecretFile(str):
    """A path on the machine running kvpod, as the spec gives it, carrying the secret the loader read from that
    file (``vllm.hf_token_file``): the spec holds the path, the plan the secret."""

    secret: Secret

    def __new__(cls, path: str, secret: Secret) -> SecretFile:
        obj = super().__new__(cls, path)
        obj.secret = secret
        return obj

    def __getnewargs__(self) -> tuple[str, Secret]:  # type: ignore[override]  # copies keep the secret
        return (str(self), self.secret)


def display(value: str) -> str:
    """What people see instead of ``value``."""
    return f"<secret:{hashlib.sha256(value.encode()).hexdigest()[:8]}>"


def is_display(value: object) -> bool:
    """Whether ``value`` is a secret's display (a secret in a plan read back from its JSON)."""
    return isinstance(value, str) and bool(_DISPLAY.match(value))


def is_secret_key(name: str) -> bool:
    """A key whose name says it holds a credential (``password``, ``api_key``, ``hf_token``, ``secret``, ...)."""
    return bool(_SECRET_WORDS.search(str(name)))


def has_userinfo(value: object) -> bool:
    """A URL carrying a password (``scheme://user:pass@host``)."""
    return isinstance(value, str) and bool(_USERINFO.match(value))


def classify(key: str, value: Any) -> Any:
    """``value`` as a :class:`Secret` when it is one by its key or its form, else unchanged."""
    if isinstance(value, str) and not isinstance(value, Secret) and (is_secret_key(key) or has_userinfo(value)):
        return Secret(value)
    return value


def reveal(value: Any) -> Any:
    """The value to write into a host file: a secret's text, anything else as it is."""
    return value.reveal() if isinstance(value, Secret) else value


class SecretFileError(ValueError):
    """A ``from_file`` secret that cannot be used; the message says why."""


def read_secret_file(path: str | Path, base: Path | None = None) -> Secret:
    """The secret held in file ``path`` (relative to ``base``): its whole text, one trailing newline dropped.

    The file must be a regular file owned by the user running kvpod, readable by no one else (mode 0600 or 0400).
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute() and base is not None:
        p = base / p
    try:
        info = p.lstat()
    except FileNotFoundError:
        raise SecretFileError(f"{p}: no such file") from None
    except OSError as exc:
        raise SecretFileError(f"{p}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{p} is not a regular file (a symbolic link or directory is not accepted)")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 or not mode & 0o400:
        raise SecretFileError(f"{p} has mode {mode:04o} (a secret file must be 0600 or 0400)")
    if info.st_uid != os.geteuid():
        raise SecretFileError(f"{p} is owned by uid {info.st_uid}, not by the user running kvpod (uid {os.geteuid()})")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{p}: cannot read as UTF-8 text ({exc})") from None
    text = text[:-1] if text.endswith("\n") else text
    if not text or any(not c.isprintable() for c in text):
        raise SecretFileError(f"{p} must hold one line of printable text (the secret)")
    return Secret(text)


def is_file_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {FROM_FILE}


def redact(text: str) -> str:
    """``text`` with every secret this process knows replaced by its display (longest first)."""
    for value in sorted(_KNOWN, key=len, reverse=True):
        if value in text:
            text = text.replace(value, display(value))
    return text


def redact_assignments(text: str) -> str:
    """:func:`redact`, and each ``KEY=value`` / ``key: value`` line (diff lines too) whose key names a credential
    or whose value is a URL with a password shown with its value redacted."""
    out = []
    for line in redact(text).splitlines(keepends=True):
        body = line.rstrip("\n")
        m = _ASSIGNMENT.match(body)
        if m:
            key, value = m["key"], m["value"].strip().strip("\"'")
            secret = is_secret_key(key.removeprefix("LMCACHE_")) or has_userinfo(value)
            if secret and not value.startswith("<secret:"):
                body = f"{m['lead']}{key}{m['sep']}{display(value)}"
                line = body + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


class RedactingFilter(logging.Filter):
    """A log filter that redacts every known secret in each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
