"""A simulated host for kvpod's tests: the kernel, NVMe-oF (initiator and nvmet target) and mount state that
kvpod's facts read, changed by the commands kvpod runs (``nvme connect`` makes the namespace appear,
``mkfs.ext4`` formats it, writes under ``/sys/kernel/config/nvmet`` change the target, ...)."""

from __future__ import annotations

import copy
import shlex
import subprocess
import tempfile
import uuid as uuidlib
from pathlib import Path

from benchmarks.pyinfra_fake import FakeRemote
from deploy.names import NVMET_ROOT
from deploy.plan import NodePlan

DEVICE = "nvme1n1"
DRIVE_BYTES = 2_000_000_000


def _int_keys(dcb: dict | None) -> dict | None:
    """A DCB state with its DSCP and priority keys as numbers (JSON fixtures give strings); None: no DCB."""
    if dcb is None:
        return None
    numbers = {key: {int(k): v for k, v in dcb[key].items()} for key in ("dscp_prio", "pfc")}
    return {**dcb, **numbers}


def simulated(remote: FakeRemote, drive_bytes: int = DRIVE_BYTES, mount_path: str = "/mnt/kvcache") -> FakeRemote:
    """Make ``remote`` react to kvpod's commands."""
    remote.drive_bytes = drive_bytes  # type: ignore[attr-defined]
    # the fabric NIC's DCB (fixture fact ``network.DcbState``: one state, whatever the arguments); by default as a
    # hardware RDMA NIC has it out of the box: no DSCP entry, no PFC, ECN off
    fresh = {"dscp_prio": {}, "pfc": dict.fromkeys(range(8), False), "ecn": {"roce_np": "0", "roce_rp": "0"}}
    remote.dcb = _int_keys(remote.facts.pop("network.DcbState", fresh))  # type: ignore[attr-defined]
    remote._fact_network_DcbState = lambda interface, priority: copy.deepcopy(remote.dcb)  # type: ignore[attr-defined]
    remote.mount_path = mount_path  # type: ignore[attr-defined]
    for word, effect in EFFECTS.items():
        remote.on(word, effect)
    remote.file_hooks["/etc/nvme/"] = _nvme_identity_file
    return remote


def _nvme_identity_file(remote: FakeRemote, path: str, content: str) -> None:
    """``/etc/nvme/hostnqn``/``hostid`` written (its directory made as tar makes a missing parent): kept, as the
    ``printf`` into it is, in the ``nvme.NvmeHostIdentity`` fact."""
    remote.dirs.setdefault("/etc/nvme", {})
    _fact(remote, "nvme.NvmeHostIdentity", {"hostnqn": None, "hostid": None})[path.rsplit("/", 1)[-1]] = content.strip()


def fresh_node(plan: NodePlan, netplan: bool = False) -> FakeRemote:
    """A freshly installed node: packages present, eth0 managed by networkd, nothing of kvpod's yet."""
    remote = FakeRemote(
        facts={
            "kernel.LoadedModules": {"ext4": "loaded"},
            "kernel.RdmaLinks": {},
            "network.IpLinks": {
                "lo": _link(65536, True),
                "eth0": {**_link(1500, True), "addresses": ["10.0.2.15/24"]},
                plan.fabric.interface: _link(1500, False),
            },
            "network.IpRoutes": [{"dst": "default", "gateway": "10.0.2.2", "dev": "eth0"}],
            "network.NetplanFiles": ["/etc/netplan/50-cloud-init.yaml"] if netplan else [],
            "nvme.NvmeHostIdentity": {"hostnqn": None, "hostid": None},
            "nvme.NvmeSubsystems": {},
            "storage.BlockSignature": {},
            "storage.Ext4Info": {},
            "storage.MountedAt": {f"path={plan.mount.path}": None},
        },
        packages={"nvme-cli": ["2.4"], "rdma-core": ["44.0"]},
        units={"systemd-networkd.service": {"running": True, "enabled": True}},
        users={"root": {"home": "/root", "shell": "/bin/bash", "group": "root", "groups": []}},
        sysctls={
            "net.core.rmem_max": 212992,
            "net.core.wmem_max": 212992,
            "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
            "net.ipv4.tcp_wmem": [4096, 16384, 4194304],
        },
    )
    return simulated(remote, drive_bytes=int(plan.namespace.capacity_gb * 1e9), mount_path=plan.mount.path)


