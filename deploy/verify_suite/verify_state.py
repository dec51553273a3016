"""A host's state read, parsed lazily for the checks: :class:`NodeState` and :class:`TargetState` (pure), and
why a check cannot tell (:class:`ReadFailed`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from verify_parse import (
    Controller,
    DcbState,
    NvmePaths,
    NvmetState,
    Section,
    parse_controllers,
    parse_dcb,
    parse_grep_values,
    parse_modules_load,
    parse_nvme_paths,
    parse_nvmet,
)
from verify_parse_host import (
    parse_df,
    parse_du,
    parse_http_status,
    parse_links,
    parse_module_states,
    parse_mounted,
    parse_process,
    parse_routes,
    parse_unit_blocks,
    parse_writable,
    unescape_raw,
)
from verify_script import NodeReads, section_name, sysctl_key


@dataclass(frozen=True)
class Probe:
    """The answer of a command run for its effect (a ping): exit status and output."""

    rc: int
    stdout: str
    stderr: str


class HostUnreachable(Exception):
    """The host could not be reached over SSH, so none of its checks could run."""


class ReadFailed(AssertionError):
    """A command of the state read failed, so the checks reading its answer cannot tell."""


def fresh(exc: Exception) -> Exception:
    """A new exception like a remembered one: raising the same object again would pile up its traceback."""
    return type(exc)(*exc.args)


def need_section(section: Section | None, what: str) -> Section:
    if section is None:
        raise ReadFailed(f"{what}: not in the state read")
    if not section.ok:
        raise ReadFailed(f"{what}: {section.why()}")
    return section


class _Lazy:
    """Parses a section on first use and remembers the result (or the error) for the session."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def _parsed(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except ReadFailed as exc:
                self._cache[key] = exc
        value = self._cache[key]
        if isinstance(value, ReadFailed):
            raise fresh(value)
        return value


