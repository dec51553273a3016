"""Live state read from a host over testinfra. The pure parts are beside it: the state-reading script
(``verify_script``), its parsers (``verify_parse``, ``verify_parse_host``) and the parsed state (``verify_state``).

Each host answers one command: a POSIX ``sh`` script (built from the plan's reads, see
:class:`NodeReads`) that prints every fact the suite checks as a *section* of its output, each with the
exit status and standard error of the command that produced it. :class:`HostFacts` runs that script once per
host and test session (the suite's xdist workers are given whole hosts) and the checks read the parsed
:class:`NodeState` or :class:`TargetState`; nothing here changes a host.

The script keeps to commands of Debian 12: iproute2, util-linux (findmnt, runuser), coreutils, GNU grep,
systemd, nvme-cli; sysfs, configfs and small files are read with the shell's own ``read``, so that a host
spawns a process only where a tool has to answer. Probes that act on the fabric (a do-not-fragment ping
per portal, ``nvme discover`` per enclosure portal, the health URL) run in the same script.

Output format: every section is ``\\n<B> begin <name>\\n<stdout>\\n<B> end <rc>\\n<stderr>``, where ``<B>`` is
a boundary chosen at random per run (and passed to the script as ``$1``), so no output can be mistaken for a
marker; the script ends with ``\\n<B> done``. :func:`split_sections` turns that back into :class:`Section`\\ s.
The parsers are module-level functions so that they can be tested without a host.
"""

from __future__ import annotations

from typing import Any

from testinfra.host import Host
from verify_parse import (
    Controller,
    DcbState,
    NvmePaths,
    NvmetState,
    Section,
    new_boundary,
    parse_controllers,
    parse_discovery,
    parse_words,
    split_sections,
)
from verify_parse_host import enablement, ipv4_addresses, parse_models
from verify_script import NodeReads, TargetReads, controllers_script, node_script, target_script
from verify_state import HostUnreachable, NodeState, Probe, ReadFailed, TargetState, fresh, need_section