def connected_node(plan: NodePlan, signature: dict | None = None, ext4: dict | None = None) -> FakeRemote:
    """A fresh node whose namespace is already connected (e.g. by an earlier, interrupted run)."""
    remote = fresh_node(plan)
    for portal in plan.namespace.portals:
        _connect(remote, plan.namespace.subsystem_nqn, plan.namespace.transport, portal.address, portal.trsvcid)
    remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"] = signature
    if ext4 is not None:
        remote.facts["storage.Ext4Info"][f"device=/dev/{DEVICE}"] = ext4
    return remote


def ext4_facts(fs_uuid: str, size: int = DRIVE_BYTES, features: list[str] | None = None) -> tuple[dict, dict]:
    """(blkid signature, dumpe2fs info) of an ext4 filesystem on the simulated namespace."""
    sig = {"DEVNAME": f"/dev/{DEVICE}", "UUID": fs_uuid, "LABEL": "kvcache", "TYPE": "ext4", "USAGE": "filesystem"}
    info = {
        "uuid": fs_uuid,
        "label": "kvcache",
        "block_count": size // 4096,
        "block_size": 4096,
        "size": (size // 4096) * 4096,
        "features": features if features is not None else ["has_journal", "extent", "mmp"],
    }
    return sig, info


def _link(mtu: int, up: bool) -> dict:
    return {"mtu": mtu, "up": up, "kind": None, "vlan_id": None, "link": None, "addresses": []}


def _fact(remote: FakeRemote, key: str, default):
    return remote.facts.setdefault(key, default)


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# -- initiator --------------------------------------------------------------------------------------------


def connected_settings(argv: list[str]) -> dict[str, str]:
    """The sysfs values a controller connected with ``nvme connect`` ``argv`` shows (one CPU, as the lab's VMs)."""

    def opt(flag: str, default: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv else default

    delay = int(opt("--reconnect-delay", "10"))
    loss = int(opt("--ctrl-loss-tmo", "600"))
    fail = int(opt("--fast_io_fail_tmo", "-1"))
    return {
        "reconnect_delay": str(delay),
        "ctrl_loss_tmo": "off" if loss < 0 else str(-(-loss // delay) * delay),
        "fast_io_fail_tmo": "off" if fail < 0 else str(fail),
        "kato": opt("--keep-alive-tmo", "5"),
        "queue_count": "2",
    }


def _connect(
    remote: FakeRemote, nqn: str, transport: str, traddr: str, trsvcid: object, settings: dict | None = None
) -> None:
    subsystems = _fact(remote, "nvme.NvmeSubsystems", {})
    size = getattr(remote, "drive_bytes", DRIVE_BYTES)
    entry = subsystems.setdefault(
        nqn,
        {
            "subsystem": "nvme-subsys1",
            "iopolicy": "numa",
            "controllers": [],
            "namespaces": [{"name": DEVICE, "nsid": 1, "size": size}],
        },
    )
    name = f"nvme{len(entry['controllers']) + 1}"
    ctrl = {"name": name, "transport": transport, "traddr": traddr, "trsvcid": str(trsvcid), "state": "live"}
    entry["controllers"].append({**ctrl, "settings": settings or connected_settings([])})
    _fact(remote, "storage.BlockSignature", {}).setdefault(f"device=/dev/{DEVICE}", None)


def _nvme(remote: FakeRemote, argv: list[str]) -> bool:
    if argv[1] == "connect":
        _connect(
            remote,
            _opt(argv, "--nqn"),
            _opt(argv, "--transport"),
            _opt(argv, "--traddr"),
            _opt(argv, "--trsvcid"),
            connected_settings(argv),
        )
    elif argv[1] == "disconnect":
        _fact(remote, "nvme.NvmeSubsystems", {}).pop(_opt(argv, "--nqn"), None)
    elif argv[1] == "ns-rescan":
        size = getattr(remote, "drive_bytes", DRIVE_BYTES)
        for entry in _fact(remote, "nvme.NvmeSubsystems", {}).values():
            if any(f"/dev/{c['name']}" == argv[2] for c in entry["controllers"]) and not entry["namespaces"]:
                entry["namespaces"].append({"name": DEVICE, "nsid": 1, "size": size})
    return True


def _make_fs(remote: FakeRemote, mkfs: list[str]) -> bool:
    """``mkfs.ext4 ... DEVICE`` on the simulated namespace: a new ext4 with the given UUID and label."""
    key = f"device={mkfs[-1]}"
    fs_uuid = _opt(mkfs, "-U") if "-U" in mkfs else str(uuidlib.uuid4())
    sig, info = ext4_facts(fs_uuid, getattr(remote, "drive_bytes", DRIVE_BYTES))
    sig["LABEL"] = info["label"] = _opt(mkfs, "-L")
    _fact(remote, "storage.BlockSignature", {})[key] = sig
    _fact(remote, "storage.Ext4Info", {})[key] = info
    return True


def _shim(bin_dir: Path, name: str, body: str) -> None:
    (bin_dir / name).write_text("#!/bin/sh\n" + body)
    (bin_dir / name).chmod(0o755)


def _guarded_format(remote: FakeRemote, command: str) -> bool:
    """The on-host blank check before mkfs, run under ``sh``: ``blkid -p`` answers from the simulated
    signature (exit 2: no signature), ``mkfs.ext4`` formats the simulated namespace only if the guard lets it."""
    device = shlex.split(command)[3]
    signature = _fact(remote, "storage.BlockSignature", {}).get(f"device={device}", {"TYPE": "?"})
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp)
        _shim(bin_dir, "blkid", f"exit {2 if signature is None else 0}\n")
        _shim(bin_dir, "mkfs.ext4", f'printf "%s\\n" mkfs.ext4 "$@" > {tmp}/mkfs\n')
        done = subprocess.run(
            ["sh", "-c", command], env={"PATH": f"{tmp}:/usr/bin:/bin"}, capture_output=True, text=True, check=False
        )
        mkfs = (bin_dir / "mkfs").read_text().splitlines() if (bin_dir / "mkfs").exists() else None
    if mkfs:
        _make_fs(remote, mkfs)
    return done.returncode == 0


def _format(remote: FakeRemote, argv: list[str]) -> bool:
    """``mkfs.ext4 -F`` (a drive named with ``--wipe``) formats; the guarded form runs its guard under ``sh``."""
    if argv[0] == "mkfs.ext4":
        return _make_fs(remote, argv)
    return _guarded_format(remote, remote.executed[-1])  # the command as the host's shell gets it


# the paths of the host that the disconnect guard reads, and where a scratch tree stands in for them
_GUARD_PATHS = {
    "/sys/class/block/": "sys/class/block/",
    "/sys/fs/ext4/": "sys/fs/ext4/",
    "/proc/self/mountinfo": "mountinfo",
}


def guarded_disconnect(remote: FakeRemote, argv: list[str], use: dict[str, dict]) -> bool:
    """``sh -c GUARD NQN DEVICES``: the real guard run under ``sh`` on a scratch sysfs and mountinfo built from
    ``use`` (device -> {"mounts", "holders", "ext4"}, as :class:`roles.node_release.NvmeBlockUse` reads it); the
    subsystem is disconnected only if the guard lets ``nvme disconnect`` run."""
    script, nqn = argv[2], argv[3]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, scratch in _GUARD_PATHS.items():
            assert path in script, f"the disconnect guard no longer reads {path}"
            script = script.replace(path, f"{root}/{scratch}")
        mountinfo = []
        for i, (device, entry) in enumerate(sorted(use.items()), start=1):
            block = root / "sys/class/block" / device
            block.mkdir(parents=True)
            (block / "dev").write_text(f"259:{i}\n")
            for holder in entry.get("holders", []):
                (block / "holders" / holder).mkdir(parents=True)
            if entry.get("ext4"):
                (root / "sys/fs/ext4" / device).mkdir(parents=True)
            mountinfo += [
                f"{30 + i} 1 259:{i} / {m} rw,noatime - ext4 /dev/{device} rw\n" for m in entry.get("mounts", [])
            ]
        (root / "mountinfo").write_text("".join(mountinfo))
        _shim(root, "nvme", f'echo "$@" > {tmp}/nvme-called\n')
        done = subprocess.run(
            ["sh", "-c", script, *argv[3:]],
            env={"PATH": f"{tmp}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        called = (root / "nvme-called").read_text().split() if (root / "nvme-called").exists() else []
    if called == ["disconnect", "--nqn", nqn]:
        _fact(remote, "nvme.NvmeSubsystems", {}).pop(nqn, None)
    return done.returncode == 0


def _systemctl(remote: FakeRemote, argv: list[str]) -> bool:
    remote._builtin(argv)
    if (argv[1] == "start" or argv[1:3] == ["enable", "--now"]) and argv[-1].endswith(".mount"):
        path = getattr(remote, "mount_path", "/mnt/kvcache")
        mounted = {"source": f"/dev/{DEVICE}", "fstype": "ext4", "options": ["rw", "noatime"], "device": DEVICE}
        _fact(remote, "storage.MountedAt", {})[f"path={path}"] = mounted
        remote.mounts[path] = {"device": f"/dev/{DEVICE}", "type": "ext4", "options": ["rw", "noatime"]}
        remote.dirs[path] = {"user": "root", "group": "root", "mode": 755}  # the new filesystem's root
    if argv[1] == "stop" and argv[-1].endswith(".mount"):
        path = getattr(remote, "mount_path", "/mnt/kvcache")
        _fact(remote, "storage.MountedAt", {})[f"path={path}"] = None
        remote.mounts.pop(path, None)
        for gone in [p for p in [*remote.dirs, *remote.files] if p.startswith(path + "/")]:
            remote.dirs.pop(gone, None)
            remote.files.pop(gone, None)
        remote.dirs[path] = {"user": "root", "group": "root", "mode": 755}  # the empty mount point
    return True


def _modprobe(remote: FakeRemote, argv: list[str]) -> bool:
    for name in argv[1:]:
        if not name.startswith("-"):
            _fact(remote, "kernel.LoadedModules", {})[name.replace("-", "_")] = "loaded"
    return True


def _rdma(remote: FakeRemote, argv: list[str]) -> bool:
    links = _fact(remote, "kernel.RdmaLinks", {})
    if argv[1:3] == ["link", "add"]:
        if argv[3] in links:
            return False  # "File exists"
        links[argv[3]] = _opt(argv, "netdev")
    return True


def _ip(remote: FakeRemote, argv: list[str]) -> bool:
    links = _fact(remote, "network.IpLinks", {})
    if argv[1:3] == ["link", "set"]:
        link = links[_opt(argv, "dev")]
        if "mtu" in argv:
            link["mtu"] = int(_opt(argv, "mtu"))
        if "up" in argv:
            link["up"] = True
    elif argv[1:3] == ["link", "add"]:
        if _opt(argv, "name") in links:
            return False
        links[_opt(argv, "name")] = {
            "mtu": int(_opt(argv, "mtu")),
            "up": "up" in argv[: argv.index("type")],
            "kind": "vlan",
            "vlan_id": int(_opt(argv, "id")),
            "link": argv[argv.index("link", 3) + 1],
            "addresses": [],
        }
    elif argv[1:3] == ["link", "delete"]:
        links.pop(_opt(argv, "dev"))
    elif argv[1:3] == ["addr", "add"]:
        links[_opt(argv, "dev")]["addresses"].append(argv[3])
    elif argv[1:3] == ["addr", "del"]:
        links[_opt(argv, "dev")]["addresses"].remove(argv[3])
    elif argv[1:3] == ["route", "replace"]:
        routes = _fact(remote, "network.IpRoutes", [])
        routes[:] = [r for r in routes if r["dst"] != argv[3]]
        routes.append({"dst": argv[3], "gateway": _opt(argv, "via"), "dev": _opt(argv, "dev")})
    return True


def _tune2fs(remote: FakeRemote, argv: list[str]) -> bool:
    info = _fact(remote, "storage.Ext4Info", {})[f"device={argv[-1]}"]
    info["features"] = [*info["features"], "mmp"]
    return True


# -- nvmet configfs ---------------------------------------------------------------------------------------


def _nvmet(remote: FakeRemote) -> dict:
    return _fact(remote, "nvmet.NvmetConfig", {"present": True, "subsystems": {}, "ports": {}, "hosts": []})


def _configfs(path: str) -> list[str] | None:
    prefix = NVMET_ROOT + "/"
    return path[len(prefix) :].split("/") if path.startswith(prefix) else None


def _mkdir(remote: FakeRemote, argv: list[str]) -> bool:
    parts = _configfs(argv[-1])
    if parts is None:
        remote._builtin(argv)
        return True
    cfg = _nvmet(remote)
    match parts:
        case ["subsystems", nqn]:
            cfg["subsystems"][nqn] = {"allow_any_host": False, "allowed_hosts": [], "namespaces": {}}
        case ["subsystems", nqn, "namespaces", nsid]:
            cfg["subsystems"][nqn]["namespaces"][nsid] = {"device_path": "", "enable": False}
        case ["ports", pid]:
            cfg["ports"][pid] = {"trtype": "", "traddr": "", "trsvcid": "", "adrfam": "", "subsystems": []}
        case ["hosts", hostnqn]:
            cfg["hosts"] = sorted({*cfg["hosts"], hostnqn})
        case _:
            return False
    return True


def _printf(remote: FakeRemote, argv: list[str]) -> bool:
    if ">" not in argv:
        return True
    path, value = argv[argv.index(">") + 1], argv[2]
    parts = _configfs(path)
    if parts is None:
        if path.startswith("/sys/class/nvme/"):
            return _controller_attribute(remote, path, value)
        if path.startswith("/sys/class/net/") and "/ecn/" in path:
            remote.dcb["ecn"][path.split("/")[6]] = value  # type: ignore[attr-defined]
            return True
        if path.startswith("/etc/nvme/"):
            _fact(remote, "nvme.NvmeHostIdentity", {"hostnqn": None, "hostid": None})[path.rsplit("/", 1)[-1]] = value
        else:
            remote.upload(value + "\n", path)
        return True
    cfg = _nvmet(remote)
    match parts:
        case ["subsystems", nqn, "attr_allow_any_host"]:
            if value == "1" and cfg["subsystems"][nqn]["allowed_hosts"]:
                return False
            cfg["subsystems"][nqn]["allow_any_host"] = value == "1"
        case ["subsystems", nqn, "namespaces", nsid, "device_path"]:
            ns = cfg["subsystems"][nqn]["namespaces"][nsid]
            if ns["enable"]:
                return False  # EBUSY: disable first
            ns["device_path"] = value
        case ["subsystems", nqn, "namespaces", nsid, ("device_uuid" | "device_nguid") as attr]:
            ns = cfg["subsystems"][nqn]["namespaces"][nsid]
            if ns["enable"]:
                return False  # EBUSY: disable first
            ns[attr] = value
        case ["subsystems", nqn, "namespaces", nsid, "enable"]:
            cfg["subsystems"][nqn]["namespaces"][nsid]["enable"] = value == "1"
        case ["ports", pid, attr] if attr.startswith("addr_"):
            port = cfg["ports"][pid]
            if port["subsystems"]:
                return False  # EACCES: disable the port first
            port[attr[len("addr_") :]] = value
        case _:
            return False
    return True


def _ln(remote: FakeRemote, argv: list[str]) -> bool:
    target, link = argv[-2], argv[-1]
    tparts, lparts = _configfs(target), _configfs(link)
    if lparts is None or tparts is None:
        return True
    cfg = _nvmet(remote)
    match lparts:
        case ["subsystems", nqn, "allowed_hosts", hostnqn]:
            if hostnqn not in cfg["hosts"] or tparts != ["hosts", hostnqn]:
                return False
            cfg["subsystems"][nqn]["allowed_hosts"] = sorted({*cfg["subsystems"][nqn]["allowed_hosts"], hostnqn})
        case ["ports", pid, "subsystems", nqn]:
            if nqn not in cfg["subsystems"] or tparts != ["subsystems", nqn]:
                return False
            cfg["ports"][pid]["subsystems"] = sorted({*cfg["ports"][pid]["subsystems"], nqn})
        case _:
            return False
    return True


def _rm(remote: FakeRemote, argv: list[str]) -> bool:
    parts = _configfs(argv[-1])
    if parts is None:
        remote._builtin(argv)
        return True
    cfg = _nvmet(remote)
    match parts:
        case ["subsystems", nqn, "allowed_hosts", hostnqn]:
            cfg["subsystems"][nqn]["allowed_hosts"].remove(hostnqn)
        case ["ports", pid, "subsystems", nqn]:
            cfg["ports"][pid]["subsystems"].remove(nqn)
        case _:
            return False
    return True


def _truncate(remote: FakeRemote, argv: list[str]) -> bool:
    remote.files[argv[-1]] = {"content": "", "size": int(_opt(argv, "-s"))}
    return True


def _mount(remote: FakeRemote, argv: list[str]) -> bool:
    """``mount -o remount,OPTS PATH``: the live options gain OPTS."""
    opts = _opt(argv, "-o").split(",")
    if opts[0] != "remount":
        return False
    current = _fact(remote, "storage.MountedAt", {}).get(f"path={argv[-1]}")
    if current is None:
        return False
    current["options"] = [o for o in current["options"] if o not in ("atime", "relatime", "strictatime")] + opts[1:]
    return True


def _controller_attribute(remote: FakeRemote, path: str, value: str) -> bool:
    """A write to ``/sys/class/nvme/<ctrl>/<attribute>``: the kernel shows it as it would (see nvme_settings)."""
    _, _, _, _, name, attribute = path.split("/")
    for entry in _fact(remote, "nvme.NvmeSubsystems", {}).values():
        for ctrl in entry["controllers"]:
            if ctrl["name"] == name:
                settings = ctrl.setdefault("settings", {})
                if attribute == "ctrl_loss_tmo":
                    delay = int(settings.get("reconnect_delay", "10"))
                    value = "off" if int(value) < 0 else str(-(-int(value) // delay) * delay)
                elif attribute == "fast_io_fail_tmo" and int(value) < 0:
                    value = "off"
                settings[attribute] = value
                return True
    return False


def _sh(remote: FakeRemote, argv: list[str]) -> bool:
    """``sh -c SCRIPT ...``: the I/O policy write of a subsystem by NQN; other scripts (the namespace wait) succeed."""
    if "/iopolicy" not in argv[2]:
        return True
    entry = _fact(remote, "nvme.NvmeSubsystems", {}).get(argv[3])
    if entry is None or argv[4] not in getattr(remote, "iopolicies", ("numa", "round-robin", "queue-depth")):
        return False
    entry["iopolicy"] = argv[4]
    return True


def _dcb(remote: FakeRemote, argv: list[str]) -> bool:
    """``dcb app replace ... dscp-prio D:P ...`` and ``dcb pfc set ... prio-pfc P:on|off ...`` on the NIC's DCB."""
    dcb = remote.dcb  # type: ignore[attr-defined]
    pairs = [word.split(":") for word in argv[6:]]
    if argv[1] == "app":
        dcb["dscp_prio"].update({int(d): int(p) for d, p in pairs})
    else:
        dcb["pfc"].update({int(p): on == "on" for p, on in pairs})
    return True


def _echo(remote: FakeRemote, argv: list[str]) -> bool:
    return argv[-2:] != ["exit", "1"]


EFFECTS = {
    "echo": _echo,
    "nvme": _nvme,
    "sh": _sh,
    "dcb": _dcb,
    "if": _format,
    "mkfs.ext4": _format,
    "systemctl": _systemctl,
    "modprobe": _modprobe,
    "rdma": _rdma,
    "ip": _ip,
    "printf": _printf,
    "tune2fs": _tune2fs,
    "mkdir": _mkdir,
    "ln": _ln,
    "rm": _rm,
    "truncate": _truncate,
    "mount": _mount,
}
