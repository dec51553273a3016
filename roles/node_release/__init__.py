"""Role ``node release``: a node lets go of NVMe-oF namespaces (the old holder's side of a handover), or leaves the
pod (``purge``).

How to invoke: as :mod:`roles.node`, with host data ``kvpod_release`` (:class:`deploy.release.ReleaseRequest`)
instead of ``kvpod_node`` (a pruned node has no plan any more)::

    run_phase("release", [(name, ssh_data | {"kvpod_release": request})], node_release, dry=dry)

Released subsystems: those connected now (:class:`deploy.facts.nvme.NvmeSubsystems`) other than
``keep_subsystem``, within ``subsystems`` when given; never a subsystem with a PCIe controller (a local drive).
Every step compares live facts and is a noop when done, so a rerun after an interruption anywhere converges:

1. Refused before anything is touched: a released namespace (or a partition of it) held by another block
   device (device-mapper, md), or whose ext4 is mounted only outside this mount namespace (a container).
2. Unmounted: when a released namespace is mounted anywhere, ``systemctl stop <vllm_unit>`` and each installed
   engine unit (``engine_units``) first (they have ``RequiresMountsFor=``; a stop also cancels a pending
   ``Restart=``; the node deploy that follows a handover starts them again), then ``systemctl stop <mount unit>``
   for ``mount_path`` and ``umount <path>`` for any other mount point, deepest first. A failing unmount (busy)
   fails the host at this step: nothing after it runs.
3. Disconnected: ``nvme disconnect --nqn`` per released subsystem, refused while one of its namespaces is still
   mounted; the command itself checks again on the host right before it disconnects (mount table by
   major:minor, ``/sys/fs/ext4/<dev>`` for mounts in any mount namespace, ``holders/``).
4. The boot-time connection forgotten unless it is ``keep_subsystem``'s (the NQN in the connect script):
   ``kvpod-nvme-connect.service`` stopped and disabled, its unit file and ``/usr/local/sbin/kvpod-nvme-connect``
   removed, ``daemon-reload`` when a unit file was removed. The node deploy writes them again for the new drive.
   The unit is not stopped while a filesystem that is not released is mounted at ``mount_path``: the mount
   unit ``Requires=`` it, so the stop would unmount that filesystem too.
5. ``purge`` only: vLLM (and each installed engine unit) stopped, disabled and its unit file removed; the mount
   unit disabled and its file removed (whatever still is mounted there is not a released namespace and stays);
   ``/etc/kvpod/`` (LMCache config) and ``/etc/modules-load.d/kvpod-nvme.conf`` removed.

Left in place, also by ``purge``: the fabric network (VLAN interface, address, routes, networkd/netplan files,
sysctls, ``kvpod-rxe.service``, their modules-load files) -- it is the fabric role's, removing it live means
reloading the host's network configuration (``netplan apply`` touches every interface), and the node can
rejoin; the NVMe host identity (``/etc/nvme/hostnqn``, ``hostid``: nvme-cli's, the target revokes the NQN);
the vLLM user and ``/var/lib/<user>`` (model caches); packages; the empty mount point. Data on the drive is
never touched: release never formats and never writes to a device. A pruned node thus keeps its fabric
address; automatic node addresses follow node order, so the caller must take it off the fabric before another
node can be given that address.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from pyinfra import context, host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.files import File, FileContents
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from deploy.facts.nvme import NvmeSubsystems
from deploy.facts.snapshot import Read
from deploy.facts.storage import MountedAt
from deploy.hostdata import host_data
from deploy.names import CONNECT_SCRIPT, CONNECT_UNIT, KVPOD_ETC, NVME_MODULES, SYSTEMD_DIR, modules_load_path
from deploy.operations import refuse
from deploy.operations.reads import Reads, unit_reads
from deploy.operations.steps import (
    Effect,
    Steps,
    absent_file_step,
    after,
    choice,
    directory_step,
    path_effect,
    reads_of,
    reload_step,
    run_steps,
    step,
)
from deploy.operations.storage import mount_unit_name
from deploy.release import ReleaseRequest, namespace_device, released_subsystems

NVME_MODULES_FILE = modules_load_path(NVME_MODULES)

_HIDDEN_PATH = re.compile(r"^nvme\d+c\d+n\d+$")  # a multipath path node: never mounted, not in use itself
_OCTAL = re.compile(r"\\([0-7]{3})")

_BLOCK_USE = r"""for b in /sys/class/block/nvme*; do
  [ -r "$b/dev" ] || continue
  d=${b##*/}
  printf 'dev\t%s\t%s\n' "$d" "$(cat "$b/dev")"
  if [ -d "/sys/fs/ext4/$d" ]; then printf 'ext4\t%s\n' "$d"; fi
  for h in "$b"/holders/*; do
    if [ -e "$h" ]; then printf 'holder\t%s\t%s\n' "$d" "${h##*/}"; fi
  done
