"""``--batch``: how many nodes restart vLLM at once, as a count of nodes or a share of them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from deploy.errors import InputError

BATCH_HINT = "a positive number of nodes like 2, or a percentage above 0 and at most 100% like 25%"


@dataclass(frozen=True)
class Batch:
    """A restart batch: ``nodes`` at a time, or ``percent`` of the nodes (at least one)."""

    nodes: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> Batch:
        """``2`` or ``25%``; :class:`InputError` naming ``--batch`` for anything else."""
        value = (text or "").strip()
        try:
            if value.endswith("%"):
                share = float(value[:-1])
                if not 0 < share <= 100:
                    raise ValueError
                return cls(percent=share)
            nodes = int(value)
            if nodes < 1:
                raise ValueError
            return cls(nodes=nodes)
        except ValueError:
            raise InputError(f"--batch {text!r}: expected {BATCH_HINT}") from None

    def size(self, count: int) -> int:
        """Nodes per batch among ``count`` nodes."""
        if self.nodes is not None:
            return self.nodes
        return max(1, math.floor(count * (self.percent or 100) / 100))
