"""Errors that mean "the user's input is wrong": reported as ``field.path: message``, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


def printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``, ``\\x1e``, ``\\u202e``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a spec: where (a dotted field path) and what (with what would be valid).

    Printed as one line, whatever the spec holds: values quoted from the spec cannot break the line.
    """

    path: str
    message: str

    def __str__(self) -> str:
        line = f"{self.path}: {self.message}" if self.path else self.message
        return printable(line)


class SpecError(Exception):
    """A spec that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class KvpodError(Exception):
    """A failure the user can act on (not a bug): printed as one message, exit code 2."""


class InputError(KvpodError):
    """A command-line argument that does not fit the spec (unknown node, drive, ...): exit code 1."""