done
while read -r _ _ mm _ mp _; do printf 'mnt\t%s\t%s\n' "$mm" "$mp"; done < /proc/self/mountinfo
true"""

# $0: the subsystem NQN, $@: its namespace block devices. Refuses while one (or a partition) is mounted here or
# in another mount namespace (ext4 keeps /sys/fs/ext4/<dev> while mounted anywhere) or held by another device.
_GUARDED_DISCONNECT = (
    'for d in "$@"; do for p in /sys/class/block/"$d" /sys/class/block/"$d"/"$d"*; do '
    '[ -r "$p/dev" ] || continue; b=${p##*/}; mm=$(cat "$p/dev"); '
    'if [ -d "/sys/fs/ext4/$b" ] || grep -q "^[0-9]* [0-9]* $mm " /proc/self/mountinfo; then '
    'echo "kvpod: /dev/$b is still mounted: not disconnecting $0" >&2; exit 1; fi; '
    'for h in "$p"/holders/*; do [ -e "$h" ] || continue; '
    'echo "kvpod: /dev/$b is in use by ${h##*/}: not disconnecting $0" >&2; exit 1; done; '
    "done; done; "
    'exec nvme disconnect --nqn "$0"'
)


class NvmeBlockUse(FactBase[dict[str, dict]]):
    """
    What uses each NVMe namespace block device, partitions folded into their namespace: mount points in this
    mount namespace (matched by major:minor), holders (device-mapper, md) and whether an ext4 on it is mounted
    anywhere (``/sys/fs/ext4/<dev>`` exists while it is, whichever mount namespace holds it).

    .. code:: python

        {"nvme1n1": {"mounts": ["/mnt/kvcache"], "holders": [], "ext4": True}}
    """

    default = dict

    def command(self) -> str:
        return _BLOCK_USE

    def process(self, output: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        namespace_of: dict[str, str] = {}
        mounts: list[tuple[str, str]] = []

        def entry(name: str) -> dict:
            return out.setdefault(namespace_device(name), {"mounts": [], "holders": [], "ext4": False})

        for line in output:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "dev" and len(parts) >= 3 and not _HIDDEN_PATH.match(parts[1]):
                entry(parts[1])
                namespace_of[parts[2].strip()] = namespace_device(parts[1])
            elif parts[0] == "ext4" and len(parts) >= 2:
                entry(parts[1])["ext4"] = True
            elif parts[0] == "holder" and len(parts) >= 3:
                entry(parts[1])["holders"].append(parts[2])
            elif parts[0] == "mnt" and len(parts) >= 3:
                mounts.append((parts[1], _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), parts[2])))
        for majmin, path in mounts:
            if majmin in namespace_of:
                out[namespace_of[majmin]]["mounts"].append(path)
        for e in out.values():
            e["mounts"] = sorted(set(e["mounts"]))
            e["holders"] = sorted(set(e["holders"]))
        return out


def disconnect_command(subnqn: str, devices: list[str]) -> StringCommand:
    """``nvme disconnect --nqn`` guarded on the host: refused while one of ``devices`` is mounted or held."""
    return StringCommand(
        "sh", "-c", QuoteString(_GUARDED_DISCONNECT), QuoteString(subnqn), *(QuoteString(d) for d in devices)
    )


def persisted_subsystem() -> str | None:
    """The NQN the boot-time connect script (or, without it, its unit) connects; None when neither is there."""
    for line in host.get_fact(FileContents, path=CONNECT_SCRIPT) or []:
        if line.startswith("NQN="):
            words = shlex.split(line[len("NQN=") :], comments=True)
            return words[0] if words else ""
    prefix = "Description=kvpod NVMe-oF connect of "
    for line in host.get_fact(FileContents, path=f"{SYSTEMD_DIR}/{CONNECT_UNIT}") or []:
        if line.startswith(prefix):
            return line[len(prefix) :].strip().replace("%%", "%")
    return None


def _released_use(request: ReleaseRequest) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """(NQN -> namespace devices released, device -> its use) from live facts."""
    released = released_subsystems(request, host.get_fact(NvmeSubsystems))
    devices = {d for devs in released.values() for d in devs}
    use = {d: u for d, u in host.get_fact(NvmeBlockUse).items() if d in devices}
    return released, use


def _kept_mount(request: ReleaseRequest) -> str | None:
    """The source of a filesystem mounted at ``mount_path`` that is not released (None: nothing there stays)."""
    current = host.get_fact(MountedAt, path=request.mount_path)
    if not current:
        return None
    released = released_subsystems(request, host.get_fact(NvmeSubsystems))
    devices = {d for devs in released.values() for d in devs}
    if current.get("device") and namespace_device(current["device"]) in devices:
        return None
    return current["source"]


@operation()
def released_unmounted(request: ReleaseRequest):
    """
    No released namespace is mounted: vLLM stopped first, then ``mount_path`` through its mount unit and any
    other mount point with ``umount`` (deepest first). Refuses before anything when a released namespace is
    held by another block device or mounted only in another mount namespace.

    + request: the :class:`ReleaseRequest`
    """
    released, use = _released_use(request)
    owner = {d: nqn for nqn, devs in released.items() for d in devs}
    problems = []
    mount_points: set[str] = set()
    for dev, u in sorted(use.items()):
        if u["holders"]:
            problems.append(
                f"/dev/{dev} ({owner[dev]}) is in use by {', '.join(u['holders'])} (device-mapper or RAID): "
                "take that apart first"
            )
        elif u["ext4"] and not u["mounts"]:
            problems.append(
                f"/dev/{dev} ({owner[dev]}) is mounted in another mount namespace (a container?): unmount it there"
            )
        mount_points.update(u["mounts"])
    if problems:
        yield from refuse("; ".join(problems) + "; nothing released")
        return
    if not mount_points:
        host.noop("no released namespace is mounted")
        return
    vllm_running = host.get_fact(SystemdStatus, services=[request.vllm_unit]).get(request.vllm_unit, False)
    if vllm_running or host.get_fact(File, path=f"{SYSTEMD_DIR}/{request.vllm_unit}"):
        # also when not seen running: a stop cancels a pending Restart= (systemctl refuses units never installed)
        yield StringCommand("systemctl", "stop", QuoteString(request.vllm_unit))
    for unit in _installed(request.engine_units):
        yield StringCommand("systemctl", "stop", QuoteString(unit))
    for path in sorted(mount_points, key=lambda p: (-p.rstrip("/").count("/"), p)):
        if path == request.mount_path:
            yield StringCommand("systemctl", "stop", QuoteString(mount_unit_name(path)))
        else:
            yield StringCommand("umount", QuoteString(path))


def _in_use(device: str, use: dict) -> str | None:
    """How ``device`` is still in use (None: it is not)."""
    if use["mounts"]:
        return f"/dev/{device} is still mounted at {', '.join(use['mounts'])} (a busy unmount?)"
    if use["holders"]:
        return f"/dev/{device} is in use by {', '.join(use['holders'])}"
    if use["ext4"]:
        return f"/dev/{device} is still mounted in another mount namespace (a container?)"
    return None


def _installed(unit_names: tuple[str, ...]) -> list[str]:
    """The units of ``unit_names`` whose unit file is on the host."""
    return [u for u in unit_names if host.get_fact(File, path=f"{SYSTEMD_DIR}/{u}")]


@operation()
def released_disconnected(request: ReleaseRequest):
    """
    No released subsystem is connected: ``nvme disconnect`` each, never while one of its namespaces is mounted
    (refused from the facts, and checked again by the command on the host).

    + request: the :class:`ReleaseRequest`
    """
    released, use = _released_use(request)
    if not released:
        host.noop("no released subsystem is connected")
        return
    for nqn, devices in released.items():
        busy = [_in_use(d, use[d]) for d in devices if d in use]
        busy = [b for b in busy if b]
        # While preparing a dry run the mounts are still there: released_unmounted runs first.
        if busy and context.state.is_executing:
            yield from refuse(f"{'; '.join(busy)}: not disconnecting {nqn}")
            return
        yield disconnect_command(nqn, devices)


@operation()
def unit_retired(
    unit: str,
    stop: bool = True,
    spare: ReleaseRequest | None = None,
    stopped_when: Callable[[], bool] | None = None,
):
    """
    A systemd unit stopped and disabled (its unit file is removed separately, then ``daemon-reload``).

    + unit: full unit name
    + stop: stop it when active (False: only disable)
    + spare: never stop it while a filesystem this request does not release is mounted at its ``mount_path``
    + stopped_when: an earlier operation stops it when this is true (built with :func:`changed`): no stop here
    """
    running = host.get_fact(SystemdStatus, services=[unit]).get(unit, False)
    enabled = host.get_fact(SystemdEnabled, services=[unit]).get(unit, False)
    if stopped_when is not None and stopped_when():
        running = False
    acted = False
    if stop and running:
        kept = _kept_mount(spare) if spare else None
        if kept:
            host.noop(f"{unit} left active: {kept} stays mounted at {spare.mount_path} and its mount unit needs it")
        else:
            acted = True
            yield StringCommand("systemctl", "stop", QuoteString(unit))
    if enabled:
        acted = True
        yield StringCommand("systemctl", "disable", QuoteString(unit))
    if not acted:
        host.noop(f"{unit} is {'stopped and ' if stop else ''}disabled")


def _forgets_boot_connection(request: ReleaseRequest) -> bool:
    """Whether the boot-time connection goes: it is not ``keep_subsystem``'s (the NQN in the connect script)."""
    return request.keep_subsystem is None or persisted_subsystem() != request.keep_subsystem


