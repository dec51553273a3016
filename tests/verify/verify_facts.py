"""Live state read from a host over testinfra, and the pure parsers that turn command output into data.

:class:`HostFacts` runs one read-only command per fact and remembers the answer for the rest of the session
(a verify run takes seconds; facts do not change under it). Nothing here changes a host. The parsers are
module-level functions so that they can be tested without a host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.host import Host

_CONTROLLERS = r"""
for c in /sys/class/nvme/*; do
  [ -r "$c/subsysnqn" ] || continue
  printf '%s\t%s\t%s\t%s\t%s\n' "${c##*/}" "$(cat "$c/transport" 2>/dev/null)" "$(cat "$c/subsysnqn")" \
    "$(cat "$c/address" 2>/dev/null)" "$(cat "$c/state" 2>/dev/null)"
done
"""

# The block device mounted at $1, and the NVMe subsystem and namespace it belongs to: walk up the device's
# sysfs path to the directory holding `subsysnqn` (nvme-subsysN with native multipath, nvmeN without).
_MOUNTED_NAMESPACE = r"""
src=$(findmnt -n -o SOURCE -M "$1") || { echo "mounted=no"; exit 0; }
dev=$(readlink -f "$src"); name=${dev##*/}
echo "mounted=yes"; echo "source=$src"; echo "device=$dev"
d=$(readlink -f "/sys/class/block/$name" 2>/dev/null); nsid=
while [ -n "$d" ] && [ "$d" != / ] && [ "$d" != /sys ]; do
  [ -z "$nsid" ] && [ -r "$d/nsid" ] && nsid=$(cat "$d/nsid")
  if [ -r "$d/subsysnqn" ]; then echo "subsysnqn=$(cat "$d/subsysnqn")"; echo "subsystem=${d##*/}"; break; fi
  d=${d%/*}
done
echo "nsid=$nsid"
"""

_WRITABLE_BY = r"""
id -u "$1" >/dev/null 2>&1 || { echo "no user $1"; exit 2; }
[ -d "$2" ] || { echo "$2 is not a directory"; exit 3; }
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then
  runuser -u "$1" -- test -w "$2"
else
  sudo -n -u "$1" test -w "$2"
fi
"""

_SPACE = r"""
set -- $(df -B1 --output=avail,size "$1" | tail -n 1) "$2"
echo "avail=$1"; echo "size=$2"
if [ -d "$3" ]; then echo "cache=$(du -sb "$3" 2>/dev/null | cut -f1)"; else echo "cache=0"; fi
"""

_HTTP_STATUS = r"""
if command -v curl >/dev/null 2>&1; then
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$1"; exit 0
fi
python3 - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception as exc:
    print(0, exc)
EOF
"""

_MODULE_STATE = r"""
if [ -d "/sys/module/$1" ]; then echo loaded; exit 0; fi
f="/lib/modules/$(uname -r)/modules.builtin"
if [ -r "$f" ] && tr '-' '_' < "$f" | grep -q "/$1\.ko"; then echo builtin; else echo absent; fi
"""

_MODULES_LOAD = r"""
for f in "$1"/*.conf; do [ -f "$f" ] && sed "s|^|${f##*/}\t|" "$f"; done; exit 0
"""

# Tab-separated lines describing nvmet's configfs: subsystems, their hosts and namespaces, ports and links.
_NVMET = r"""
root=$1
[ -d "$root" ] || { echo "missing"; exit 0; }
for s in "$root"/subsystems/*/; do
  [ -d "$s" ] || continue; s=${s%/}; n=${s##*/}
  printf 'subsystem\t%s\tattr_allow_any_host\t%s\n' "$n" "$(cat "$s/attr_allow_any_host")"
  for h in "$s"/allowed_hosts/*; do [ -L "$h" ] && printf 'subsystem\t%s\tallowed_host\t%s\n' "$n" "${h##*/}"; done
  for ns in "$s"/namespaces/*/; do
    [ -d "$ns" ] || continue; ns=${ns%/}
    printf 'namespace\t%s\t%s\t%s\t%s\n' "$n" "${ns##*/}" "$(cat "$ns/device_path")" "$(cat "$ns/enable")"
  done
done
for p in "$root"/ports/*/; do
  [ -d "$p" ] || continue; p=${p%/}; i=${p##*/}
  for a in addr_trtype addr_traddr addr_trsvcid addr_adrfam; do
    printf 'port\t%s\t%s\t%s\n' "$i" "$a" "$(cat "$p/$a")"
  done
  for l in "$p"/subsystems/*; do [ -L "$l" ] && printf 'port\t%s\tsubsystem\t%s\n' "$i" "${l##*/}"; done
