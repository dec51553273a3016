"""Storage operations: an ext4 filesystem on the namespace (data-safe), its systemd mount unit, the mount.

The namespace's block device is found by subsystem NQN (``subnqn``), never by ``/dev/nvmeXnY`` position;
``device`` names it directly instead. When it is not there (not connected yet) operations refuse:
while preparing a dry run nothing can tell whether the drive is blank, so nothing is guessed.
"""

from __future__ import annotations

import posixpath
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.server import Mounts
from pyinfra.operations import files

from deploy.encode import EncodeError, render
from deploy.facts.nvme import NvmeSubsystems, namespace_of
from deploy.facts.storage import BlockSignature, Ext4Info, MountedAt
from deploy.names import GIB, SYSTEMD_DIR
from deploy.operations import refuse


def systemd_escape_path(path: str) -> str:
    """``systemd-escape --path``: ``/mnt/kvcache`` -> ``mnt-kvcache``, ``/srv/kv-cache`` -> ``srv-kv\\x2dcache``."""
    trimmed = "/".join(part for part in path.split("/") if part)
    if not trimmed:
        return "-"
    out = []
    for i, ch in enumerate(trimmed):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_.") and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def mount_unit_name(path: str) -> str:
    """The systemd mount unit for mount point ``path`` (``mnt-kvcache.mount``)."""
    return f"{systemd_escape_path(path)}.mount"


def _device(device: str | None, subnqn: str | None, nsid: int | None) -> tuple[str | None, int | None, str]:
    """(``/dev/...`` or None, size in bytes when known, why not: what was looked for and is missing)."""
    if device:
        return device, None, ""
    if not subnqn:
        raise ValueError("give device or subnqn")
    subsystems = host.get_fact(NvmeSubsystems)
    what = f"namespace {nsid if nsid is not None else ''} of {subnqn}".replace("  ", " ")
    paths = [n for n in subsystems.get(subnqn, {}).get("namespaces", []) if nsid is None or n["nsid"] == nsid]
    if len(paths) > 1:
        names = ", ".join(n["name"] for n in paths)
        return (
            None,
            None,
            (
                f"{what} shows as several block devices ({names}): native NVMe multipath is off "
                "(nvme_core.multipath=N); turn it on so that one device serves every portal"
            ),
        )
    ns = namespace_of(subsystems, subnqn, nsid)
    if ns is None:
        return None, None, _not_connected(what)
    return f"/dev/{ns['name']}", ns["size"], ""


def _not_connected(what: str) -> str:
    return (
        f"{what} has no block device on this host (not connected yet). A dry run cannot tell whether it is blank; "
        "run without --dry (the namespace is connected first) or connect it and retry"
    )


def mkfs_command(device: str, label: str, fs_uuid: str | None = None, force: bool = False) -> StringCommand:
    """``mkfs.ext4 -q -m 0 -O mmp -L LABEL [-U UUID] DEV``; without ``force`` it runs only if blkid still
    finds no signature (checked again on the host, right before formatting)."""
    mkfs: list = ["mkfs.ext4"] + (["-F"] if force else []) + ["-q", "-m", "0", "-O", "mmp", "-L", QuoteString(label)]
    if fs_uuid:
        mkfs += ["-U", QuoteString(fs_uuid)]
    mkfs.append(QuoteString(device))
    if force:
        return StringCommand(*mkfs)
    return StringCommand(
        "if blkid -p",
        QuoteString(device),
        ">/dev/null 2>&1; [ $? -eq 2 ]; then",
        *mkfs,
        "; else echo",
        QuoteString(f"kvpod: {device} is not blank: not formatting it"),
        ">&2; exit 1; fi",
    )


def _mounted_at(device: str) -> str | None:
    name = posixpath.basename(device)
    for path, info in host.get_fact(Mounts).items():
        if posixpath.basename(info.get("device") or "") == name:
            return path
    return None


def _too_small(size: int, min_size_bytes: int) -> str:
    return f"{size / GIB:.2f} GiB is smaller than the disk budget of {min_size_bytes / GIB:.2f} GiB"


