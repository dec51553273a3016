"""Where the vLLM stand-in lives: in the installed package, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

from .errors import LabError

_PACKAGE_COPY = Path(__file__).resolve().parents[1] / "_data" / "standin" / "vllm"
_CHECKOUT_COPY = Path(__file__).resolve().parents[2] / "tests" / "lab" / "standin" / "vllm"


def standin_path() -> Path:
    """The vLLM stand-in script the lab installs on nodes."""
    for candidate in (_PACKAGE_COPY, _CHECKOUT_COPY):
        if candidate.is_file():
            return candidate
    raise LabError(f"the vLLM stand-in is missing (looked at {_PACKAGE_COPY} and {_CHECKOUT_COPY})")
