"""How lab operations report progress without printing.

The caller passes a :class:`Progress`; the lab calls ``on_step(name, seconds)`` when a step ends and
enters ``waiting(description)`` around anything slow, so a CLI can show a spinner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field


def _ignore_step(name: str, seconds: float) -> None:
    """Default ``on_step``: report nothing."""


def _no_spinner(description: str) -> AbstractContextManager[None]:
    """Default ``waiting``: show nothing."""
    return nullcontext()


@dataclass(frozen=True)
class Progress:
    """Callbacks for progress reporting.

    + on_step: called as ``on_step(step_name, seconds)`` when a step has finished
    + waiting: called as ``waiting(description)``; returns a context manager that is held while
      the lab waits (builds an image, waits for SSH, ...)
    """

    on_step: Callable[[str, float], None] = field(default=_ignore_step)
    waiting: Callable[[str], AbstractContextManager[None]] = field(default=_no_spinner)

    @contextmanager
    def step(self, name: str, description: str | None = None) -> Iterator[None]:
        """Time a step, hold ``waiting`` while it runs, and report it through ``on_step``."""
        started = time.monotonic()
        with self.waiting(description or name):
            yield
        self.on_step(name, time.monotonic() - started)


QUIET = Progress()
