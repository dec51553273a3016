"""Apply each curated mutation to a temporary copy of the repository and run the fast tests against it.

A mutation is caught when its related tests fail; when they pass, the whole fast suite (``-m "not lab"``) runs to
see whether anything catches it. The working tree is never edited: each worker copies the repository once into
a temporary directory, applies one mutation there, runs pytest in it and restores the file. A mutation whose
snippet is not found exactly once is stale: reported as a failure, like a survivor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from tests.mutation.mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[2]
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not lab"]
# the test that every snippet still applies fails in a mutated copy by construction: it would catch everything
PYTEST += ["--ignore", "tests/unit/test_mutation_set.py"]
FAST_SUITE = ["tests"]
TIMEOUT = 900  # seconds per pytest run; a mutation that hangs the suite is caught by the timeout
_FAILED = re.compile(r"^(?:FAILED|ERROR) (?!collecting )(\S+)", re.MULTILINE)
_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", "build", "dist")


@dataclass
class Outcome:
    mutation: Mutation
    status: str  # "caught", "survived", "stale", "error"
    by: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "caught"


def apply(mutation: Mutation, text: str) -> str | None:
    """The file's text with the mutation applied, or None when its snippet is not there exactly once."""
    if text.count(mutation.old) != 1:
        return None
    return text.replace(mutation.old, mutation.new)


def first_failure(output: str) -> str:
    """The first failing test id of a pytest run's output (``-ra`` summary), or what stopped it."""
    m = _FAILED.search(output)
    if m:
        return m.group(1)
    if "error" in output.lower():
        return "collection error"
    return "pytest failed"


def _default_signals() -> None:
    """In the test run: the signals the tests send to scripts at their defaults, even when this runner was started
    in the background or under nohup (which ignore some; the tests that interrupt scripts would then fail)."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _pytest(tree: Path, args: list[str]) -> tuple[int | None, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    try:
        done = subprocess.run(
            [*PYTEST, *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            preexec_fn=_default_signals,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stdout + done.stderr


def run_one(mutation: Mutation, tree: Path) -> Outcome:
    """Apply ``mutation`` in ``tree`` (a copy of the repository), run its tests, restore the file."""
    start = time.monotonic()
    path = tree / mutation.file
    original = path.read_text() if path.is_file() else ""
    mutated = apply(mutation, original)
    if mutated is None:
        found = original.count(mutation.old)
        return Outcome(mutation, "stale", f"snippet found {found} times in {mutation.file}", 0.0)
    path.write_text(mutated)
    try:
        for stage, args in (("related", list(mutation.tests)), ("suite", FAST_SUITE)):
            if not args:
                continue
            code, output = _pytest(tree, args)
            if code is None:
                return Outcome(mutation, "caught", f"timeout ({stage})", time.monotonic() - start)
            if code in (1, 2):
                by = first_failure(output) + ("" if stage == "related" else " (fast suite)")
                return Outcome(mutation, "caught", by, time.monotonic() - start)
            if code != 0:
                tail = output.strip().splitlines()[-1:] or [""]
                return Outcome(mutation, "error", f"pytest exit {code} ({stage}): {tail[0]}", time.monotonic() - start)
        return Outcome(mutation, "survived", "", time.monotonic() - start)
    finally:
        path.write_text(original)


def run_all(mutations: list[Mutation], jobs: int, report=print) -> list[Outcome]:
    """Run the mutations on ``jobs`` copies of the repository; report each outcome as it ends."""
    with tempfile.TemporaryDirectory(prefix="kvpod-mutation-") as tmp:
        trees: Queue[Path] = Queue()
        for i in range(max(1, min(jobs, len(mutations)))):
            tree = Path(tmp) / f"tree{i}"
            shutil.copytree(ROOT, tree, ignore=_IGNORE, symlinks=True)
            trees.put(tree)

        def work(mutation: Mutation) -> Outcome:
            tree = trees.get()
            try:
                outcome = run_one(mutation, tree)
            finally:
                trees.put(tree)
            report(row(outcome))
            return outcome

        with ThreadPoolExecutor(max_workers=trees.qsize()) as pool:
            return list(pool.map(work, mutations))


def row(o: Outcome) -> str:
    caught = {"caught": "yes", "survived": "NO", "stale": "STALE", "error": "ERROR"}[o.status]
    return f"| {o.mutation.id} | {o.mutation.bug} | {caught} | {o.by} | {o.seconds:.0f} |"


def table(outcomes: Iterable[Outcome]) -> str:
    lines = ["| mutation | the bug it models | caught | by | s |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(lines + [row(o) for o in outcomes])


def select(only: list[str] | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    known = {m.id: m for m in MUTATIONS}
    unknown = [i for i in only if i not in known]
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(unknown)} (see --list)")
    return [known[i] for i in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.mutation", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", action="append", metavar="ID", help="run only this mutation (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="mutations run in parallel (default 2)")
    args = parser.parse_args(argv)
    mutations = select(args.only)
    if args.list:
        for m in mutations:
            print(f"{m.id}\t{m.file}\t{m.bug}")
        return 0
    start = time.monotonic()
    print(f"{len(mutations)} mutation(s), {args.jobs} at a time", flush=True)
    outcomes = run_all(mutations, args.jobs, report=lambda line: print(line, flush=True))
    print()
    print(table(outcomes))
    bad = [o for o in outcomes if not o.ok]
    print(
        f"\n{len(outcomes) - len(bad)} of {len(outcomes)} caught; {len(bad)} not "
        f"({', '.join(o.mutation.id for o in bad) or 'none'}); {time.monotonic() - start:.0f} s"
    )
    return 1 if bad else 0
