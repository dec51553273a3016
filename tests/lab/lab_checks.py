"""The lab suite's pure parts: whether it may run, what a mount sampler saw, which canaries a drive must hold.

Kept apart from the fixtures so the fast suite can test them (tests/lab/test_lab_unit.py) without a VM.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

TRUE = {"1", "true", "yes", "on"}


def lab_decision(env: Mapping[str, str], missing: str | None) -> tuple[str, str]:
    """``("run", "")`` when the lab can run; otherwise ``("skip", why)``, or ``("fail", why)`` under CI.

    ``missing``: what this machine lacks for the lab (not root, no iproute2), None when nothing. In CI
    (``CI=true``) a lab that cannot run is a failure: a CI run that skips it silently proves nothing.
    """
    if missing is None:
        return "run", ""
    if env.get("CI", "").strip().lower() in TRUE:
        return "fail", f"{missing}; CI=true: the lab suite must run in CI, not skip"
    return "skip", missing


def foreign_lab_decision(env: Mapping[str, str], running: str | None) -> tuple[str, str]:
    """Whether the lab suite may start its lab when ``running`` (a lab it did not start, described) is up.

    The suite never tears down a lab it did not start: it skips, or fails in CI, naming the lab and the way out.
    """
    if running is None:
        return "run", ""
    return lab_decision(
        env,
        f"a lab is up that this test run did not start ({running}); the lab suite never takes down a lab it did "
        "not start: run `kvpod lab down` first, or KVPOD_LAB_REUSE=1 to test against it",
    )


@dataclass
class SampleLog:
    """What a mount sampler saw, round by round: each node's mounted subsystem NQN ("" none), or its error.

    An overlap is one subsystem mounted on two nodes in one round. A round with an error cannot show an
    overlap, so a clean result needs enough successful samples of every node and no errors.
    """

    nodes: list[str]
    rounds: int = 0
    ok: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    overlaps: list[dict[str, str]] = field(default_factory=list)

    def record(self, seen: Mapping[str, str | BaseException]) -> None:
        """One round: per node the NQN it has mounted ("" when none), or the exception its read raised."""
        read = {}
        for node in self.nodes:
            value = seen.get(node, RuntimeError("not sampled"))
            if isinstance(value, BaseException):
                self.errors.setdefault(node, []).append(f"{type(value).__name__}: {value}"[:200])
            else:
                read[node] = value
                self.ok[node] = self.ok.get(node, 0) + 1
        mounted = [v for v in read.values() if v]
        if len(mounted) != len(set(mounted)):
            self.overlaps.append(read)
        self.rounds += 1

    def problems(self, min_samples: int, allowed_errors: Mapping[str, int] | None = None) -> list[str]:
        """Why the no-overlap result cannot be trusted or is violated ([] when it holds)."""
        allowed = allowed_errors or {}
        out = [f"one subsystem on two nodes: {o}" for o in self.overlaps]
        for node in self.nodes:
            if self.ok.get(node, 0) < min_samples:
                out.append(f"{node}: {self.ok.get(node, 0)} successful samples (at least {min_samples} needed)")
            errors = self.errors.get(node, [])
            if len(errors) > allowed.get(node, 0):
                out.append(f"{node}: {len(errors)} failed samples (at most {allowed.get(node, 0)}): {errors[:3]}")
        return out


@dataclass
class Canaries:
    """Files written onto drives, remembered by the drive (subsystem NQN) that held them when written."""

    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def record(self, subsystem: str, name: str, text: str) -> None:
        if not subsystem:
            raise ValueError(f"canary {name}: the node has no drive mounted")
        self.files.setdefault(subsystem, {})[name] = text

    def expected(self, holders: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Per node, the canaries its drive must hold now (``holders``: node -> mounted subsystem NQN)."""
        return {node: dict(self.files.get(nqn, {})) for node, nqn in holders.items() if self.files.get(nqn)}


MISSING = "<missing>"


def read_files_command(directory: str, names: list[str]) -> str:
    """One shell command printing ``NAME<TAB>first line`` for each file (``<missing>`` when unreadable)."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return (
        f"cd {shlex.quote(directory)} && for f in {quoted}; do "
        f'printf "%s\\t%s\\n" "$f" "$(head -n 1 -- "$f" 2>/dev/null || echo {shlex.quote(MISSING)})"; done'
    )


def parse_read_files(output: str) -> dict[str, str]:
    """The output of :func:`read_files_command` as NAME -> first line."""
    out = {}
    for line in output.splitlines():
        name, sep, text = line.partition("\t")
        if sep:
            out[name] = text
    return out


def direct_sha256_command(path: str) -> str:
    """SHA-256 of a file read with O_DIRECT (from the device, not the page cache)."""
    return f"dd if={shlex.quote(path)} bs=1M iflag=direct status=none | sha256sum"
