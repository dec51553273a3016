"""NVMe-oF target operations on the Linux nvmet configfs tree (``/sys/kernel/config/nvmet``).

Subsystems never admit any host (``attr_allow_any_host`` is only ever written 0); hosts are admitted one by
one through ``allowed_hosts`` links. Changing the admitted hosts never tears a subsystem down.
"""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File

from deploy.encode import configfs_path
from deploy.facts.nvmet import NvmetConfig
from deploy.names import NVMET_ROOT


def _write(value: str, path: str) -> StringCommand:
    return StringCommand("printf", "'%s'", QuoteString(str(value)), ">", QuoteString(path))


def _mkdir(path: str) -> StringCommand:
    return StringCommand("mkdir", QuoteString(path))


def _link(target: str, link: str) -> StringCommand:
    return StringCommand("ln", "-s", QuoteString(target), QuoteString(link))


def _unlink(link: str) -> StringCommand:
    return StringCommand("rm", QuoteString(link))


@operation()
def subsystem(
    nqn: str,
    nsid: int,
    device_path: str,
    allowed_hosts: list[str],
    file_size_bytes: int | None = None,
    device_uuid: str | None = None,
    device_nguid: str | None = None,
):
    """
    Subsystem ``nqn`` exports ``device_path`` as namespace ``nsid`` (enabled) to exactly ``allowed_hosts``
    (an empty list admits no host). Host links not listed are removed; the subsystem is never recreated.

    + nqn: subsystem NQN
    + nsid: namespace ID
    + device_path: block device or backing file
    + allowed_hosts: host NQNs admitted
    + file_size_bytes: create ``device_path`` as a sparse file of this size when it does not exist
    + device_uuid, device_nguid: stable namespace identifiers (nvmet makes random ones otherwise, and a host
      that reconnects after a target reboot then sees "identifiers changed" and drops the namespace)
    """
    cfg = host.get_fact(NvmetConfig)
    base = configfs_path(NVMET_ROOT, "subsystems", nqn)
    current = cfg["subsystems"].get(nqn)
    did = False

    if file_size_bytes and not host.get_fact(File, path=device_path):
        did = True
        yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(device_path)))
        yield StringCommand("truncate", "-s", str(int(file_size_bytes)), QuoteString(device_path))

    if current is None:
        did = True
        yield _mkdir(base)
        current = {"allow_any_host": False, "allowed_hosts": [], "namespaces": {}}
        yield _write("0", f"{base}/attr_allow_any_host")
    elif current["allow_any_host"]:
        did = True
        yield _write("0", f"{base}/attr_allow_any_host")

    ns_dir = configfs_path(base, "namespaces", int(nsid))
    ns = current["namespaces"].get(str(nsid))
    ids = {k: v for k, v in (("device_uuid", device_uuid), ("device_nguid", device_nguid)) if v}
    if ns is None:
        did = True
        yield _mkdir(ns_dir)
        yield _write(device_path, f"{ns_dir}/device_path")
        for key, value in ids.items():
            yield _write(value, f"{ns_dir}/{key}")
        yield _write("1", f"{ns_dir}/enable")
    elif ns["device_path"] != device_path or any(ns.get(k, v).lower() != v.lower() for k, v in ids.items()):
        did = True
        if ns["enable"]:
            yield _write("0", f"{ns_dir}/enable")
        yield _write(device_path, f"{ns_dir}/device_path")
        for key, value in ids.items():
            yield _write(value, f"{ns_dir}/{key}")
        yield _write("1", f"{ns_dir}/enable")
    elif not ns["enable"]:
        did = True
        yield _write("1", f"{ns_dir}/enable")

    for stale in sorted(set(current["allowed_hosts"]) - set(allowed_hosts)):
        did = True
        yield _unlink(configfs_path(base, "allowed_hosts", stale))
    for hostnqn in allowed_hosts:
        if hostnqn in current["allowed_hosts"]:
            continue
        did = True
        if hostnqn not in cfg["hosts"]:
            yield _mkdir(configfs_path(NVMET_ROOT, "hosts", hostnqn))
        yield _link(configfs_path(NVMET_ROOT, "hosts", hostnqn), configfs_path(base, "allowed_hosts", hostnqn))

    if not did:
        host.noop(f"subsystem {nqn} is exported to {len(allowed_hosts)} host(s)")


@operation()
def port(
    port_id: int,
    trtype: str,
    traddr: str,
    trsvcid: int | str,
    adrfam: str = "ipv4",
    subsystems: list[str] | None = None,
):
    """
    nvmet port ``port_id`` listens on ``trtype``/``traddr``:``trsvcid`` and serves exactly ``subsystems``.
    Address attributes can only change while no subsystem is linked: they are unlinked, set, relinked.

    + port_id: configfs port number
    + trtype: ``rdma`` or ``tcp``
    + traddr, trsvcid, adrfam: listen address
    + subsystems: subsystem NQNs served on this port
    """
    wanted_links = list(subsystems or [])
    cfg = host.get_fact(NvmetConfig)
    base = configfs_path(NVMET_ROOT, "ports", int(port_id))
    current = cfg["ports"].get(str(port_id))
    wanted_attrs = {"trtype": trtype, "traddr": traddr, "trsvcid": str(trsvcid), "adrfam": adrfam}
    did = False

    if current is None:
        did = True
        yield _mkdir(base)
        current = {"trtype": "", "traddr": "", "trsvcid": "", "adrfam": "", "subsystems": []}
    differing = [key for key, value in wanted_attrs.items() if current.get(key) != value]
    linked = list(current["subsystems"])
    if differing:
        did = True
        for nqn in linked:
            yield _unlink(configfs_path(base, "subsystems", nqn))
        linked = []
        for key in ("adrfam", "trtype", "traddr", "trsvcid"):
            if key in differing:
                yield _write(wanted_attrs[key], f"{base}/addr_{key}")

    for nqn in sorted(set(linked) - set(wanted_links)):
        did = True
        yield _unlink(configfs_path(base, "subsystems", nqn))
    for nqn in wanted_links:
        if nqn not in linked:
            did = True
            yield _link(configfs_path(NVMET_ROOT, "subsystems", nqn), configfs_path(base, "subsystems", nqn))

    if not did:
        host.noop(f"port {port_id} serves {len(wanted_links)} subsystem(s) on {trtype} {traddr}:{trsvcid}")
