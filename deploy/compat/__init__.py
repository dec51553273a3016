"""Which vLLM and LMCache versions work together: a table backed by evidence gathered from their wheels.

Each row of ``table.toml`` is one (vLLM, LMCache) pair as ``pip install vllm==X lmcache==Y`` resolves it: the
torch and CUDA runtime the resolution brings, whether LMCache's compiled extensions link against them
(``works``/``broken``), why, and the evidence file (``evidence/vllm-X_lmcache-Y.json``) that shows it. The
evidence is regenerated with ``python3 -m deploy.compat.gather --vllm X --lmcache Y``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

HERE = Path(__file__).parent
TABLE = HERE / "table.toml"
EVIDENCE_DIR = HERE / "evidence"
# The lab's wheelhouse holds stand-ins of vLLM (0.0.0+standin) and LMCache, not the real packages.
STANDIN_VLLM_VERSION = "0.0.0"
STATUSES = ("works", "broken")


@dataclass(frozen=True)
class Pair:
    """One row of the table."""

    vllm: str
    lmcache: str
    status: Literal["works", "broken"]
    torch: str  # the torch version the resolution brings ("-": it does not resolve)
    cuda: str  # the CUDA runtime wheel's version the resolution brings
    reason: str
    evidence: str  # file name under evidence/


def evidence_name(vllm: str, lmcache: str) -> str:
    """The evidence file of a pair: ``vllm-0.11.0_lmcache-0.5.6.json``."""
    return f"vllm-{vllm}_lmcache-{lmcache}.json"


@cache
def table() -> tuple[tuple[str, str], dict[tuple[str, str], Pair]]:
    """The default pair and every row by (vllm, lmcache)."""
    data = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    rows = {(p.vllm, p.lmcache): p for p in (Pair(**row) for row in data["pair"])}
    default = (data["default"]["vllm"], data["default"]["lmcache"])
    return default, rows


def default_pair() -> tuple[str, str]:
    """The (vllm, lmcache) versions ``vllm.install`` installs unless told otherwise."""
    return table()[0]


def pairs() -> dict[tuple[str, str], Pair]:
    return table()[1]


def lookup(vllm: str, lmcache: str) -> Pair | None:
    """The row of a pair, None when the table does not know it."""
    return pairs().get((vllm, lmcache))


def working() -> list[Pair]:
    """The pairs the table marks ``works``."""
    return [p for p in pairs().values() if p.status == "works"]


def is_standin(vllm: str, wheelhouse: str | None) -> bool:
    """The lab's stand-in: vLLM 0.0.0 installed from a wheelhouse (no index has such a vLLM)."""
    return vllm == STANDIN_VLLM_VERSION and wheelhouse is not None