@operation()
def ext4(
    device: str | None = None,
    label: str = "kvcache",
    wipe: bool = False,
    subnqn: str | None = None,
    nsid: int | None = None,
    fs_uuid: str | None = None,
    min_size_bytes: int | None = None,
    stop_before_wipe: list[str] | None = None,
):
    """
    An ext4 filesystem (with multi-mount protection) on the device. Data-safe: formats only a device on which
    ``blkid -p`` finds no signature; an existing ext4 is kept as it is; anything else is refused. ``wipe``
    recreates whatever is there (the only path that passes ``-F``): pass it only for a drive the user named.

    + device: the block device; or find it with
    + subnqn, nsid: the NVMe subsystem NQN (and namespace ID) whose block device to use
    + label: filesystem label for a new filesystem
    + wipe: recreate even if a filesystem exists (never while it is mounted, see ``stop_before_wipe``)
    + fs_uuid: UUID for a new filesystem (lets a mount unit name it before it exists)
    + min_size_bytes: refuse a device or filesystem smaller than this
    + stop_before_wipe: systemd units to stop, in order, when wiping a mounted filesystem (its users, then its
      mount unit); without them a mounted filesystem is never wiped
    """
    dev, size, missing = _device(device, subnqn, nsid)
    if dev is None:
        yield from refuse(missing)
        return
    signature = host.get_fact(BlockSignature, device=dev)

    if signature is not None and "ERROR" in signature:
        yield from refuse(f"{dev}: {signature['ERROR']}: not formatting it")
        return

    if signature is None or wipe:
        if min_size_bytes and size is not None and size < min_size_bytes:
            yield from refuse(f"{dev}: {_too_small(size, min_size_bytes)}")
            return
        if signature is not None:
            mounted = _mounted_at(dev)
            if mounted and not stop_before_wipe:
                yield from refuse(f"{dev} is mounted at {mounted}: unmount it before wiping")
                return
            if mounted:
                for unit in stop_before_wipe or []:
                    yield StringCommand("systemctl", "stop", QuoteString(unit))
        yield mkfs_command(dev, label, fs_uuid, force=signature is not None)
        return

    fstype = signature.get("TYPE")
    if fstype != "ext4":
        found = fstype or (f"a {signature['PTTYPE']} partition table" if "PTTYPE" in signature else "a signature")
        yield from refuse(
            f"{dev} holds {found}, not ext4: refusing to format it (name the drive to wipe it if it is really yours)"
        )
        return
    info = host.get_fact(Ext4Info, device=dev)
    if info is None:
        yield from refuse(f"{dev}: blkid finds ext4 but dumpe2fs cannot read it; check it with e2fsck")
        return
    if min_size_bytes and info["size"] < min_size_bytes:
        yield from refuse(f"the filesystem on {dev}: {_too_small(info['size'], min_size_bytes)}")
        return
    if "mmp" not in info["features"]:
        mounted = _mounted_at(dev)
        if not mounted:
            yield StringCommand("tune2fs", "-O", "mmp", QuoteString(dev))
            return
        host.noop(f"{dev} has ext4 without multi-mount protection; mounted at {mounted}, so mmp is left off")
        return
    host.noop(f"{dev} has an ext4 filesystem ({info['size'] / GIB:.2f} GiB), kept as it is")


def filesystem_uuid(dev: str, fs_uuid: str | None) -> tuple[str | None, str | None]:
    """(UUID of the ext4 on ``dev`` -- or ``fs_uuid`` while it is blank, error message)."""
    signature = host.get_fact(BlockSignature, device=dev)
    if signature is None:
        if fs_uuid:
            return fs_uuid, None
        return None, f"{dev} holds no filesystem yet"
    if signature.get("TYPE") == "ext4" and signature.get("UUID"):
        return signature["UUID"], None
    return None, f"{dev} holds no ext4 filesystem ({signature.get('ERROR') or signature.get('TYPE') or 'unknown'})"


@operation()
def mount_unit(
    path: str,
    template: str,
    subnqn: str | None = None,
    nsid: int | None = None,
    device: str | None = None,
    fs_uuid: str | None = None,
    variables: dict | None = None,
):
    """
    ``/etc/systemd/system/<escaped path>.mount`` rendered from a kvpod template (:func:`deploy.encode.render`)
    that gets ``unit``, ``path``, ``uuid`` and ``what`` (``/dev/disk/by-uuid/<uuid>``) plus ``variables``.

    + path: the mount point
    + template: jinja2 template file of the unit
    + subnqn, nsid / device: the filesystem's device (see :func:`ext4`)
    + fs_uuid: the UUID a blank device's filesystem will get (from :func:`ext4`)
    + variables: further template variables
    """
    dev, _, missing = _device(device, subnqn, nsid)
    if dev is None:
        yield from refuse(missing)
        return
    uuid, problem = filesystem_uuid(dev, fs_uuid)
    if problem:
        yield from refuse(problem)
        return
    unit = mount_unit_name(path)
    try:
        text = render(template, unit=unit, path=path, uuid=uuid, what=f"/dev/disk/by-uuid/{uuid}", **(variables or {}))
    except EncodeError as exc:
        yield from refuse(str(exc))
        return
    yield from files.put._inner(src=StringIO(text), dest=f"{SYSTEMD_DIR}/{unit}")


@operation()
def mounted(
    path: str,
    subnqn: str | None = None,
    nsid: int | None = None,
    device: str | None = None,
    options: list[str] | None = None,
):
    """
    The device's filesystem is mounted at ``path``, started through its mount unit, with ``options`` live
    (a mount that lost one, e.g. remounted without ``noatime``, is remounted with them). Something else
    mounted there is refused loudly (never mounted over).

    + path: the mount point (its mount unit must exist)
    + subnqn, nsid / device: the filesystem's device (see :func:`ext4`)
    + options: mount options that must be in effect (``noatime``)
    """
    dev, _, missing = _device(device, subnqn, nsid)
    current = host.get_fact(MountedAt, path=path)
    if current:
        if dev and current["device"] == posixpath.basename(dev):
            lost = [o for o in options or [] if o not in current["options"]]
            if lost:
                yield StringCommand("mount", "-o", QuoteString(",".join(["remount", *lost])), QuoteString(path))
                return
            host.noop(f"{path} is mounted from {dev}")
            return
        wanted = dev or f"the namespace of {subnqn}"
        yield from refuse(f"{path} is mounted from {current['source']}, not from {wanted}: refusing to mount over it")
        return
    if dev is None:
        yield from refuse(missing)
        return
    yield StringCommand("udevadm", "settle")  # /dev/disk/by-uuid of a filesystem made moments ago
    yield StringCommand("systemctl", "start", QuoteString(mount_unit_name(path)))
