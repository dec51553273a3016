"""The rolling restart of vLLM engines, as pure functions of the plan: which engines a node runs, how many may be
down at once (``--max-unavailable``), the batches, and what a rollout did (for the report).

An engine is one vLLM server: its systemd unit, the health and model-list URLs on the node's loopback, and the
model name it serves. :func:`node_engines` is the one place that says which engines a node plan has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deploy.errors import InputError
from deploy.plan import NodePlan

SERVED_MODEL_NAME = "--served-model-name"
JOURNAL_LINES = 20  # the journal lines of a failed engine kept in the report


@dataclass(frozen=True)
class Engine:
    """One vLLM engine of a node: what the rollout restarts and waits for."""

    node: str
    unit: str
    health_url: str
    models_url: str
    model: str  # the name ``GET /v1/models`` lists (``data[].id``)

    @property
    def label(self) -> str:
        return f"{self.node}/{self.unit}"


def served_model_name(model: str, extra_args: Iterable[str]) -> str:
    """The name vLLM serves ``model`` under: the first ``--served-model-name`` value, else the model itself.

    vLLM's API server lists every ``--served-model-name`` value (``nargs="+"``, the last occurrence wins) in
    ``GET /v1/models`` and defaults to ``[model]``; its parser reads ``_`` in an option name as ``-``.
    """
    name = model
    words = list(extra_args)
    for i, word in enumerate(words):
        option, eq, value = word.partition("=")
        option = option.replace("_", "-")
        if len(option) < len("--served") or not SERVED_MODEL_NAME.startswith(option):
            continue
        if eq:
            name = value
        elif i + 1 < len(words) and not words[i + 1].startswith("-"):
            name = words[i + 1]
    return name


def node_engines(node: NodePlan) -> list[Engine]:
    """The engines of a node plan, in restart order (``NodePlan.engines``: one per ``tensor_parallel_size`` GPUs)."""
    name = served_model_name(node.vllm.model, node.vllm.extra_args)
    return [Engine(node.name, e.unit, e.health_url, e.models_url, name) for e in node.engines]


@dataclass(frozen=True)
class Share:
    """``--max-unavailable``: a count of engines, or a percentage of the pod's engines."""

    count: int | None = None
    percent: float | None = None

    def of(self, total: int) -> int:
        """Engines that may be down at once in a pod of ``total`` engines (at least 1)."""
        if self.percent is None:
            return int(self.count or 1)
        return max(1, math.floor(total * self.percent / 100))


def parse_max_unavailable(text: str, option: str = "--max-unavailable") -> Share:
    """``N`` (a count, at least 1) or ``P%`` (0 < P <= 100); :class:`InputError` naming ``option`` otherwise."""
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return Share(percent=percent)
        count = int(value)
        if count < 1:
            raise ValueError
        return Share(count=count)
    except ValueError:
        raise InputError(
            f"{option} {text!r}: expected a number of engines (at least 1, e.g. 2) "
            "or a percentage of the pod's engines (above 0 and at most 100, e.g. 25%)"
        ) from None


def rollout_share(max_unavailable: str | None, batch: str | None) -> str:
    """The one ``--max-unavailable`` text of a run given ``--max-unavailable`` and its alias ``--batch``.

    Both are checked; giving both with different values is refused (:class:`InputError`). Default ``1``."""
    given = {o: v for o, v in (("--max-unavailable", max_unavailable), ("--batch", batch)) if v is not None}
    for option, value in given.items():
        parse_max_unavailable(value, option)
    if len(set(given.values())) > 1:
        raise InputError(
            f"--batch {batch!r} and --max-unavailable {max_unavailable!r}: --batch is another name for "
            "--max-unavailable; give one of them"
        )
    return next(iter(given.values()), "1")


Batch = list[tuple[str, list[Engine]]]  # (node, the engines of that node restarted together)


def restart_batches(pending: list[tuple[str, list[Engine]]], limit: int) -> list[Batch]:
    """Batches of at most ``limit`` engines, nodes in the given order.

    A batch takes whole nodes while their engines fit; a node with more engines than ``limit`` restarts in
    chunks of ``limit`` engines, each a batch of its own (so a node's engines are split only when they must be).
    """
    batches: list[Batch] = []
    current: Batch = []
    size = 0
    for node, engines in pending:
        if not engines:
            continue
        if len(engines) > limit:
            if current:
                batches.append(current)
                current, size = [], 0
            batches += [[(node, engines[i : i + limit])] for i in range(0, len(engines), limit)]
            continue
        if size + len(engines) > limit:
            batches.append(current)
            current, size = [], 0
        current.append((node, engines))
        size += len(engines)
    if current:
        batches.append(current)
    return batches


@dataclass
class EngineFailure:
    """An engine of the stopped batch that did not become healthy (or whose node went away)."""

    node: str
    unit: str
    detail: str
    journal: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "unit": self.unit, "detail": self.detail, "journal": self.journal}


@dataclass
class Rollout:
    """What the rolling restart did: its batches, how many finished healthy, where it stopped and why."""

    max_unavailable: int
    batches: list[list[str]]  # each batch's engines as ``node/unit``
    completed: int = 0
    stopped_after: int | None = None  # the 1-based batch that was not healthy
    failed: list[EngineFailure] = field(default_factory=list)
    rolled_out: set[str] = field(default_factory=set)  # nodes whose engines of a batch came back healthy

    def as_json(self) -> dict[str, Any]:
        return {
            "max_unavailable": self.max_unavailable,
            "batches": self.batches,
            "completed_batches": self.completed,
            "stopped_after_batch": self.stopped_after,
            "failed_engines": [f.as_json() for f in self.failed],
        }
