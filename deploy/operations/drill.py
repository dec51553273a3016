"""Drill operations: one script of :mod:`deploy.drill` run on a node or a target (start, wait, finish, clean up,
take a portal away, put it back). The scripts are built and tested there; they are not idempotent: each is
one moment of the drill.
"""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, operation


@operation(is_idempotent=False)
def drill_step(script: str):
    """
    Run one step of ``kvpod drill`` with ``sh``; what it prints is the step's answer.

    + script: the step (:mod:`deploy.drill`)
    """
    yield StringCommand("sh", "-c", QuoteString(script))