class HostFacts:
    """Read-only facts of one host: one state read per test session, and the checks' view of it.

    The state read runs on first use (the ``node_facts``/``target_facts`` fixtures ask for it before a
    check runs) and its answer, or the reason it failed, is kept for the session. A host that is only asked
    for its NVMe controllers (the pod-wide check, in a worker that does not check that node) answers a
    script reading only those.
    """

    def __init__(
        self,
        name: str,
        host: Host,
        node_reads: NodeReads | None = None,
        target_reads: TargetReads | None = None,
        root: str = "",
    ):
        self.name = name
        self.host = host
        self.node_reads = node_reads
        self.target_reads = target_reads
        self.root = root
        self.commands = 0  # state reads run on the host (the suite's own accounting)
        self._state: NodeState | TargetState | None = None
        self._error: Exception | None = None
        self._light: list[Controller] | Exception | None = None

    # -- running the scripts ------------------------------------------------------------------------------

    def read(self, script: str) -> dict[str, Section]:
        """Run one state-reading script; an SSH failure (exit 255) raises :class:`HostUnreachable`."""
        boundary = new_boundary()
        self.commands += 1
        try:
            result = self.host.run("sh -c %s sh %s", script, boundary)
        except RuntimeError as exc:
            raise HostUnreachable(f"{self.name}: SSH failed: {_ssh_error(exc)}") from None
        sections, done = split_sections(result.stdout_bytes.decode("utf-8", "replace"), boundary)
        if not done:
            err = [line for line in result.stderr_bytes.decode("utf-8", "replace").splitlines() if line.strip()]
            raise ReadFailed(
                f"{self.name}: the state read stopped (exit {result.rc}): {err[-1].strip() if err else 'no output'}"
            )
        return sections

    def ensure_reachable(self) -> None:
        """Read the host's state unless done; raise :class:`HostUnreachable` (or why the read failed)."""
        if self._state is None and self._error is None:
            try:
                if self.node_reads is not None:
                    self._state = NodeState(
                        self.read(node_script(self.node_reads, self.root)), self.node_reads, self.root
                    )
                elif self.target_reads is not None:
                    self._state = TargetState(self.read(target_script(self.target_reads, self.root)))
                else:
                    raise ReadFailed(f"{self.name}: nothing to read")
            except (HostUnreachable, ReadFailed) as exc:
                self._error = exc
        if self._error is not None:
            raise fresh(self._error)

    def node(self) -> NodeState:
        self.ensure_reachable()
        assert isinstance(self._state, NodeState), f"{self.name} is not read as a node"
        return self._state

    def target(self) -> TargetState:
        self.ensure_reachable()
        assert isinstance(self._state, TargetState), f"{self.name} is not read as a target"
        return self._state

    def _reads(self, what: str, given: object, read: object) -> None:
        if given != read:
            raise ReadFailed(f"{self.name}: {what} {given!r} is not read (the state read has {read!r})")

    def _reads_one_of(self, what: str, given: object, read: tuple) -> None:
        if given not in read:
            raise ReadFailed(f"{self.name}: {what} {given!r} is not read (the state read has {read!r})")

    # -- network ------------------------------------------------------------------------------------------

    def link(self, name: str) -> dict[str, Any] | None:
        """The ``ip -d -j addr`` entry of an interface, or None when there is no such interface."""
        return self.node().links().get(name)

    def addresses(self, name: str) -> set[str]:
        """IPv4 addresses of an interface as ``address/prefix``."""
        return ipv4_addresses(self.link(name))

    def route_to(self, address: str) -> dict[str, Any] | None:
        return self.node().routes().get(address)

    def ping(self, address: str, size: int) -> Probe:
        """One do-not-fragment echo of ``size`` payload bytes (sent by the state read)."""
        self._reads("ping size", size, self.node().reads.ping_size)
        return self.node().ping(address)

    def rdma_links(self) -> list[dict[str, Any]]:
        """``rdma -j link show``: RDMA devices and the netdev each one serves."""
        return self.node().rdma_links()

    # -- files, sysctls, modules --------------------------------------------------------------------------

    def file_text(self, path: str) -> str | None:
        """The content of a file, or None when it does not exist or cannot be read."""
        return self.node().file_text(path)

    def file_mode(self, path: str) -> tuple[str, str, str] | None:
        """``(mode in octal, user, group)`` of a file the state read was told to stat, None when absent."""
        if path not in self.node().reads.modes:
            read = self.node().reads.modes
            raise ReadFailed(f"{self.name}: the mode of {path!r} is not read (the state read has {read!r})")
        return self.node().file_mode(path)

    def sysctl(self, key: str) -> str | None:
        return self.node().sysctls().get(key)

    def module_state(self, name: str) -> str:
        """``loaded`` (in /sys/module), ``builtin`` (in the kernel's modules.builtin), or ``absent``."""
        return self.node().module_states().get(name, "absent")

    def modules_load(self, directory: str) -> dict[str, set[str]]:
        """``{module: {files in directory listing it}}``."""
        self._reads("modules-load directory", directory, self.node().reads.modules_load_dir)
        return self.node().modules_load()

    # -- NVMe ---------------------------------------------------------------------------------------------

    def controllers(self) -> list[Controller]:
        """The host's NVMe controllers: from its state read, or (not read here) from a script reading only them."""
        if self._state is not None or self._error is not None or self.node_reads is None:
            return self.node().controllers()
        if self._light is None:
            try:
                sections = self.read(controllers_script(self.root))
                self._light = parse_controllers(need_section(sections.get("controllers"), "/sys/class/nvme").stdout)
            except (HostUnreachable, ReadFailed) as exc:
                self._light = exc
        if isinstance(self._light, Exception):
            raise fresh(self._light)
        return self._light

    def nvme_paths(self) -> NvmePaths:
        """Each subsystem's multipath I/O policy and each controller's connect attributes (sysfs)."""
        return self.node().nvme_paths()

    def dcb(self) -> DcbState:
        """The fabric NIC's DCB: DSCP trust entries, PFC and ECN of the lossless priority."""
        return self.node().dcb()

    def mounted_namespace(self, path: str) -> dict[str, str]:
        """What is mounted at ``path``: ``mounted``, ``source``, ``device``, ``subsysnqn``, ``subsystem``, ``nsid``."""
        self._reads("mount path", path, self.node().reads.mount_path)
        return self.node().mounted()[1]

    def discover(self, transport: str, address: str, trsvcid: int) -> list[dict[str, Any]]:
        """NVMe subsystems a discovery controller at the portal reports to this host."""
        s = self.node().discovery(transport, address, trsvcid)
        if not s.ok:
            raise AssertionError(
                f"nvme discover -t {transport} -a {address} -s {trsvcid} exited {s.rc}: "
                f"{(s.stderr or s.stdout).strip()[-300:]}"
            )
        return parse_discovery(s.stdout)

    def nvmet(self, root: str) -> NvmetState:
        assert self.target_reads is not None
        self._reads("nvmet root", root, self.target_reads.nvmet_root)
        return self.target().nvmet()

    # -- mounts, users, units, processes ------------------------------------------------------------------

    def mount(self, path: str) -> dict[str, str] | None:
        """findmnt's target, source, fstype and options of the mount at ``path``; None when nothing is mounted."""
        self._reads("mount path", path, self.node().reads.mount_path)
        row = self.node().mounted()[0]
        return {k: row[k] for k in ("target", "source", "fstype", "options")} if row else None

    def mount_of(self, path: str) -> str | None:
        """The mount point holding ``path`` (None when there is no such path)."""
        self._reads("directory", path, self.node().reads.local_disk_dir)
        return self.node().mount_of_local_disk()

    def writable_by(self, user: str, path: str) -> tuple[bool, str]:
        self._reads("user", user, self.node().reads.user)
        return self.node().writable(path)

    def space(self, path: str, cache_dir: str) -> dict[str, int]:
        """Bytes available and total on the filesystem of ``path``, and bytes already in ``cache_dir``."""
        self._reads("mount path", path, self.node().reads.mount_path)
        self._reads("directory", cache_dir, self.node().reads.local_disk_dir)
        return self.node().space()

    def unit(self, name: str) -> dict[str, str]:
        """``systemctl show`` properties of a unit."""
        return self.node().unit(name)

    def is_enabled(self, name: str) -> str:
        """The unit's enablement as ``systemctl is-enabled`` names it (its ``UnitFileState``)."""
        return enablement(self.unit(name))

    def mount_unit_name(self, path: str) -> str:
        self._reads("mount path", path, self.node().reads.mount_path)
        return self.node().mount_unit()

    def proc_cmdline(self, pid: str) -> list[str]:
        return self.node().process(pid)[1]

    def proc_environ(self, pid: str) -> dict[str, str]:
        return self.node().process(pid)[2]

    def proc_user(self, pid: str) -> str:
        """The user a process runs as (the owner of /proc/PID)."""
        return self.node().process(pid)[0]

    def http_status(self, url: str) -> tuple[int, str]:
        """The HTTP status of a GET from the host itself (0 when nothing answered), and the raw answer."""
        self._reads_one_of("health URL", url, self.node().reads.health_urls)
        return self.node().health(url)

    def served_models(self, url: str) -> tuple[list[str] | None, str]:
        """The model ids a ``GET url`` (``/v1/models``) lists, from the host itself; None and why when it fails."""
        self._reads_one_of("models URL", url, self.node().reads.models_urls)
        return parse_models(self.node().models(url))

    def gpu_ops_import(self) -> tuple[str, str]:
        """(``imported`` | ``not-applicable`` | ``failed``, what the import said)."""
        section = self.node().gpu_ops()
        if not section.ok:
            return "failed", section.why()
        out = section.stdout.strip()
        return ("not-applicable" if out == "not-applicable" else "imported"), out

    def model_files(self, pattern: str) -> list[str]:
        """The files matching ``pattern`` (one of the state read's ``model_files``) that exist on the host."""
        if pattern not in self.node().reads.model_files:
            read = self.node().reads.model_files
            raise ReadFailed(f"{self.name}: the files {pattern!r} are not read (the state read has {read!r})")
        return self.node().model_files()

    def connector_import(self) -> tuple[bool, dict[str, str], str]:
        """(whether vLLM's interpreter imports LMCache's connector, {"interpreter", "vllm", "lmcache"}, why not)."""
        section = self.node().connector()
        return section.ok, parse_words(section.stdout), section.why()


def _ssh_error(exc: RuntimeError) -> str:
    result = exc.args[0] if exc.args else None
    raw = getattr(result, "stderr_bytes", b"") or str(exc).encode()
    lines = [line for line in raw.decode("utf-8", "replace").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "exit 255"
