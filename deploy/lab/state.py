"""The lab's state file: exactly what a lab start created, so that `down` removes exactly that."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LabError

STATE_VERSION = 1


@dataclass
class VmRecord:
    """One VM the lab started (pid is None until qemu is running)."""

    name: str
    role: str
    ssh_port: int
    index: int
    tap: str
    overlay: str
    pidfile: str
    console_log: str
    pid: int | None = None


@dataclass
class LabState:
    """What a lab start created: the namespace and bridge, and per VM its pid, tap and overlay."""

    netns: str
    bridge: str
    accel: str
    image_key: str
    started_at: float
    vms: list[VmRecord] = field(default_factory=list)

    def vm(self, name: str) -> VmRecord:
        """The record of the VM called ``name``."""
        for record in self.vms:
            if record.name == name:
                return record
        known = ", ".join(r.name for r in self.vms) or "none"
        raise LabError(f"no lab VM named {name!r} (lab VMs: {known})")

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data = json.loads(text)
        if data.pop("version", None) != STATE_VERSION:
            raise LabError("the lab state file has an unknown version")
        vms = [VmRecord(**vm) for vm in data.pop("vms", [])]
        return cls(**data, vms=vms)


def save_state(state: LabState, path: Path) -> None:
    """Write the state file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def load_state(path: Path) -> LabState | None:
    """The recorded state, or None if there is no state file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LabState.from_json(text)
    except (ValueError, TypeError) as exc:
        raise LabError(f"the lab state file {path} is unreadable ({exc}); remove it and run down") from exc
