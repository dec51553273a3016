"""The lab: boot a virtual pod of QEMU VMs (one NVMe-oF target, N nodes), reach them, tear it down.

Nothing here prints: progress goes through a :class:`~deploy.lab.progress.Progress`, failures raise
:class:`~deploy.lab.errors.LabError`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import hostdeps, network, ssh, vm
from .errors import LabError
from .image import ImageInfo, ImageRecipe, image_cache_key, load_image
from .image import ensure_image as _ensure_image
from .machines import LabMachine, tap_name, validate_machines
from .paths import LabPaths, default_lab_dir, ensure_fake_token
from .progress import QUIET, Progress
from .state import LabState, VmRecord, load_state, save_state

DEFAULT_SSH_TIMEOUT = 900.0
CONSOLE_TAIL_LINES = 15


@dataclass(frozen=True)
class VmStatus:
    """How a lab VM is doing: ``running`` (SSH answers), ``unreachable`` (qemu runs, SSH does not),
    or ``stopped``."""

    name: str
    ssh_port: int
    pid: int | None
    state: str


class Lab:
    """A lab in one directory (default ``$KVPOD_LAB_DIR`` or ``/var/tmp/kvpod-lab``).

    + lab_dir: where images, the SSH key, overlays, pidfiles and the state file live
    + netns: the network namespace holding the fabric bridge
    + bridge: the fabric bridge inside ``netns``
    """

    def __init__(
        self,
        lab_dir: Path | None = None,
        netns: str = network.DEFAULT_NETNS,
        bridge: str = network.DEFAULT_BRIDGE,
        recipe: ImageRecipe | None = None,
    ) -> None:
        self.paths = LabPaths(lab_dir or default_lab_dir())
        self.netns = netns
        self.bridge = bridge
        self.recipe = recipe or ImageRecipe()

    # -- host and image ------------------------------------------------------------------------

    def ensure_host_deps(self) -> list[str]:
        """Install missing host packages; return the ones installed."""
        return hostdeps.ensure_host_deps()

    def ensure_key(self) -> Path:
        """The lab's SSH private key, generated if missing."""
        key = self.paths.ssh_key
        if key.is_file() and self.paths.ssh_pubkey.is_file():
            return key
        key.parent.mkdir(parents=True, exist_ok=True)
        key.unlink(missing_ok=True)
        self.paths.ssh_pubkey.unlink(missing_ok=True)
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kvpod-lab", "-f", str(key)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"ssh-keygen failed: {result.stderr.strip()}")
        return key

    def ensure_hf_token(self) -> Path:
        """The lab's fake Hugging Face token file (mode 0600), created if missing."""
        return ensure_fake_token(self.paths.hf_token)

    def image_key(self) -> str:
        """The cache key of the image this lab boots (generates the SSH key if needed)."""
        self.ensure_key()
        return image_cache_key(self.recipe, self.paths.ssh_pubkey.read_text())

    def cached_image(self) -> ImageInfo | None:
        """The built image for the current recipe and key, or None if it must still be built."""
        return load_image(self.paths.images / self.image_key())

    def ensure_image(self, progress: Progress = QUIET) -> ImageInfo:
        """The VM image, built once (a few minutes) and then reused from the cache."""
        self.ensure_key()
        pubkey = self.paths.ssh_pubkey.read_text()
        return _ensure_image(self.paths.images, pubkey, self.recipe, progress)

    # -- up ------------------------------------------------------------------------------------

    def state(self) -> LabState | None:
        """What the running (or partly started) lab recorded, or None."""
        return load_state(self.paths.state_file)

    def boot(
        self,
        machines: list[LabMachine],
        progress: Progress = QUIET,
        ssh_timeout: float = DEFAULT_SSH_TIMEOUT,
    ) -> LabState:
        """Boot all machines in parallel and wait until each answers SSH.

        On failure everything started so far is removed again (console logs are kept) and
        :class:`LabError` says which VM failed, with the end of its console log.
        """
        validate_machines(machines)
        self._check_can_boot(machines)
        image = self.ensure_image(progress)
        state = LabState(
            netns=self.netns,
            bridge=self.bridge,
            accel=vm.host_accel(),
            image_key=image.key,
            started_at=time.time(),
        )
        try:
            with progress.step("boot: start VMs", f"starting {len(machines)} VMs ({state.accel})"):
                self._start_all(state, machines, image)
            with progress.step("boot: wait for SSH", f"waiting for SSH on {len(machines)} VMs"):
                self._wait_all(state, ssh_timeout, progress)
        except BaseException:
            self.down()
            raise
        return state

    def _check_can_boot(self, machines: list[LabMachine]) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates taps and a network namespace)")
        missing = hostdeps.missing_packages()
        if missing:
            raise LabError(f"missing host packages: {' '.join(missing)} (the lab's deps step installs them)")
        running = [s.name for s in self.status() if s.state != "stopped"]
        if running:
            raise LabError(f"the lab is already up ({', '.join(running)}); take it down first")
        self.down()
        busy = [m for m in machines if not _port_free(m.ssh_port)]
        if busy:
            ports = ", ".join(f"{m.ssh_port} ({m.name})" for m in busy)
            raise LabError(f"127.0.0.1 ports already in use: {ports}")

    def _start_all(self, state: LabState, machines: list[LabMachine], image: ImageInfo) -> None:
        self.paths.run.mkdir(parents=True, exist_ok=True)
        save_state(state, self.paths.state_file)
        network.ensure_netns(self.netns)
        network.ensure_bridge(self.netns, self.bridge)
        for index, machine in enumerate(machines, start=1):
            spec = self._vm_spec(machine, index, image)
            record = VmRecord(
                name=machine.name,
                role=machine.role,
                ssh_port=machine.ssh_port,
                index=index,
                tap=spec.tap,
                overlay=str(spec.overlay),
                pidfile=str(spec.pidfile),
                console_log=str(spec.console_log),
            )
            state.vms.append(record)
            save_state(state, self.paths.state_file)
            vm.create_overlay(image.rootfs, spec.overlay)
            network.create_tap(spec.tap)
            record.pid = vm.start(spec, state.accel)
            save_state(state, self.paths.state_file)
            network.move_into_netns(spec.tap, self.netns)

    def _vm_spec(self, machine: LabMachine, index: int, image: ImageInfo) -> vm.VmSpec:
        return vm.VmSpec(
            machine=machine,
            index=index,
            overlay=self.paths.overlay(machine.name),
            pidfile=self.paths.pidfile(machine.name),
            console_log=self.paths.console_log(machine.name),
            kernel=image.kernel,
            initrd=image.initrd,
        )

    def _wait_all(self, state: LabState, timeout: float, progress: Progress) -> None:
        key = self.paths.ssh_key

        def wait(record: VmRecord) -> None:
            def alive() -> bool:
                return record.pid is not None and vm.is_lab_qemu(record.pid, Path(record.pidfile))

            try:
                seconds = ssh.wait_for_ssh(key, record.ssh_port, timeout, alive)
            except LabError as exc:
                raise LabError(f"{record.name}: {exc}\n{_console_tail(Path(record.console_log))}") from exc
            progress.on_step(f"ssh: {record.name}", seconds)

        with ThreadPoolExecutor(max_workers=len(state.vms)) as pool:
            for future in [pool.submit(wait, record) for record in state.vms]:
                future.result()

    # -- down ----------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop what the lab started and remove its taps, namespace, overlays, pidfiles and state.

        Works without a state file too (after a crash): it then stops the qemu processes named by
        the lab's pidfiles and removes the lab's namespace by name. Returns what it removed.
        """
        try:
            state = load_state(self.paths.state_file)
        except LabError:
            state = None
        records = state.vms if state else self._leftover_records()
        netns = state.netns if state else self.netns
        removed = [f"vm {name} (pid {pid})" for name, pid in self._stop_vms(records)]
        for record in records:
            if network.delete_link(record.tap):
                removed.append(f"tap {record.tap}")
            if network.netns_exists(netns) and network.delete_link(record.tap, netns):
                removed.append(f"tap {record.tap}")
        if network.delete_netns(netns):
            removed.append(f"netns {netns}")
        for record in records:
            for path in (Path(record.overlay), Path(record.pidfile)):
                if path.exists():
                    path.unlink()
                    removed.append(str(path))
        if self.paths.state_file.exists():
            self.paths.state_file.unlink()
            removed.append(str(self.paths.state_file))
        return removed

    def _stop_vms(self, records: list[VmRecord]) -> list[tuple[str, int]]:
        def stop(record: VmRecord) -> tuple[str, int] | None:
            pidfile = Path(record.pidfile)
            pid = record.pid or vm.read_pid(pidfile)
            if pid is not None and vm.stop(pid, pidfile):
                return record.name, pid
            return None

        with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
            return [r for r in pool.map(stop, records) if r is not None]

    def _leftover_records(self) -> list[VmRecord]:
        """Records rebuilt from the run directory's pidfiles and overlays, when the state file is gone."""
        run = self.paths.run
        names = sorted({p.stem for p in [*run.glob("*.pid"), *run.glob("*.qcow2")]}) if run.is_dir() else []
        return [
            VmRecord(
                name=name,
                role="",
                ssh_port=0,
                index=0,
                tap=tap_name(name),
                overlay=str(self.paths.overlay(name)),
                pidfile=str(self.paths.pidfile(name)),
                console_log=str(self.paths.console_log(name)),
            )
            for name in names
        ]

    # -- one VM off and on ---------------------------------------------------------------------

    def stop(self, name: str, hard: bool = False) -> int | None:
        """Stop VM ``name`` as a power cut would (SIGTERM; ``hard``: SIGKILL); its overlay and tap stay.

        Only the process checked, as :meth:`down` checks it, to be the lab's qemu for that VM is
        signalled. Returns the pid stopped, None when the VM was not running.
        """
        state = self._running_state()
        record = state.vm(name)
        pidfile = Path(record.pidfile)
        pid = record.pid or vm.read_pid(pidfile)
        stopped = pid is not None and vm.stop(pid, pidfile, hard=hard)
        record.pid = None
        save_state(state, self.paths.state_file)
        return pid if stopped else None

    def start(self, name: str, ssh_timeout: float = DEFAULT_SSH_TIMEOUT) -> float:
        """Boot a stopped VM again from its own overlay (its disk as it was) and wait for SSH; returns seconds.

        Its switch port (the tap in the lab's namespace) comes back with the bridge, MTU and VLANs it had,
        as a physical switch keeps a port's configuration while the machine behind it is off.
        """
        state = self._running_state()
        record = state.vm(name)
        pidfile = Path(record.pidfile)
        if record.pid is not None and vm.is_lab_qemu(record.pid, pidfile):
            raise LabError(f"{name} is running (pid {record.pid})")
        overlay = Path(record.overlay)
        if not overlay.is_file():
            raise LabError(f"{name} has no disk at {overlay}; the lab must be booted again (down, up)")
        image = load_image(self.paths.images / state.image_key)
        if image is None:
            raise LabError(f"the image {state.image_key} that {name} was booted from is gone")
        machine = LabMachine(record.name, record.ssh_port, record.role)
        spec = vm.VmSpec(machine, record.index, overlay, pidfile, Path(record.console_log), image.kernel, image.initrd)
        port = network.port_config(record.tap, state.netns)
        network.delete_link(record.tap, state.netns)
        network.delete_link(record.tap)
        network.create_tap(record.tap)
        started = time.monotonic()
        record.pid = vm.start(spec, state.accel)
        save_state(state, self.paths.state_file)
        network.move_into_netns(record.tap, state.netns)
        if port is not None:
            network.restore_port(record.tap, state.netns, port)

        def alive() -> bool:
            return record.pid is not None and vm.is_lab_qemu(record.pid, pidfile)

        try:
            ssh.wait_for_ssh(self.paths.ssh_key, record.ssh_port, ssh_timeout, alive)
        except LabError as exc:
            raise LabError(f"{name}: {exc}\n{_console_tail(Path(record.console_log))}") from exc
        return time.monotonic() - started

    def _running_state(self) -> LabState:
        state = self.state()
        if state is None:
            raise LabError("the lab is not up")
        return state

    # -- use -----------------------------------------------------------------------------------

    def status(self) -> list[VmStatus]:
        """The state of each recorded VM (empty when the lab is down)."""
        try:
            state = load_state(self.paths.state_file)
        except LabError:
            return []
        if state is None:
            return []
        return [self._vm_status(record) for record in state.vms]

    def _vm_status(self, record: VmRecord) -> VmStatus:
        if record.pid is None or not vm.is_lab_qemu(record.pid, Path(record.pidfile)):
            return VmStatus(record.name, record.ssh_port, record.pid, "stopped")
        try:
            probe = ssh.run(self.paths.ssh_key, record.ssh_port, "true", timeout=20)
            answered = probe.returncode == 0
        except LabError:
            answered = False
        return VmStatus(record.name, record.ssh_port, record.pid, "running" if answered else "unreachable")

    def _record(self, name: str) -> VmRecord:
        return self._running_state().vm(name)

    def ssh_command(self, name: str, command: list[str] | None = None) -> list[str]:
        """The ``ssh`` argv for VM ``name`` (interactive when ``command`` is None)."""
        record = self._record(name)
        return ssh.ssh_argv(self.paths.ssh_key, record.ssh_port, command, batch=command is not None)

    def run(self, name: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a shell command on VM ``name``; the exit status is the caller's to check."""
        record = self._record(name)
        return ssh.run(self.paths.ssh_key, record.ssh_port, command, timeout=timeout)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _console_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()[-CONSOLE_TAIL_LINES:]
    except OSError:
        return f"(no console log at {log})"
    return f"last lines of {log}:\n" + "\n".join(lines)
