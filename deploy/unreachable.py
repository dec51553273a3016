"""Why a host could not be reached, in one phrase, and where: ``127.0.0.1:2203: connection refused``.

Pure functions over the exception an SSH connection attempt raised (pyinfra's ``ConnectError`` chains the
socket or paramiko error it wraps) or over its text (a line of ``pyinfra.log``). Nothing here imports
paramiko or pyinfra: exceptions are recognised by their standard classes, their class names and their text.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterable, Iterator

REFUSED = "connection refused"
TIMED_OUT = "timed out"
NOT_RESOLVED = "name not resolved"
NO_ROUTE = "no route to host"
AUTH_FAILED = "authentication failed"
KEY_CHANGED = "host key changed"
KEY_UNKNOWN = "host key unknown (not in known_hosts)"
CLOSED = "connection closed before SSH answered"
LOST = "connection lost during the run"
CAUSES = (REFUSED, TIMED_OUT, NOT_RESOLVED, NO_ROUTE, AUTH_FAILED, KEY_CHANGED, KEY_UNKNOWN, CLOSED, LOST)

# Text of an error, first match wins: the host key and authentication before the socket errors they may wrap.
_TEXT = (
    (re.compile(r"not found in known_hosts", re.I), KEY_UNKNOWN),
    (re.compile(r"host key .*does not match|host key error|identification has changed", re.I), KEY_CHANGED),
    (re.compile(r"authentication", re.I), AUTH_FAILED),
    (
        re.compile(
            r"resolve hostname|name or service not known|temporary failure in name resolution|"
            r"nodename nor servname|no address associated|name resolution",
            re.I,
        ),
        NOT_RESOLVED,
    ),
    (re.compile(r"no route to host|network is unreachable", re.I), NO_ROUTE),
    (re.compile(r"timed out|timeout", re.I), TIMED_OUT),
    (re.compile(r"connection refused|errno 111\b|unable to connect to port", re.I), REFUSED),
    (re.compile(r"protocol banner|connection reset|reset by peer|eof error|broken pipe", re.I), CLOSED),
)
_ROUTE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, the errors it wraps (cause, context, paramiko's per-address errors), innermost last."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        wrapped = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError: {(address, port): error}
        if isinstance(wrapped, dict):
            todo += [e for e in wrapped.values() if isinstance(e, BaseException)]
        todo += [e for e in (exc.__cause__, exc.__context__) if e is not None]


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _by_type(exc: BaseException) -> str | None:
    names = _names(exc)
    if "BadHostKeyException" in names:
        return KEY_CHANGED
    if "AuthenticationException" in names:
        return AUTH_FAILED
    if isinstance(exc, socket.gaierror):
        return NOT_RESOLVED
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, TimeoutError):
        return TIMED_OUT
    if isinstance(exc, OSError) and exc.errno in _ROUTE_ERRNOS:
        return NO_ROUTE
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return CLOSED
    return None


def _by_text(text: str) -> str | None:
    return next((cause for pattern, cause in _TEXT if pattern.search(text)), None)


def connect_cause(error: BaseException | str) -> str:
    """The cause of a failed SSH connection in one phrase (one of :data:`CAUSES`), or its first line."""
    if isinstance(error, str):
        return _by_text(error) or _first_line(error)
    chain = list(_chain(error))
    for exc in chain:  # the host key and authentication errors are the most specific: look for them first
        if _names(exc) & {"BadHostKeyException", "AuthenticationException"}:
            return _by_type(exc) or AUTH_FAILED
    for exc in reversed(chain):  # then the innermost socket error
        cause = _by_type(exc)
        if cause:
            return cause
    for exc in chain:
        cause = _by_text(str(exc))
        if cause:
            return cause
    return _first_line(str(error)) or type(error).__name__


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160]


def endpoint(address: str, port: int | None) -> str:
    """``host:port`` (``[v6]:port``), as ssh and pyinfra's log name it."""
    shown = f"[{address}]" if ":" in address else address
    return f"{shown}:{port or 22}"


def unreachable_note(address: str, port: int | None, cause: str) -> str:
    """One host's line: ``127.0.0.1:2203: connection refused``."""
    return f"{endpoint(address, port)}: {cause}"


def natural_key(name: str) -> tuple:
    """Sort key that orders ``gpu2`` before ``gpu10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def sorted_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=natural_key)
