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
            members = getattr(cmd.src, "members", None) if isinstance(cmd, FileUploadCommand) else None
            if members is not None:  # a bundle of files (deploy.operations.bundle): each file's own diff
                for path, content in members:
                    lines.append(f"upload {path}")
                    if isinstance(content, bytes):  # else a local binary file (a wheel), not diffed as text
                        result.diffs[path] = redact_assignments(text_diff(host, path, content))
            elif isinstance(cmd, FileUploadCommand):
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
    return text_diff(host, cmd.dest, new)


def text_diff(host, dest: str, new: str | bytes) -> str:
    """A unified diff from the file ``dest`` on the host (empty when it does not exist) to ``new``."""
    if isinstance(new, bytes):
        new = new.decode(errors="replace")
    buf = io.BytesIO()
    try:
        old = buf.getvalue().decode(errors="replace") if host.get_file(dest, buf) else ""
    except Exception:  # the file does not exist yet
        old = ""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"{host.name}:{dest}", "planned"
        )
    )
