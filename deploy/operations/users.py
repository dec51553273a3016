"""The service account vLLM runs as: one ``getent`` to look, one ``useradd`` when missing."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.facts.users import PasswdEntry


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