done
"""


class HostUnreachable(Exception):
    """The host could not be reached over SSH, so none of its checks could run."""


@dataclass(frozen=True)
class Controller:
    """One NVMe controller as /sys/class/nvme shows it."""

    name: str
    transport: str
    subsysnqn: str
    traddr: str
    trsvcid: str
    state: str

    @property
    def fabric(self) -> bool:
        """Reached over a fabric (not a local PCIe drive)."""
        return self.transport not in ("pcie", "")


@dataclass
class NvmetSubsystem:
    allow_any_host: str | None = None
    allowed_hosts: set[str] = field(default_factory=set)
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # nsid -> (device_path, enable)


@dataclass
class NvmetPort:
    attrs: dict[str, str] = field(default_factory=dict)  # addr_trtype, addr_traddr, addr_trsvcid, addr_adrfam
    subsystems: set[str] = field(default_factory=set)


@dataclass
class NvmetState:
    """The kernel NVMe target's configuration (configfs); ``present`` is False without nvmet."""

    present: bool
    subsystems: dict[str, NvmetSubsystem] = field(default_factory=dict)
    ports: dict[str, NvmetPort] = field(default_factory=dict)


def parse_address(text: str) -> dict[str, str]:
    """``traddr=10.0.0.1,trsvcid=4420,src_addr=...`` -> a dict."""
    out = {}
    for part in text.strip().split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_controllers(text: str) -> list[Controller]:
    """Tab-separated ``name transport subsysnqn address state`` lines -> controllers."""
    out = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 5:
            continue
        name, transport, nqn, address, state = (f.strip() for f in fields)
        addr = parse_address(address)
        out.append(Controller(name, transport, nqn, addr.get("traddr", ""), addr.get("trsvcid", ""), state))
    return out


