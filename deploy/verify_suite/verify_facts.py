"""Live state read from a host over testinfra, and the pure parts: the state-reading script and its parsers.

Each host answers one command: a POSIX ``sh`` script (built here from the plan's reads, see
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

import json
import re
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from testinfra.host import Host

from deploy.dcb import parse_dcb as dcb_lines

# -- the state-reading script --------------------------------------------------------------------------------

# Shell functions of every script. `sect NAME CMD...` runs CMD (a tool or one of the functions below) in a
# subshell: its stdout goes straight to the output, its stderr is captured and printed after the end marker.
_PRELUDE = r"""
B=$1
sect() {
  _sn=$1; shift
  printf '\n%s begin %s\n' "$B" "$_sn"
  { _se=$("$@" 2>&1 1>&3 3>&-); _sr=$?; } 3>&1
  printf '\n%s end %s\n%s' "$B" "$_sr" "$_se"
}
emit() {  # a section from a value captured in this shell: NAME, with $_o and $_r
  printf '\n%s begin %s\n%s' "$B" "$1" "$_o"
  printf '\n%s end %s\n' "$B" "$_r"
}
readfile() {
  [ -f "$1" ] || { echo "$1: no such file" >&2; return 1; }
  while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done < "$1"
}
sysctls() {  # PATH ... under /proc/sys: one grep (a sysctl file answers only a read from its start)
  cd "$R/proc/sys" || return 1
  grep -HZ '' "$@"
}
modules() {  # MODULE ...: the loaded ones, then modules.builtin when one is not in /sys/module
  _ma=
  for _m; do
    if [ -d "$R/sys/module/$_m" ]; then printf 'loaded\t%s\n' "$_m"; else _ma=1; fi
  done
  [ -n "$_ma" ] || return 0
  echo builtin-list
  cat "$R/lib/modules/$(uname -r)/modules.builtin"
}
connector() {  # EXECUTABLE MODULE: the interpreter of EXECUTABLE's #! line imports MODULE; the versions
  IFS= read -r _l < "$1" || return 1
  case $_l in '#!'*) ;; *) echo "$1 has no #! line" >&2; return 1 ;; esac
  set -- "$1" "$2" ${_l#??}
  _p=$3
  [ "${3##*/}" = env ] && _p=$(command -v "$4")
  "$_p" -c "import importlib.metadata as m, $2; print('interpreter', '$_p')
for d in ('vllm', 'lmcache'): print(d, m.version(d))"
}
modules_load() {  # DIR: <file>\t<line> for each line of DIR/*.conf
  for _f in "$1"/*.conf; do
    [ -f "$_f" ] || continue
    while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\t%s\n' "${_f##*/}" "$_l"; done < "$_f"
  done
  return 0
}
controllers() {  # name, transport, subsysnqn, address, state of each NVMe controller
  for _c in "$R"/sys/class/nvme/*; do
    [ -r "$_c/subsysnqn" ] || continue
    _t=; _q=; _a=; _s=
    [ -r "$_c/transport" ] && read -r _t < "$_c/transport"
    read -r _q < "$_c/subsysnqn"
    [ -r "$_c/address" ] && read -r _a < "$_c/address"
    [ -r "$_c/state" ] && read -r _s < "$_c/state"
    printf '%s\t%s\t%s\t%s\t%s\n' "${_c##*/}" "$_t" "$_q" "$_a" "$_s"
  done
  return 0
}
nvme_paths() {  # ATTRIBUTE ...: each subsystem's iopolicy, then each fabric controller's attributes that exist
  for _s in "$R"/sys/class/nvme-subsystem/*; do
    [ -r "$_s/subsysnqn" ] || continue
    read -r _q < "$_s/subsysnqn"
    if [ -r "$_s/iopolicy" ]; then read -r _p < "$_s/iopolicy"; printf 'iopolicy\t%s\t%s\n' "$_q" "$_p"; fi
  done
  for _c in "$R"/sys/class/nvme/*; do
    [ -r "$_c/subsysnqn" ] || continue
    for _a; do
      [ -r "$_c/$_a" ] || continue
      read -r _v < "$_c/$_a" && printf 'attr\t%s\t%s\t%s\n' "${_c##*/}" "$_a" "$_v"
    done
  done
  return 0
}
dcb_state() {  # DEV PRIORITY: DSCP app entries and PFC of the NIC (iproute2 dcb, JSON), the priority's ECN (mlx5)
  command -v dcb >/dev/null 2>&1 || { echo "dcb: not found (iproute2 6.0+)" >&2; return 127; }
  printf 'app '; dcb -j app show dev "$1" dscp-prio || return 1
  echo; printf 'pfc '; dcb -j pfc show dev "$1" prio-pfc || return 1
  echo
  for _k in roce_np roce_rp; do
    _f="$R/sys/class/net/$1/ecn/$_k/enable/$2"
    if [ -r "$_f" ]; then read -r _v < "$_f"; printf 'ecn %s %s\n' "$_k" "$_v"; fi
  done
  return 0
}
mountns() {  # MOUNTPOINT: findmnt's row, then the NVMe subsystem and namespace of the mounted block device
  command -v findmnt >/dev/null 2>&1 || { echo "findmnt: not found" >&2; return 127; }
  _f=$(findmnt -n -r -o MAJ:MIN,TARGET,SOURCE,FSTYPE,OPTIONS -M "$1") || { echo mounted=no; return 0; }
  echo mounted=yes
  while IFS= read -r _l; do printf 'findmnt=%s\n' "$_l"; done <<EOF
$_f
EOF
  _d=$(cd -P "$R/sys/dev/block/${_f%% *}" 2>/dev/null && pwd -P) || _d=
  [ -n "$_d" ] && printf 'block=%s\n' "${_d##*/}"
  _ns=
  while [ -n "$_d" ] && [ "$_d" != / ] && [ "$_d" != "$R/sys" ]; do
    [ -z "$_ns" ] && [ -r "$_d/nsid" ] && read -r _ns < "$_d/nsid"
    if [ -r "$_d/subsysnqn" ]; then
      read -r _q < "$_d/subsysnqn"
      printf 'subsysnqn=%s\nsubsystem=%s\n' "$_q" "${_d##*/}"
      break
    fi
    _d=${_d%/*}
  done
  printf 'nsid=%s\n' "$_ns"
}
routes() {  # ADDRESS ...: `ip route get` of each, in one ip process
  printf 'route get %s\n' "$@" | ip -force -j -batch -
}
writable() {  # USER DIR ...: whether USER may write to each directory
  _u=$1; shift
  for _d; do [ -d "$_d" ] || printf 'notdir\t%s\n' "$_d"; done
  _c='for d; do if [ -w "$d" ]; then printf "yes\t%s\n" "$d"; else printf "no\t%s\n" "$d"; fi; done'
  if [ "$_euid" = 0 ] && command -v runuser >/dev/null 2>&1; then
    runuser -u "$_u" -- sh -c "$_c" sh "$@"
  else
    sudo -n -u "$_u" sh -c "$_c" sh "$@"
  fi
}
models() {  # URL: the body of a GET (the model list of an OpenAI-compatible server)
  if command -v curl >/dev/null 2>&1; then
    curl -sf --max-time 5 "$1"; return
  fi
  python3 - "$1" <<'EOF'
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
EOF
}
gpu_ops() {  # EXECUTABLE MODULE: on a node with an NVIDIA GPU, EXECUTABLE's interpreter imports MODULE
  if [ ! -e "$R/dev/nvidia0" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo not-applicable; return 0
  fi
  IFS= read -r _l < "$1" || return 1
  case $_l in '#!'*) ;; *) echo "$1 has no #! line" >&2; return 1 ;; esac
  set -- "$1" "$2" ${_l#??}
  _p=$3
  [ "${3##*/}" = env ] && _p=$(command -v "$4")
  "$_p" -c "import $2; print('imported', $2.__file__)"
}
health() {  # URL: the HTTP status of a GET (0 when nothing answered)
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$1"; return 0
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
}
nvmet() {  # ROOT: hosts and port links from the tree, every attribute value from one grep
  [ -d "$1" ] || { echo missing; return 0; }
  cd "$1" || return 1
  for _s in subsystems/*/; do
    [ -d "$_s" ] || continue
    _s=${_s%/}
    for _h in "$_s"/allowed_hosts/*; do
      [ -L "$_h" ] && printf 'subsystem\t%s\tallowed_host\t%s\n' "${_s##*/}" "${_h##*/}"
    done
  done
  for _p in ports/*/; do
    [ -d "$_p" ] || continue
    _p=${_p%/}
    for _l in "$_p"/subsystems/*; do [ -L "$_l" ] && printf 'port\t%s\tsubsystem\t%s\n' "${_p##*/}" "${_l##*/}"; done
  done
  echo attributes
  set --
  for _f in subsystems/*/attr_allow_any_host subsystems/*/namespaces/*/device_path subsystems/*/namespaces/*/enable \
      ports/*/addr_trtype ports/*/addr_traddr ports/*/addr_trsvcid ports/*/addr_adrfam; do
    [ -f "$_f" ] && set -- "$@" "$_f"
  done
  [ "$#" -eq 0 ] && return 0
  grep -HZ '' "$@"
  [ "$?" -le 1 ]
}
existing() {  # FILE ...: those that exist (a pattern that matched nothing stays itself and is not a file)
  for _f; do [ -f "$_f" ] && printf '%s\n' "${_f#"$R"}"; done
  return 0
}
_euid=
while IFS= read -r _l; do case $_l in Uid:*) set -- $_l; _euid=$3; break ;; esac; done < /proc/self/status
"""

UNIT_PROPERTIES = "Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,ExecStart,EnvironmentFiles,User,Where,What"


@dataclass(frozen=True)
class NodeReads:
    """What to read on a node, all of it from the plan (see ``verify_expect.node_reads``)."""

    portals: tuple[str, ...]  # portal addresses: `ip route get` and a do-not-fragment ping each
    ping_size: int
    rdma: bool  # read `rdma link` (the transport is RDMA)
    sysctls: tuple[str, ...]
    files: tuple[str, ...]  # small text files read whole (sysctl.d, host NQN and ID, LMCache config)
    modules: tuple[str, ...]
    modules_load_dir: str
    mount_path: str
    local_disk_dir: str
    user: str  # the vLLM user (writable checks)
    engine_units: tuple[str, ...]  # the vLLM engines' units: their main processes are read
    units: tuple[str, ...]  # further units (the mount unit of mount_path is added on the host)
    health_urls: tuple[str, ...]  # each engine's /health, asked on the node's loopback
    discoveries: tuple[tuple[str, str, int], ...]  # (transport, address, trsvcid) of each enclosure portal
    executable: str = ""  # vLLM's executable: its interpreter must import LMCache's vLLM connector
    connector_module: str = ""
    modes: tuple[str, ...] = ()  # files whose mode and owner are read (`stat -c '%a %U %G'`)
    model_files: tuple[str, ...] = ()  # shell patterns (`*` only) of the model's files: those present are listed
    nvme_attributes: tuple[str, ...] = ()  # controller attributes read under /sys/class/nvme/nvmeX
    dcb: tuple[str, int] | None = None  # (NIC, lossless priority): DCB read with `dcb -j` (a hardware RDMA NIC)
    models_urls: tuple[str, ...] = ()  # each engine's /v1/models
    engine_dirs: tuple[str, ...] = ()  # each engine's disk-tier directory (writable checks)
    gpu_ops_module: str = ""  # LMCache's compiled CUDA ops: imported on a node with an NVIDIA GPU


@dataclass(frozen=True)
class TargetReads:
    nvmet_root: str


def sysctl_path(key: str) -> str:
    """``net.core.rmem_max`` -> ``net/core/rmem_max`` under /proc/sys (a ``/`` in a key stands for ``.``)."""
    return key.translate(str.maketrans("./", "/."))


def sysctl_key(path: str) -> str:
    """The inverse of :func:`sysctl_path`."""
    return path.translate(str.maketrans("/.", "./"))


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _rooted(path: str) -> str:
    return '"$R"' + _q(path)


def _rooted_pattern(pattern: str) -> str:
    """A shell pattern under the root: each ``*`` left unquoted (it matches), everything else quoted."""
    return '"$R"' + "*".join(_q(part) if part else "" for part in pattern.split("*"))


def _script(root: str, body: list[str]) -> str:
    return f"R={_q(root)}\n{_PRELUDE}" + "\n".join(body) + "\nprintf '\\n%s done\\n' \"$B\"\n"


def section_name(kind: str, *args: object) -> str:
    return " ".join([kind, *(str(a) for a in args)])


def node_script(reads: NodeReads, root: str = "") -> str:
    """The script that reads everything the suite checks on a node (pure). ``root`` prefixes the files,
    sysfs and procfs paths the script reads itself (empty on a live host)."""
    r = reads
    body = [
        "sect links ip -d -j addr show",
        "sect routes routes " + " ".join(_q(a) for a in r.portals) if r.portals else "",
        "sect rdma rdma -j link show" if r.rdma else "",
        "sect sysctl sysctls " + " ".join(_q(sysctl_path(k)) for k in r.sysctls) if r.sysctls else "",
        *(f"sect {_q(section_name('file', f))} readfile {_rooted(f)}" for f in r.files),
        *(f"sect {_q(section_name('mode', f))} stat -c '%a %U %G' {_rooted(f)}" for f in r.modes),
        "sect modules modules " + " ".join(_q(m) for m in r.modules),
        f"sect modules-load modules_load {_rooted(r.modules_load_dir)}",
        "sect controllers controllers",
        "sect nvme-paths nvme_paths " + " ".join(_q(a) for a in r.nvme_attributes) if r.nvme_attributes else "",
        f"sect dcb dcb_state {_q(r.dcb[0])} {int(r.dcb[1])}" if r.dcb else "",
        f"sect mount mountns {_q(r.mount_path)}",
        f"sect mount-of findmnt -n -r -o TARGET -T {_q(r.local_disk_dir)}",
        # the units: the engines first, each block of `systemctl show` with its MainPID
        f"_o=$(systemd-escape --path --suffix=mount -- {_q(r.mount_path)} 2>&1); _r=$?; emit mount-unit",
        '_mu=; [ "$_r" = 0 ] && _mu=$_o',
        f"_o=$(systemctl show -p {UNIT_PROPERTIES} -- "
        + " ".join(_q(u) for u in (*r.engine_units, *r.units))
        + ' ${_mu:+"$_mu"} 2>&1); _r=$?; emit units',
        "_pids=",
        'while IFS= read -r _l; do case $_l in MainPID=*) _pids="$_pids ${_l#MainPID=}" ;; esac; done <<EOF',
        "$_o",
        "EOF",
        "for _pid in $_pids; do",
        '  [ "$_pid" = 0 ] && continue',
        '  sect "proc-user $_pid" stat -c %U "$R/proc/$_pid"',
        '  sect "proc-data $_pid" grep -Haz \'\' "$R/proc/$_pid/cmdline" "$R/proc/$_pid/environ"',
        "done",
        f"sect writable writable {_q(r.user)} {_rooted(r.mount_path)} {_rooted(r.local_disk_dir)} "
        + " ".join(_rooted(d) for d in r.engine_dirs),
        f"sect df df -B1 --output=avail,size {_q(r.mount_path)}",
        f"[ -d {_rooted(r.local_disk_dir)} ] && sect du du -sb {_rooted(r.local_disk_dir)}",
        *(f"sect {_q(section_name('health', u))} health {_q(u)}" for u in r.health_urls),
        *(f"sect {_q(section_name('models', u))} models {_q(u)}" for u in r.models_urls),
        *(f"sect {_q(section_name('ping', a))} ping -M do -s {int(r.ping_size)} -c 1 -W 3 {_q(a)}" for a in r.portals),
        f"sect connector connector {_rooted(r.executable)} {_q(r.connector_module)}" if r.executable else "",
        "sect model-files existing " + " ".join(_rooted_pattern(p) for p in r.model_files) if r.model_files else "",
        f"sect gpu-ops gpu_ops {_rooted(r.executable)} {_q(r.gpu_ops_module)}"
        if r.executable and r.gpu_ops_module
        else "",
        *(
            f"sect {_q(section_name('discover', t, a, s))} timeout 30 nvme discover -t {_q(t)} -a {_q(a)} "
            f"-s {int(s)} -o json"
            for t, a, s in r.discoveries
        ),
    ]
    return _script(root, [line for line in body if line])


def target_script(reads: TargetReads, root: str = "") -> str:
    """The script that reads a Linux nvmet target's configuration (pure)."""
    return _script(root, [f"sect nvmet nvmet {_rooted(reads.nvmet_root)}"])


def controllers_script(root: str = "") -> str:
    """The script that reads only a node's NVMe controllers (the pod-wide check of the other nodes)."""
    return _script(root, ["sect controllers controllers"])


# -- sections ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One command's answer in a state read."""

    name: str
    stdout: str
    rc: int
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """A one-line account of a failed command: its exit status and the last line of its stderr (else stdout)."""
        lines = [line for line in (self.stderr.strip() or self.stdout.strip()).splitlines() if line.strip()]
        return f"exit {self.rc}" + (f": {lines[-1].strip()}" if lines else "")


def split_sections(text: str, boundary: str) -> tuple[dict[str, Section], bool]:
    """A state read's output -> ({name: section}, whether the script reached its end) (pure)."""
    sections: dict[str, Section] = {}
    done = False
    name: str | None = None
    stdout = ""
    for part in text.split("\n" + boundary + " ")[1:]:
        head, _, body = part.partition("\n")
        kind, _, arg = head.partition(" ")
        if kind == "begin":
            name, stdout = arg, body
        elif kind == "end" and name is not None:
            rc = int(arg) if arg.strip().lstrip("-").isdigit() else -1
            sections[name] = Section(name, stdout, rc, body)
            name = None
        elif kind == "done":
            done = True
    return sections, done


def render_sections(sections: Iterable[Section], boundary: str, done: bool = True) -> str:
    """The output a script gives for these sections (the inverse of :func:`split_sections`)."""
    out = [f"\n{boundary} begin {s.name}\n{s.stdout}\n{boundary} end {s.rc}\n{s.stderr}" for s in sections]
    return "".join(out) + (f"\n{boundary} done\n" if done else "")


def new_boundary() -> str:
    return "@kvpod-" + secrets.token_hex(8)


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


@dataclass(frozen=True)
class NvmePaths:
    """Multipath policies by subsystem NQN and controller attributes by controller name, as sysfs shows them
    (an attribute the kernel does not have is absent)."""

    iopolicy: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)


def parse_nvme_paths(text: str) -> NvmePaths:
    """``iopolicy NQN POLICY`` and ``attr CTRL NAME VALUE`` lines (tab-separated) -> :class:`NvmePaths`."""
    out = NvmePaths()
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("\t")]
        if fields[0] == "iopolicy" and len(fields) == 3:
            out.iopolicy[fields[1]] = fields[2]
        elif fields[0] == "attr" and len(fields) == 4:
            out.attributes.setdefault(fields[1], {})[fields[2]] = fields[3]
    return out


@dataclass(frozen=True)
class DcbState:
    """A NIC's DCB as ``dcb -j`` shows it: DSCP -> priority entries, PFC per priority, ECN per direction."""

    dscp_prio: dict[int, int] = field(default_factory=dict)
    pfc: dict[int, bool] = field(default_factory=dict)
    ecn: dict[str, str] = field(default_factory=dict)  # roce_np / roce_rp -> "1" / "0" (mlx5 sysfs)


def parse_dcb(text: str) -> DcbState:
    """The ``dcb`` section (``app {json}``, ``pfc {json}``, ``ecn KIND VALUE`` lines, as
    :data:`deploy.dcb.READ_SCRIPT` prints them) -> :class:`DcbState`; empty when ``dcb`` printed no JSON."""
    state = dcb_lines(text.splitlines())
    if state is None:
        return DcbState()
    return DcbState(dscp_prio=state["dscp_prio"], pfc=state["pfc"], ecn=state["ecn"])


def parse_words(text: str) -> dict[str, str]:
    """``name value`` lines -> a dict (the connector check's interpreter and versions)."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name and value:
            out[name] = value.strip()
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
            value = re.sub(r'\\(["\\\\`$])', r"\1", value[1:-1])
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
    """The suite's dump of /sys/kernel/config/nvmet -> :class:`NvmetState`.

    Tab-separated lines name the links (``subsystem NQN allowed_host HOSTNQN``, ``port ID subsystem NQN``);
    after an ``attributes`` line come ``grep -HZ`` lines, ``<path under the root>\\0<value>``, of the
    attribute files (``subsystems/NQN/attr_allow_any_host``, ``subsystems/NQN/namespaces/NSID/device_path``
    and ``enable``, ``ports/ID/addr_*``).
    """
    if text.strip() == "missing":
        return NvmetState(present=False)
    state = NvmetState(present=True)
    links, _, attributes = text.partition("attributes\n")
    namespaces: dict[tuple[str, str], dict[str, str]] = {}
    for line in links.splitlines():
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
    for line in attributes.splitlines():
        path, sep, value = line.partition("\0")
        parts = path.split("/")
        if not sep:
            continue
        if parts[0] == "subsystems" and len(parts) == 3 and parts[2] == "attr_allow_any_host":
            state.subsystems.setdefault(parts[1], NvmetSubsystem()).allow_any_host = value.strip()
        elif parts[0] == "subsystems" and len(parts) == 5 and parts[2] == "namespaces":
            state.subsystems.setdefault(parts[1], NvmetSubsystem())
            namespaces.setdefault((parts[1], parts[3]), {})[parts[4]] = value.strip()
        elif parts[0] == "ports" and len(parts) == 3:
            state.ports.setdefault(parts[1], NvmetPort()).attrs[parts[2]] = value.strip()
    for (nqn, nsid), attrs in namespaces.items():
        state.subsystems[nqn].namespaces[nsid] = (attrs.get("device_path", ""), attrs.get("enable", ""))
    return state


def parse_grep_values(text: str) -> dict[str, str]:
    """``grep -HZ '' FILE...`` of one-line files -> ``{file: value}``."""
    out = {}
    for line in text.splitlines():
        path, sep, value = line.partition("\0")
        if sep:
            out[path] = value.strip()
    return out


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


def parse_json_documents(text: str) -> list[Any]:
    """Concatenated JSON documents (``ip -j -batch`` prints one per command) -> a list of them."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def parse_links(text: str) -> dict[str, dict[str, Any]]:
    """``ip -d -j addr show`` -> ``{ifname: entry}`` (link details and ``addr_info``)."""
    if not text.strip():
        return {}
    return {entry["ifname"]: entry for entry in json.loads(text) if "ifname" in entry}


def ipv4_addresses(link: dict[str, Any] | None) -> set[str]:
    """IPv4 addresses of an ``ip -j addr`` entry as ``address/prefix``."""
    return {
        f"{a['local']}/{a['prefixlen']}"
        for a in (link or {}).get("addr_info", [])
        if a.get("family") == "inet" and "local" in a
    }


def parse_routes(text: str) -> dict[str, dict[str, Any]]:
    """``ip -j -batch`` of ``route get ADDR`` lines -> ``{ADDR: route}`` (by each answer's ``dst``)."""
    out: dict[str, dict[str, Any]] = {}
    for doc in parse_json_documents(text):
        for route in doc if isinstance(doc, list) else [doc]:
            if isinstance(route, dict) and route.get("dst"):
                out.setdefault(route["dst"], route)
    return out


def parse_tab_pairs(text: str) -> dict[str, str]:
    """``KEY\\tVALUE`` lines -> a dict (values stripped)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key] = value.strip()
    return out


def parse_module_states(text: str, wanted: Iterable[str]) -> dict[str, str]:
    """The ``modules`` section -> ``{module: loaded | builtin | absent}`` for each wanted module.

    ``loaded``: in /sys/module; ``builtin``: listed in the running kernel's modules.builtin (names compared
    with ``-`` read as ``_``); ``absent``: neither.
    """
    head, _, builtin_list = text.partition("builtin-list\n")
    loaded = {line.partition("\t")[2].strip() for line in head.splitlines() if line.startswith("loaded\t")}
    builtin = builtin_list.replace("-", "_")
    out = {}
    for name in wanted:
        if name in loaded:
            out[name] = "loaded"
        elif f"/{name}.ko" in builtin:
            out[name] = "builtin"
        else:
            out[name] = "absent"
    return out


def unescape_raw(text: str) -> str:
    """A field of util-linux ``-r`` (raw) output: ``\\x20`` and other hex escapes decoded."""
    if "\\x" not in text:
        return text
    data = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), text.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "replace")


def parse_findmnt_row(line: str) -> dict[str, str] | None:
    """A ``findmnt -n -r -o MAJ:MIN,TARGET,SOURCE,FSTYPE,OPTIONS`` row -> its fields (None for no row)."""
    fields = line.strip().split(" ")
    if len(fields) != 5:
        return None
    majmin, target, source, fstype, options = (unescape_raw(f) for f in fields)
    return {"maj:min": majmin, "target": target, "source": source, "fstype": fstype, "options": options}


def parse_mounted(text: str) -> tuple[dict[str, str] | None, dict[str, str]]:
    """The ``mount`` section -> (findmnt's row or None, the mounted namespace).

    The namespace dict has ``mounted`` (yes/no), ``source``, ``device`` (``/dev/<block>``), and, for an NVMe
    namespace, ``subsysnqn``, ``subsystem`` (nvme-subsysN, or the controller without native multipath) and
    ``nsid``.
    """
    values = parse_key_values(text)
    row = parse_findmnt_row(values.get("findmnt", "").split("\n")[0])
    info = {"mounted": values.get("mounted", "no")}
    if row is not None:
        info["source"] = row["source"]
        info["device"] = f"/dev/{values['block']}" if values.get("block") else row["source"]
    for key in ("subsysnqn", "subsystem", "nsid"):
        if key in values:
            info[key] = values[key]
    return row, info


def parse_unit_blocks(text: str, names: list[str]) -> dict[str, dict[str, str]]:
    """``systemctl show`` of several units (one block each, in order, blank lines between) -> ``{name: props}``.

    Blocks are matched to the names asked for by position; when the count differs, by ``Id``.
    """
    blocks = [parse_key_values(b) for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    if len(blocks) == len(names):
        return dict(zip(names, blocks, strict=True))
    by_id = {b.get("Id", ""): b for b in blocks}
    return {name: by_id[name] for name in names if name in by_id}


def enablement(props: dict[str, str]) -> str:
    """What ``systemctl is-enabled`` says of a unit, from its ``systemctl show`` properties."""
    if props.get("UnitFileState"):
        return props["UnitFileState"]
    if props.get("LoadState") in ("not-found", "masked", "bad-setting", "error"):
        return props["LoadState"]
    return "no unit file" if props else "unknown"


def parse_grep_nul(text: str) -> dict[str, list[str]]:
    """``grep -Haz '' FILE...`` -> ``{file name: [NUL-separated records]}`` (empty records left out).

    The file name is the last path component (``/proc/42/cmdline`` -> ``cmdline``).
    """
    out: dict[str, list[str]] = {}
    for record in text.split("\0"):
        path, sep, value = record.partition(":")
        if sep and value:
            out.setdefault(path.rsplit("/", 1)[-1], []).append(value)
    return out


def parse_process(text: str) -> tuple[list[str], dict[str, str]]:
    """``grep -Haz '' /proc/PID/cmdline /proc/PID/environ`` -> (argv, environment)."""
    records = parse_grep_nul(text)
    environ = {}
    for entry in records.get("environ", []):
        key, sep, value = entry.partition("=")
        if sep:
            environ[key] = value
    return records.get("cmdline", []), environ


def parse_writable(text: str, root: str = "") -> dict[str, tuple[bool, str]]:
    """The ``writable`` section -> ``{directory: (writable, why not)}`` (a directory with no verdict: unknown)."""
    out: dict[str, tuple[bool, str]] = {}
    for line in text.splitlines():
        verdict, _, path = line.partition("\t")
        path = path.removeprefix(root) if root else path
        if verdict == "notdir":
            out[path] = (False, f"{path} is not a directory")
        elif verdict in ("yes", "no") and path not in out:
            out[path] = (verdict == "yes", "" if verdict == "yes" else "no")
    return out


def parse_df(text: str) -> dict[str, int]:
    """``df -B1 --output=avail,size PATH`` -> ``{"avail": bytes, "size": bytes}``."""
    lines = [line.split() for line in text.strip().splitlines()]
    if len(lines) < 2 or len(lines[-1]) != 2 or not all(v.isdigit() for v in lines[-1]):
        return {}
    return {"avail": int(lines[-1][0]), "size": int(lines[-1][1])}


def parse_du(text: str) -> int | None:
    """``du -sb DIR`` -> bytes (None without a total)."""
    first = text.strip().split()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


def parse_models(section: Section) -> tuple[list[str] | None, str]:
    """A ``/v1/models`` answer -> (the ids of ``data``, ""), or (None, why it is not one)."""
    if not section.ok:
        return None, section.why()
    try:
        data = json.loads(section.stdout)
        return [str(m["id"]) for m in data["data"]], ""
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"not a model list: {exc!r}"[:200]


def parse_http_status(text: str) -> tuple[int, str]:
    """The health section (curl's ``%{http_code}``, or the python fallback) -> (status, raw answer)."""
    out = text.strip()
    first = out.split()[0] if out else "0"
    return (int(first) if first.isdigit() else 0), out


@dataclass(frozen=True)
class Probe:
    """The answer of a command run for its effect (a ping): exit status and output."""

    rc: int
    stdout: str
    stderr: str


class ReadFailed(AssertionError):
    """A command of the state read failed, so the checks reading its answer cannot tell."""


def fresh(exc: Exception) -> Exception:
    """A new exception like a remembered one: raising the same object again would pile up its traceback."""
    return type(exc)(*exc.args)


def _need(section: Section | None, what: str) -> Section:
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
        return _need(self.sections.get(name), what)

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
        return self._parsed("nvmet", lambda: parse_nvmet(_need(self.sections.get("nvmet"), "nvmet configfs").stdout))


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
                self._light = parse_controllers(_need(sections.get("controllers"), "/sys/class/nvme").stdout)
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
