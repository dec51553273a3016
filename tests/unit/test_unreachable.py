"""Why a host was unreachable, in one phrase: the classifier over the errors an SSH connection raises, and a real
refused connection through pyinfra (127.0.0.1 on a port nobody listens on: loopback only)."""

from __future__ import annotations

import errno
import socket

import paramiko
import pytest
from paramiko.ssh_exception import BadHostKeyException, NoValidConnectionsError

from deploy.unreachable import (
    AUTH_FAILED,
    CAUSES,
    CLOSED,
    KEY_CHANGED,
    KEY_UNKNOWN,
    NO_ROUTE,
    NOT_RESOLVED,
    REFUSED,
    TIMED_OUT,
    connect_cause,
    endpoint,
    sorted_names,
    unreachable_note,
)


class ConnectError(Exception):
    """Stands in for pyinfra's ConnectError: a message, with the wrapped error as its context."""


def wrapped(inner: BaseException, message: str) -> ConnectError:
    """What pyinfra raises: ``raise ConnectError(...)`` inside ``except ...``, so the inner error is the context."""
    try:
        raise inner
    except BaseException:
        try:
            raise ConnectError(message) from None
        except ConnectError as outer:
            outer.__context__ = inner
            return outer


def refused(address: str = "192.0.2.101", port: int = 22) -> NoValidConnectionsError:
    return NoValidConnectionsError({(address, port): ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")})


def bad_key() -> BadHostKeyException:
    key = paramiko.RSAKey.generate(1024)
    return BadHostKeyException("gpu01", key, paramiko.RSAKey.generate(1024))


CASES = [
    (wrapped(refused(), "Could not connect ([Errno None] Unable to connect to port 22 on 192.0.2.101)"), REFUSED),
    (wrapped(TimeoutError("timed out"), "Could not connect (timed out)"), TIMED_OUT),
    (wrapped(OSError("timed out"), "Could not connect (timed out)"), TIMED_OUT),
    (
        wrapped(socket.gaierror(-2, "Name or service not known"), "Could not resolve hostname (Name or service...)"),
        NOT_RESOLVED,
    ),
    (
        wrapped(
            NoValidConnectionsError({("10.0.0.9", 22): OSError(errno.EHOSTUNREACH, "No route to host")}),
            "Could not connect ([Errno None] Unable to connect to port 22 on 10.0.0.9)",
        ),
        NO_ROUTE,
    ),
    (wrapped(paramiko.AuthenticationException("Authentication failed."), "Authentication error (root)"), AUTH_FAILED),
    (wrapped(paramiko.BadAuthenticationType("Bad authentication type", ["publickey"]), "x"), AUTH_FAILED),
    (wrapped(bad_key(), "SSH host key error (Host key for gpu01 does not match.)"), KEY_CHANGED),
    (
        wrapped(
            paramiko.SSHException("Server '[127.0.0.1]:2202' not found in known_hosts"),
            "SSH error (Server '[127.0.0.1]:2202' not found in known_hosts)",
        ),
        KEY_UNKNOWN,
    ),
    (wrapped(paramiko.SSHException("Error reading SSH protocol banner"), "SSH error (Error reading SSH...)"), CLOSED),
    (wrapped(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "Could not connect (...)"), CLOSED),
    (wrapped(EOFError(), "EOF error ()"), CLOSED),
]


@pytest.mark.parametrize(("error", "cause"), CASES, ids=[c for _, c in CASES])
def test_an_error_of_a_connection_attempt_has_one_cause(error, cause):
    assert connect_cause(error) == cause
    assert cause in CAUSES


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("Could not connect ([Errno None] Unable to connect to port 22 on 192.0.2.101)", REFUSED),
        ("Could not connect ([Errno 111] Connection refused)", REFUSED),
        ("Could not connect (timed out)", TIMED_OUT),
        ("Could not resolve hostname ([Errno -2] Name or service not known)", NOT_RESOLVED),
        ("Could not resolve hostname ([Errno -3] Temporary failure in name resolution)", NOT_RESOLVED),
        ("Authentication error (username=root, key=/root/.ssh/id_ed25519)", AUTH_FAILED),
        ("SSH host key error (Host key for gpu01 does not match.)", KEY_CHANGED),
        ("SSH error (Server '[127.0.0.1]:2202' not found in known_hosts)", KEY_UNKNOWN),
        ("Could not connect ([Errno 113] No route to host)", NO_ROUTE),
    ],
)
def test_a_logged_error_has_the_same_cause(line, cause):
    assert connect_cause(line) == cause


def test_an_unknown_error_is_its_first_line_not_a_guess():
    assert connect_cause(RuntimeError("the agent exploded\nsecond line")) == "the agent exploded"
    assert connect_cause("kaboom") == "kaboom"
    assert connect_cause(RuntimeError()) == "RuntimeError"


def test_the_host_key_decides_before_the_socket_error_it_wraps():
    outer = wrapped(bad_key(), "SSH host key error")
    outer.__context__.__context__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert connect_cause(outer) == KEY_CHANGED


def test_where_and_why_in_one_line():
    assert unreachable_note("127.0.0.1", 2203, REFUSED) == "127.0.0.1:2203: connection refused"
    assert endpoint("gpu01.example", None) == "gpu01.example:22"
    assert endpoint("fd00::5", 22) == "[fd00::5]:22"


def test_names_sort_by_their_numbers():
    assert sorted_names(["gpu10", "gpu2", "gpu1", "target", "gpu02b"]) == ["gpu1", "gpu2", "gpu02b", "gpu10", "target"]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (bound once by the kernel's choice, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh(address: str, port: int) -> dict:
    return {
        "ssh_hostname": address,
        "ssh_port": port,
        "ssh_user": "root",
        "ssh_connect_retries": 0,
        "ssh_strict_host_key_checking": "no",
    }


def test_a_refused_connection_through_pyinfra_names_address_port_and_cause(closed_port, tmp_path):
    from deploy.cli.hosts import use_hosts

    use_hosts()
    from deploy.engine import RunStats, Survey, run_phase

    with Survey([("gpu01", ssh("127.0.0.1", closed_port), [])], stats=RunStats(), run_dir=tmp_path) as pod:
        assert not pod.reachable("gpu01")
        assert pod.cause("gpu01") == f"127.0.0.1:{closed_port}: connection refused"
        result = pod.evaluate("gpu01", "node", [], {}, describe=False)
    assert (result.status, result.cause, result.note) == (
        "unreachable",
        REFUSED,
        f"127.0.0.1:{closed_port}: connection refused",
    )
    assert f"127.0.0.1:{closed_port}: connection refused" == result.as_json()["note"]
    [phase] = run_phase("node", [("gpu01", ssh("127.0.0.1", closed_port))], lambda: None, dry=False)
    assert (phase.status, phase.cause) == ("unreachable", REFUSED)
    assert "Unable to connect to port" in (tmp_path / "pyinfra.log").read_text()


def test_a_name_that_does_not_resolve_says_so(monkeypatch):
    """A ``.invalid`` name (RFC 2606) whose resolution fails here, without asking any resolver."""
    from deploy.cli.hosts import use_hosts

    use_hosts()
    from deploy.engine import RunStats, Survey

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with Survey([("gpu01", ssh("gpu01.kvpod.invalid", 22), [])], stats=RunStats()) as pod:
        assert pod.cause("gpu01") == "gpu01.kvpod.invalid:22: name not resolved"