def parse_key_values(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``systemctl show``, the suite's scripts) -> a dict; the first ``=`` splits.

    A key given more than once (``systemctl show`` prints one ``EnvironmentFiles=`` line per file) keeps all
    its values, one per line.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            key, value = key.strip(), value.strip()
            out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


def parse_env_file(text: str) -> dict[str, str]:
    """A systemd EnvironmentFile / shell env file -> variables (comments, ``export`` and quotes handled)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def parse_sysctl_file(text: str) -> dict[str, str]:
    """A sysctl.d file -> ``{key: value}`` (keys with ``/`` normalised to ``.``)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.lstrip("-").partition("=")
        if sep:
            out[key.strip().replace("/", ".")] = value.strip()
    return out


def parse_modules_load(text: str) -> dict[str, set[str]]:
    """``<file>\\t<line>`` pairs from modules-load.d -> ``{module (with _): {files listing it}}``."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        name, sep, entry = line.partition("\t")
        entry = entry.split("#", 1)[0].strip()
        if sep and entry and not entry.startswith(";"):
            out.setdefault(entry.replace("-", "_"), set()).add(name)
    return out


def parse_nul_list(data: bytes) -> list[str]:
    """``/proc/PID/cmdline`` -> argv."""
    return [part.decode(errors="replace") for part in data.split(b"\0") if part]


def parse_environ(data: bytes) -> dict[str, str]:
    """``/proc/PID/environ`` -> variables."""
    out = {}
    for part in parse_nul_list(data):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


def parse_discovery(text: str) -> list[dict[str, Any]]:
    """``nvme discover -o json`` -> the records of NVMe subsystems (discovery entries and referrals left out)."""
    if not text.strip():
        return []
    records = json.loads(text).get("records") or []
    return [
        {key: str(value).strip() for key, value in r.items()}
        for r in records
        if str(r.get("subtype", "")).strip() == "nvme subsystem"
    ]


def parse_nvmet(text: str) -> NvmetState:
    """The suite's tab-separated dump of /sys/kernel/config/nvmet -> :class:`NvmetState`."""
    if text.strip() == "missing":
        return NvmetState(present=False)
    state = NvmetState(present=True)
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "subsystem" and len(fields) == 4:
            sub = state.subsystems.setdefault(fields[1], NvmetSubsystem())
            if fields[2] == "attr_allow_any_host":
                sub.allow_any_host = fields[3].strip()
            elif fields[2] == "allowed_host":
                sub.allowed_hosts.add(fields[3].strip())
        elif fields[0] == "namespace" and len(fields) == 5:
            sub = state.subsystems.setdefault(fields[1], NvmetSubsystem())
            sub.namespaces[fields[2]] = (fields[3].strip(), fields[4].strip())
        elif fields[0] == "port" and len(fields) == 4:
            port = state.ports.setdefault(fields[1], NvmetPort())
            if fields[2] == "subsystem":
                port.subsystems.add(fields[3].strip())
            else:
                port.attrs[fields[2]] = fields[3].strip()
    return state


def argument_value(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in argv (the last one wins, as argparse does)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def serve_model(argv: list[str]) -> str | None:
    """The model of ``vllm serve MODEL ...`` (the argument after ``serve``)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "serve":
            return argv[i + 1]
    return None


def contains_sequence(argv: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` appears in argv as consecutive arguments."""
    n = len(wanted)
    return any(argv[i : i + n] == wanted for i in range(len(argv) - n + 1))


class HostFacts:
    """Read-only facts of one host, each read once per test session."""

    def __init__(self, name: str, host: Host):
        self.name = name
        self.host = host
        self._memo: dict[tuple, Any] = {}

    def _once(self, key: tuple, read: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]

    def run(self, command: str, *args: str) -> CommandResult:
        """Run a command; an SSH failure (exit 255) raises :class:`HostUnreachable`."""
        try:
            return self.host.run(command, *args)
        except RuntimeError as exc:
            raise HostUnreachable(f"{self.name}: SSH failed: {_ssh_error(exc)}") from None

    def script(self, script: str, *args: str) -> CommandResult:
        """Run a POSIX shell script with positional arguments."""
        return self.run("sh -c %s sh" + " %s" * len(args), script, *args)

    def ensure_reachable(self) -> None:
        """Raise :class:`HostUnreachable` unless a trivial command runs (remembered for the session)."""
        error = self._once(("reach",), self._reach)
        if error:
            raise HostUnreachable(error)

    def _reach(self) -> str | None:
        try:
            result = self.run("true")
        except HostUnreachable as exc:
            return str(exc)
        return None if result.rc == 0 else f"{self.name}: `true` exited {result.rc}: {result.stderr.strip()}"

    # -- files, sysctls, modules --------------------------------------------------------------------------

    def file_text(self, path: str) -> str | None:
        """The content of a file, or None when it does not exist or cannot be read."""

        def read() -> str | None:
            result = self.run("cat -- %s", path)
            return result.stdout if result.rc == 0 else None

        return self._once(("file", path), read)

    def sysctl(self, key: str) -> str | None:
        result = self._once(("sysctl", key), lambda: self.run("sysctl -n %s", key))
        return result.stdout.strip() if result.rc == 0 else None

    def module_state(self, name: str) -> str:
        """``loaded`` (in /sys/module), ``builtin`` (in the kernel's modules.builtin), or ``absent``."""
        return self._once(("module", name), lambda: self.script(_MODULE_STATE, name).stdout.strip() or "absent")

    def modules_load(self, directory: str) -> dict[str, set[str]]:
        """``{module: {files in directory listing it}}``."""
        read = lambda: parse_modules_load(self.script(_MODULES_LOAD, directory).stdout)  # noqa: E731
        return self._once(("modules-load", directory), read)

    # -- network ------------------------------------------------------------------------------------------

    def link(self, name: str) -> dict[str, Any] | None:
        """``ip -j -d link show dev NAME``, or None when there is no such interface."""

        def read() -> dict[str, Any] | None:
            result = self.run("ip -j -d link show dev %s", name)
            return json.loads(result.stdout)[0] if result.rc == 0 and result.stdout.strip() else None

        return self._once(("link", name), read)

    def addresses(self, name: str) -> set[str]:
        """IPv4 addresses of an interface as ``address/prefix``."""

        def read() -> set[str]:
            result = self.run("ip -j -4 addr show dev %s", name)
            if result.rc != 0 or not result.stdout.strip():
                return set()
            return {
                f"{a['local']}/{a['prefixlen']}"
                for entry in json.loads(result.stdout)
                for a in entry.get("addr_info", [])
                if a.get("family") == "inet"
            }

        return self._once(("addresses", name), read)

    def route_to(self, address: str) -> dict[str, Any] | None:
        result = self.run("ip -j route get %s", address)
        if result.rc != 0 or not result.stdout.strip():
            return None
        return json.loads(result.stdout)[0]

    def ping(self, address: str, size: int) -> CommandResult:
        """One do-not-fragment echo of ``size`` payload bytes."""
        return self.run("ping -M do -s %s -c 1 -W 3 %s", str(size), address)

    def rdma_links(self) -> list[dict[str, Any]]:
        """``rdma -j link show``: RDMA devices and the netdev each one serves."""

        def read() -> list[dict[str, Any]]:
            result = self.run("rdma -j link show")
            return json.loads(result.stdout) if result.rc == 0 and result.stdout.strip() else []

        return self._once(("rdma",), read)

    # -- NVMe ---------------------------------------------------------------------------------------------

    def controllers(self) -> list[Controller]:
        return self._once(("controllers",), lambda: parse_controllers(self.script(_CONTROLLERS).stdout))

    def mounted_namespace(self, path: str) -> dict[str, str]:
        """What is mounted at ``path``: ``mounted``, ``source``, ``device``, ``subsysnqn``, ``subsystem``, ``nsid``."""
        return self._once(("mounted-ns", path), lambda: parse_key_values(self.script(_MOUNTED_NAMESPACE, path).stdout))

    def discover(self, transport: str, address: str, trsvcid: int) -> list[dict[str, Any]]:
        """NVMe subsystems a discovery controller at the portal reports to this host."""
        result = self.run("timeout 30 nvme discover -t %s -a %s -s %s -o json", transport, address, str(trsvcid))
        if result.rc != 0:
            raise AssertionError(
                f"nvme discover -t {transport} -a {address} -s {trsvcid} exited {result.rc}: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
        return parse_discovery(result.stdout)

    def nvmet(self, root: str) -> NvmetState:
        return self._once(("nvmet", root), lambda: parse_nvmet(self.script(_NVMET, root).stdout))

    # -- mounts, users, units, processes ------------------------------------------------------------------

    def mount(self, path: str) -> dict[str, str] | None:
        """``findmnt -J -M PATH``: target, source, fstype, options; None when nothing is mounted there."""

        def read() -> dict[str, str] | None:
            result = self.run("findmnt -J -M %s", path)
            if result.rc != 0 or not result.stdout.strip():
                return None
            return json.loads(result.stdout)["filesystems"][0]

        return self._once(("mount", path), read)

    def mount_of(self, path: str) -> str | None:
        """The mount point holding ``path``."""
        result = self.run("findmnt -n -o TARGET -T %s", path)
        return result.stdout.strip() if result.rc == 0 else None

    def writable_by(self, user: str, path: str) -> tuple[bool, str]:
        result = self.script(_WRITABLE_BY, user, path)
        return result.rc == 0, (result.stdout + result.stderr).strip()

    def space(self, path: str, cache_dir: str) -> dict[str, int]:
        """Bytes available and total on the filesystem of ``path``, and bytes already in ``cache_dir``."""
        values = parse_key_values(self.script(_SPACE, path, cache_dir).stdout)
        return {key: int(value) for key, value in values.items() if value.isdigit()}

    def unit(self, name: str) -> dict[str, str]:
        """``systemctl show`` properties of a unit."""
        props = "Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,ExecStart,EnvironmentFiles,User,Where,What"

        def read() -> dict[str, str]:
            return parse_key_values(self.run("systemctl show --property=%s -- %s", props, name).stdout)

        return self._once(("unit", name), read)

    def is_enabled(self, name: str) -> str:
        """``systemctl is-enabled`` (``enabled``, ``disabled``, ``static``, ``generated``, ``not-found`` ...)."""
        result = self.run("systemctl is-enabled -- %s", name)
        return (result.stdout.strip() or result.stderr.strip() or "unknown").splitlines()[0]

    def mount_unit_name(self, path: str) -> str:
        return self.run("systemd-escape --path --suffix=mount -- %s", path).stdout.strip()

    def proc_cmdline(self, pid: str) -> list[str]:
        return self._once(("cmdline", pid), lambda: parse_nul_list(self.run("cat /proc/%s/cmdline", pid).stdout_bytes))

    def proc_environ(self, pid: str) -> dict[str, str]:
        return self._once(("environ", pid), lambda: parse_environ(self.run("cat /proc/%s/environ", pid).stdout_bytes))

    def proc_user(self, pid: str) -> str:
        """The user a process runs as (the owner of /proc/PID)."""
        return self.run("stat -c %%U /proc/%s", pid).stdout.strip()

    def http_status(self, url: str) -> tuple[int, str]:
        """The HTTP status of a GET from the host itself (0 when nothing answered), and the raw answer."""
        out = self.script(_HTTP_STATUS, url).stdout.strip()
        first = out.split()[0] if out else "0"
        return (int(first) if first.isdigit() else 0), out


def _ssh_error(exc: RuntimeError) -> str:
    result = exc.args[0] if exc.args else None
    stderr = getattr(result, "stderr", "") or str(exc)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "exit 255"
