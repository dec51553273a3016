"""Where the lab keeps its files, and the fake Hugging Face token the lab spec names."""

from __future__ import annotations

import os
import secrets
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

    @property
    def hf_token(self) -> Path:
        """The lab's fake Hugging Face token (``vllm.hf_token_file`` of the lab spec)."""
        return self.root / "hf-token"

    def overlay(self, name: str) -> Path:
        return self.run / f"{name}.qcow2"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def console_log(self, name: str) -> Path:
        return self.run / f"{name}.log"


FAKE_TOKEN_PREFIX = "hf_kvpodLabFakeTokenNotValid"


def ensure_fake_token(path: Path) -> Path:
    """A token file for the lab (``FAKE_TOKEN_PREFIX`` and random hex: clearly not a real token, different per lab
    directory), created 0600 when missing; an existing one is kept."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{FAKE_TOKEN_PREFIX}{secrets.token_hex(12)}\n")
    return path
