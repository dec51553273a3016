"""QEMU VMs: the command line (a pure function), overlays, and start/stop by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .machines import LabMachine, machine_mac, machine_uuid, tap_name

QEMU = "qemu-system-x86_64"
QEMU_COMM_PREFIX = "qemu-system"
MACHINE_TYPE = "q35"  # no legacy IDE/floppy to probe: boots faster under emulation than "pc"
GUEST_PORT = 22
MGMT_ADDRESS = "10.0.2.15/24"  # inside the VM's own user-mode network; no gateway, so no route out
MEMORY_MIB = {"target": 768, "node": 512}
OVERLAY_SIZE = "8G"
ACCEL_ENV = "KVPOD_LAB_ACCEL"


@dataclass(frozen=True)
class VmSpec:
    """Everything needed to start one VM."""

    machine: LabMachine
    index: int
    overlay: Path
    pidfile: Path
    console_log: Path
    kernel: Path
    initrd: Path

    @property
    def tap(self) -> str:
        return tap_name(self.machine.name)

    @property
    def memory_mib(self) -> int:
        return MEMORY_MIB[self.machine.role]


def choose_accel(kvm_writable: bool, pvm_loaded: bool, cpu_flags: set[str]) -> str:
    """``kvm`` only with a usable /dev/kvm on real VT-x/AMD-V (a PVM /dev/kvm cannot run stock kernels)."""
    if kvm_writable and not pvm_loaded and cpu_flags & {"vmx", "svm"}:
        return "kvm"
    return "tcg"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def host_accel() -> str:
    """The accelerator for this host; ``$KVPOD_LAB_ACCEL`` (kvm or tcg) overrides the detection."""
    forced = os.environ.get(ACCEL_ENV, "").strip()
    if forced:
        if forced not in ("kvm", "tcg"):
            raise LabError(f"{ACCEL_ENV} must be kvm or tcg, got {forced!r}")
        return forced
    return choose_accel(
        kvm_writable=os.access("/dev/kvm", os.R_OK | os.W_OK),
        pvm_loaded=Path("/sys/module/kvm_pvm").exists(),
        cpu_flags=_cpu_flags(),
    )


def kernel_cmdline(machine: LabMachine) -> str:
    """The guest kernel command line: serial console, classic NIC names, hostname and management IP."""
    return (
        "console=ttyS0 root=/dev/vda rw net.ifnames=0 mitigations=off quiet "
        f"kvpod.hostname={machine.name} kvpod.ip={MGMT_ADDRESS}"
    )


def qemu_argv(spec: VmSpec, accel: str) -> list[str]:
    """The qemu command line for one VM (pure).

    Management: user-mode networking with ``restrict=on`` (no route out) and sshd forwarded from
    127.0.0.1 only. Fabric: the host tap ``kvl-<name>``, eth1 in the guest.
    """
    m = spec.machine
    if accel == "kvm":
        cpu = ["-cpu", "host", "-accel", "kvm"]
    elif accel == "tcg":
        cpu = ["-cpu", "max", "-accel", "tcg,thread=multi,tb-size=64"]
    else:
        raise LabError(f"unknown accelerator {accel!r}")
    mgmt = f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{m.ssh_port}-:{GUEST_PORT}"
    return [
        QEMU,
        "-name", m.name,
        "-machine", MACHINE_TYPE,
        *cpu,
        "-smp", "1",
        "-m", str(spec.memory_mib),
        "-uuid", machine_uuid(m.name),
        "-nodefaults",
        "-display", "none",
        "-serial", f"file:{spec.console_log}",
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", kernel_cmdline(m),
        "-drive", f"file={spec.overlay},if=virtio,format=qcow2,cache=unsafe",
        "-netdev", mgmt,
        "-device", f"virtio-net-pci,netdev=mgmt,mac={machine_mac(spec.index, 0)}",
        "-netdev", f"tap,id=fabric,ifname={spec.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=fabric,mac={machine_mac(spec.index, 1)}",
        "-pidfile", str(spec.pidfile),
        "-daemonize",
    ]  # fmt: skip


def create_overlay(base: Path, overlay: Path, size: str = OVERLAY_SIZE) -> None:
    """A fresh qcow2 overlay on the raw base image (the base is never written)."""
    overlay.unlink(missing_ok=True)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay), size]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"qemu-img create {overlay} failed: {result.stderr.strip()}")


def start(spec: VmSpec, accel: str) -> int:
    """Start the VM in the background; return its pid."""
    spec.pidfile.unlink(missing_ok=True)
    result = subprocess.run(qemu_argv(spec, accel), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"qemu for {spec.machine.name} failed to start: {result.stderr.strip()}")
    pid = read_pid(spec.pidfile)
    if pid is None or not is_lab_qemu(pid, spec.pidfile):
        raise LabError(f"qemu for {spec.machine.name} started but left no usable pidfile at {spec.pidfile}")
    return pid


def read_pid(pidfile: Path) -> int | None:
    """The pid in a pidfile, or None."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def is_lab_qemu(pid: int, pidfile: Path | None = None) -> bool:
    """Whether ``pid`` is a running qemu-system process (and, if given, the one that wrote ``pidfile``)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not comm.startswith(QEMU_COMM_PREFIX):
        return False
    return pidfile is None or str(pidfile).encode() in cmdline


def stop(pid: int, pidfile: Path | None = None, timeout: float = 15, hard: bool = False) -> bool:
    """Stop a lab qemu by pid: SIGTERM, then SIGKILL after ``timeout`` (``hard``: SIGKILL at once).

    False if it was not running.

    The pid is checked to be the lab's qemu before each signal, so a reused pid is never signalled.
    """
    if not is_lab_qemu(pid, pidfile):
        return False
    for sig in (signal.SIGKILL,) if hard else (signal.SIGTERM, signal.SIGKILL):
        if not is_lab_qemu(pid, pidfile):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if _wait_exited(pid, timeout):
            return True
    if not _wait_exited(pid, 0):
        raise LabError(f"qemu pid {pid} is still running after SIGKILL")
    return True


def process_exited(pid: int) -> bool:
    """Whether ``pid`` no longer runs (gone, or a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _wait_exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not process_exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