class NodeState(_Lazy):
    """Everything the suite checks on a node, parsed (lazily, by the pure parsers above) from one state read."""

    def __init__(self, sections: dict[str, Section], reads: NodeReads, root: str = "") -> None:
        super().__init__()
        self.sections = sections
        self.reads = reads
        self.root = root

    def need(self, name: str, what: str) -> Section:
        """The section, which must have succeeded."""
        return need_section(self.sections.get(name), what)

    def present(self, name: str, what: str) -> Section:
        """The section, whatever its exit status (its command reports partial answers)."""
        section = self.sections.get(name)
        if section is None:
            raise ReadFailed(f"{what}: not in the state read")
        return section

    # -- network ------------------------------------------------------------------------------------------

    def links(self) -> dict[str, dict[str, Any]]:
        return self._parsed("links", lambda: parse_links(self.need("links", "ip -d -j addr show").stdout))

    def routes(self) -> dict[str, dict[str, Any]]:
        """``ip route get`` of each portal; one that failed is left out (``ip -force`` carries on)."""
        return self._parsed("routes", lambda: parse_routes(self.present("routes", "ip route get").stdout))

    def ping(self, address: str) -> Probe:
        s = self.present(section_name("ping", address), f"ping {address}")
        return Probe(s.rc, s.stdout, s.stderr)

    def rdma_links(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            s = self.present("rdma", "rdma link")
            return json.loads(s.stdout) if s.ok and s.stdout.strip() else []

        return self._parsed("rdma", read)

    # -- files, sysctls, modules --------------------------------------------------------------------------

    def sysctls(self) -> dict[str, str]:
        """Live values of the read sysctls (a key that could not be read is left out)."""

        def read() -> dict[str, str]:
            values = parse_grep_values(self.present("sysctl", "sysctls").stdout)
            return {sysctl_key(path): value for path, value in values.items()}

        return self._parsed("sysctl", read)

    def file_text(self, path: str) -> str | None:
        s = self.present(section_name("file", path), path)
        return s.stdout if s.ok else None

    def file_mode(self, path: str) -> tuple[str, str, str] | None:
        """``(mode in octal, user, group)`` of a file, None when it does not exist."""
        s = self.present(section_name("mode", path), f"mode of {path}")
        words = s.stdout.split()
        return (words[0], words[1], words[2]) if s.ok and len(words) == 3 else None

    def module_states(self) -> dict[str, str]:
        def read() -> dict[str, str]:
            return parse_module_states(self.present("modules", "kernel modules").stdout, self.reads.modules)

        return self._parsed("modules", read)

    def modules_load(self) -> dict[str, set[str]]:
        return self._parsed(
            "modules-load", lambda: parse_modules_load(self.need("modules-load", "modules-load.d").stdout)
        )

    # -- NVMe, mounts -------------------------------------------------------------------------------------

    def controllers(self) -> list[Controller]:
        return self._parsed(
            "controllers", lambda: parse_controllers(self.need("controllers", "/sys/class/nvme").stdout)
        )

    def nvme_paths(self) -> NvmePaths:
        return self._parsed("nvme-paths", lambda: parse_nvme_paths(self.need("nvme-paths", "/sys/class/nvme").stdout))

    def dcb(self) -> DcbState:
        return self._parsed("dcb", lambda: parse_dcb(self.need("dcb", "dcb -j app/pfc show").stdout))

    def mounted(self) -> tuple[dict[str, str] | None, dict[str, str]]:
        """(findmnt's row for the KV cache path or None, the namespace mounted there)."""
        return self._parsed(
            "mount", lambda: parse_mounted(self.need("mount", f"findmnt -M {self.reads.mount_path}").stdout)
        )

    def mount_of_local_disk(self) -> str | None:
        s = self.present("mount-of", f"findmnt -T {self.reads.local_disk_dir}")
        return unescape_raw(s.stdout.strip().split("\n")[0]) if s.ok and s.stdout.strip() else None

    def mount_unit(self) -> str:
        return self.need("mount-unit", f"systemd-escape --path {self.reads.mount_path}").stdout.strip()

    def writable(self, path: str) -> tuple[bool, str]:
        """Whether the vLLM user may write to ``path``, and why not (the reason the check could not run)."""
        s = self.present("writable", "writable directories")
        found = parse_writable(s.stdout, self.root)
        if path in found:
            return found[path]
        errors = [line for line in s.stderr.splitlines() if line.strip()]
        return False, errors[-1].strip() if errors else f"not checked ({s.why()})"

    def space(self) -> dict[str, int]:
        """``avail`` and ``size`` of the KV cache filesystem, ``cache``: bytes in LMCache's directory."""
        df = self.need("df", f"df {self.reads.mount_path}")
        out = parse_df(df.stdout)
        du = self.sections.get("du")
        out["cache"] = (parse_du(du.stdout) or 0) if du is not None else 0
        return out

    # -- units, the server process ------------------------------------------------------------------------

    def units(self) -> dict[str, dict[str, str]]:
        def read() -> dict[str, dict[str, str]]:
            s = self.need("units", "systemctl show")
            mount_unit = self.sections.get("mount-unit")
            names = [*self.reads.engine_units, *self.reads.units]
            if mount_unit is not None and mount_unit.ok and mount_unit.stdout.strip():
                names.append(mount_unit.stdout.strip())
            return parse_unit_blocks(s.stdout, names)

        return self._parsed("units", read)

    def unit(self, name: str) -> dict[str, str]:
        return self.units().get(name, {})

    def process(self, pid: str) -> tuple[str, list[str], dict[str, str]]:
        """(user, argv, environment) of the main process read with the units."""
        user = self.present(section_name("proc-user", pid), f"owner of process {pid}")
        data = self.present(section_name("proc-data", pid), f"command line of process {pid}")
        argv, environ = parse_process(data.stdout)
        return user.stdout.strip(), argv, environ

    def health(self, url: str) -> tuple[int, str]:
        return parse_http_status(self.need(section_name("health", url), f"GET {url}").stdout)

    def models(self, url: str) -> Section:
        """The body of ``GET url`` (the served models), whatever the outcome."""
        return self.present(section_name("models", url), f"GET {url}")

    def gpu_ops(self) -> Section:
        """The import of LMCache's compiled CUDA ops (``not-applicable`` on a node without an NVIDIA GPU)."""
        return self.present("gpu-ops", f"import of {self.reads.gpu_ops_module}")

    def model_files(self) -> list[str]:
        """The files matching the model's patterns that exist (the ``model-files`` section)."""
        s = self.present("model-files", "the model's files")
        return [line for line in s.stdout.splitlines() if line.strip()]

    def connector(self) -> Section:
        """The interpreter of vLLM's executable importing LMCache's vLLM connector (whatever the outcome)."""
        return self.present("connector", f"import of {self.reads.connector_module}")

    def discovery(self, transport: str, address: str, trsvcid: int) -> Section:
        return self.present(
            section_name("discover", transport, address, trsvcid), f"nvme discover -t {transport} -a {address}"
        )


class TargetState(_Lazy):
    def __init__(self, sections: dict[str, Section]) -> None:
        super().__init__()
        self.sections = sections

    def nvmet(self) -> NvmetState:
        return self._parsed(
            "nvmet", lambda: parse_nvmet(need_section(self.sections.get("nvmet"), "nvmet configfs").stdout)
        )