def _is_installed(unit: str) -> Callable[[], bool]:
    return lambda: bool(_installed((unit,)))


def _retired_steps(unit: str, keep: str = "unit_files", **options) -> Steps:
    """``unit`` stopped (see :func:`unit_retired`) and disabled, then its unit file removed (kept as ``keep``)."""
    reads = unit_reads(unit)
    if options.get("spare"):
        reads += [Read.of(MountedAt, path=options["spare"].mount_path), Read.of(NvmeSubsystems)]
    name = f"{unit} disabled" if options.get("stop") is False else f"{unit} stopped and disabled"
    return [
        step(unit_retired, reads, effects=[Effect("unit", unit)], name=name, unit=unit, **options),
        absent_file_step(f"{unit} removed", f"{SYSTEMD_DIR}/{unit}", keep=keep),
    ]


def steps(request: ReleaseRequest) -> Steps:
    """Unmount (vLLM first), disconnect and forget the boot-time connection of every released namespace;
    with ``purge`` also retire vLLM and remove kvpod's units and files."""
    released = [Read.of(NvmeSubsystems), Read.of(NvmeBlockUse)]
    holders = [f"{SYSTEMD_DIR}/{u}" for u in (request.vllm_unit, *request.engine_units)]
    out: list = [
        step(
            released_unmounted,
            [*released, *unit_reads(request.vllm_unit)[:1], *(Read.of(File, path=p) for p in holders)],
            keep="unmounted",
            effects=[Effect("unit", request.vllm_unit), path_effect(request.mount_path)],
            name="released namespaces unmounted",
            request=request,
        ),
        step(
            released_disconnected,
            released,
            effects=[Effect("subsystem", "*")],
            name="released subsystems disconnected",
            request=request,
        ),
    ]
    connect_unit = [
        *_retired_steps(CONNECT_UNIT, spare=request),
        absent_file_step("boot-time connect script removed", CONNECT_SCRIPT),
    ]
    persisted = [Read.of(FileContents, path=p) for p in (CONNECT_SCRIPT, f"{SYSTEMD_DIR}/{CONNECT_UNIT}")]
    out.append(choice(lambda: _forgets_boot_connection(request), persisted, then=connect_unit))

    if request.purge:
        out += _retired_steps(request.vllm_unit, stopped_when=after("unmounted"))
        for unit in request.engine_units:
            then = _retired_steps(unit, stopped_when=after("unmounted"))
            out.append(choice(_is_installed(unit), [Read.of(File, path=f"{SYSTEMD_DIR}/{unit}")], then=then))
        out += _retired_steps(mount_unit_name(request.mount_path), stop=False)
        out += [
            directory_step(f"{KVPOD_ETC} removed", KVPOD_ETC, present=False),
            absent_file_step("NVMe-oF modules no longer loaded at boot", NVME_MODULES_FILE),
        ]
    return [*out, reload_step(when=after("unit_files"))]


def reads(request: ReleaseRequest) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(request))


@deploy("kvpod release")
def node_release() -> None:
    """Unmount (vLLM first), disconnect and forget the boot-time connection of every released namespace;
    with ``purge`` also retire vLLM and remove kvpod's units and files."""
    run_steps(steps(host_data().release))
