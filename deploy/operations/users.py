"""The service account vLLM runs as: one ``getent`` to look, one ``useradd`` when missing."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation


class PasswdEntry(FactBase[dict | None]):
    """
    The passwd entry of ``user``; None when there is no such user.

    .. code:: python

        {"name": "vllm", "uid": 998, "gid": 998, "home": "/var/lib/vllm", "shell": "/usr/sbin/nologin"}
    """

    def command(self, user: str) -> StringCommand:
        return StringCommand("getent", "passwd", QuoteString(user), "|| true")

    def process(self, output: list[str]) -> dict | None:
        for line in output:
            parts = line.split(":")
            if len(parts) == 7:
                return {
                    "name": parts[0],
                    "uid": int(parts[2]),
                    "gid": int(parts[3]),
                    "home": parts[5],
                    "shell": parts[6],
                }
        return None


@operation()
def system_user(user: str, home: str, shell: str = "/usr/sbin/nologin"):
    """
    A system user ``user`` with its own group and home ``home`` exists (created when missing, never modified).

    + user: user and group name
    + home: home directory (created)
    + shell: login shell
    """
    if host.get_fact(PasswdEntry, user=user):
        host.noop(f"user {user} exists")
        return
    yield StringCommand(
        "useradd",
        "--system",
        "--user-group",
        "--create-home",
        "--home-dir",
        QuoteString(home),
        "--shell",
        QuoteString(shell),
        QuoteString(user),
    )
