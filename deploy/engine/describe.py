"""A dry run's description of a host: the commands each operation would run, a diff for each file it would write."""

from __future__ import annotations

import difflib
import io

from pyinfra.api import State
from pyinfra.api.command import FileUploadCommand

from deploy.engine.results import HostResult
from deploy.secrets import redact, redact_assignments


def describe_host(state: State, host, result: HostResult) -> None:
    """Add to ``result`` what the host's prepared operations would run (``planned``) and write (``diffs``)."""
    from deploy.operations import planned_commands

    try:
        planned = planned_commands(state, host)
    except Exception as exc:  # a refusal: the dry run reports it as this host's failure
        result.fail("prepare", [str(exc)])
        return
    for op, commands in planned:
        if not commands:
            continue
        lines = []
        for cmd in commands:
            if isinstance(cmd, FileUploadCommand):
                lines.append(f"upload {cmd.dest}")
                result.diffs[cmd.dest] = redact_assignments(file_diff(host, cmd))
            else:
                lines.append(redact(cmd.get_masked_value() if hasattr(cmd, "get_masked_value") else repr(cmd)))
        result.planned.append((op, lines))


def file_diff(host, cmd: FileUploadCommand) -> str:
    """A unified diff from the file on the host (empty when it does not exist) to what ``cmd`` would upload."""
    src = cmd.src
    if hasattr(src, "getvalue"):
        new = src.getvalue()
    else:
        with open(src) as f:
            new = f.read()
    if isinstance(new, bytes):
        new = new.decode(errors="replace")
    buf = io.BytesIO()
    try:
        old = buf.getvalue().decode(errors="replace") if host.get_file(cmd.dest, buf) else ""
    except Exception:  # the file does not exist yet
        old = ""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"{host.name}:{cmd.dest}", "planned"
        )
    )
