"""The state-reading script of the verify suite (pure): what a node or target is asked in its one command, as
a POSIX ``sh`` script printing one *section* per fact (see :mod:`verify_facts` for the output format)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

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
