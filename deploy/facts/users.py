"""Account facts: one ``getent`` per user."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


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
