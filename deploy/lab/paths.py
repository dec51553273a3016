"""Where the lab keeps its files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAB_DIR = Path("/var/tmp/kvpod-lab")
LAB_DIR_ENV = "KVPOD_LAB_DIR"


def default_lab_dir() -> Path:
    """The lab directory: ``$KVPOD_LAB_DIR`` if set, else ``/var/tmp/kvpod-lab``."""
    value = os.environ.get(LAB_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_LAB_DIR


@dataclass(frozen=True)
class LabPaths:
    """The layout of a lab directory.

    ``images/<key>/`` holds cached VM images; ``run/`` holds what a running lab owns (overlays,
    pidfiles, console logs); ``state.json`` records what was started.
    """

    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def ssh_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def ssh_pubkey(self) -> Path:
        return self.root / "id_ed25519.pub"

    def overlay(self, name: str) -> Path:
        return self.run / f"{name}.qcow2"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def console_log(self, name: str) -> Path:
        return self.run / f"{name}.log"
