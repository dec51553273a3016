"""Where kvpod's shipped data lives: the source tree (editable install) or the wheel's ``_data``."""

from __future__ import annotations

import functools
from pathlib import Path

_PKG = Path(__file__).resolve().parent
_SRC = _PKG.parent


@functools.cache  # where kvpod is installed does not change while it runs
def _data_dir(installed: str, source: str) -> Path:
    packaged = _PKG / "_data" / installed
    return packaged if packaged.exists() else _SRC / source


def templates_dir() -> Path:
    return _data_dir("templates", "templates")


def inventories_dir() -> Path:
    return _data_dir("inventories", "inventories")


def verify_suite_dir() -> Path:
    """The verify suite: a pytest rootdir of its own, shipped inside the package."""
    return _PKG / "verify_suite"


def standin_dir() -> Path:
    return _data_dir("standin", "tests/lab/standin")


def reference_spec() -> Path:
    """The reference pod (24 nodes on one Data24), the default for plan/validate/size."""
    return inventories_dir() / "reference" / "pod.yaml"


def lab_spec() -> Path:
    """The lab pod, the default for ``kvpod lab`` and for bring-up without a spec."""
    return inventories_dir() / "lab" / "pod.yaml"
