"""SSH to lab VMs over their 127.0.0.1 port forwards, with the lab's own key."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .errors import LabError

SSH_USER = "root"
SSH_HOST = "127.0.0.1"


def ssh_options(key: Path) -> list[str]:
    """Options for a lab VM: the lab key only, no host key bookkeeping (VMs are re-created each boot)."""
    return [
        "-i", str(key),
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=5",
        "-o", "ServerAliveInterval=15",
    ]  # fmt: skip


def ssh_argv(key: Path, port: int, command: list[str] | None = None, batch: bool = True) -> list[str]:
    """The ``ssh`` argv for the VM forwarded at ``127.0.0.1:port`` (pure)."""
    argv = ["ssh", *ssh_options(key), *(["-o", "BatchMode=yes"] if batch else []), "-p", str(port)]
    argv.append(f"{SSH_USER}@{SSH_HOST}")
    if command:
        argv += ["--", *command]
    return argv


def run(
    key: Path, port: int, command: str, timeout: float = 120, stdin: bytes | str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a shell command on the VM; return the completed process (exit status not checked)."""
    data = stdin.decode() if isinstance(stdin, bytes) else stdin
    # gevent's subprocess.run refuses a ``stdin`` keyword next to ``input`` even when it is None
    feed: dict = {"input": data} if data is not None else {"stdin": subprocess.DEVNULL}
    try:
        return subprocess.run(
            ssh_argv(key, port, [command]),
            **feed,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{command}` on 127.0.0.1:{port} did not finish within {timeout:.0f} s") from exc


def wait_for_ssh(
    key: Path,
    port: int,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 2.0,
) -> float:
    """Poll until sshd on ``127.0.0.1:port`` accepts the lab key; return the seconds waited.

    Raises :class:`LabError` on timeout, or at once when ``alive()`` turns false (the VM died).
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        ok, last = _probe(key, port)
        if ok:
            return time.monotonic() - started
        if not alive():
            raise LabError(f"the VM behind 127.0.0.1:{port} stopped before its SSH came up")
        if time.monotonic() >= deadline:
            raise LabError(f"no SSH on 127.0.0.1:{port} after {timeout:.0f} s (last: {last})")
        time.sleep(interval)


def _probe(key: Path, port: int) -> tuple[bool, str]:
    """One attempt to run ``true`` over SSH: (succeeded, last error line)."""
    try:
        result = subprocess.run(
            ssh_argv(key, port, ["true"]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, "ssh did not answer within 60 s"
    lines = result.stderr.strip().splitlines()
    return result.returncode == 0, lines[-1] if lines else f"exit {result.returncode}"
