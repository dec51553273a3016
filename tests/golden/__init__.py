"""Golden files: rendered output checked byte for byte. ``KVPOD_UPDATE_GOLDEN=1`` rewrites them instead."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; rewrite it instead when KVPOD_UPDATE_GOLDEN=1."""
    path = GOLDEN_DIR / name
    if os.environ.get("KVPOD_UPDATE_GOLDEN") == "1":
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run the tests once with KVPOD_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text()
    assert text == expected, f"{name} differs from the golden file; if the change is intended, KVPOD_UPDATE_GOLDEN=1"
