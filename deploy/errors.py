"""Errors that mean "the user's input is wrong": reported as ``field.path: message``, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a spec: where (a dotted field path) and what (with what would be valid)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """A spec that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class KvpodError(Exception):
    """A failure the user can act on (not a bug): printed as one message, exit code 2."""


class InputError(KvpodError):
    """A command-line argument that does not fit the spec (unknown node, drive, ...): exit code 1."""
