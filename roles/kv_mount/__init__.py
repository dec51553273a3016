"""Role ``kv mount``: the node's namespace formatted (only when blank) and mounted as the KV-cache disk tier.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``namespace`` (``subsystem_nqn``, ``nsid``),
``mount`` (``path``, ``options``, ``label``, ``disk_budget_gb``) and ``vllm.user``; and
``host.data.kvpod_wipe`` (True only when the user named this node's drive for reformatting).

- The block device is found by subsystem NQN in sysfs; when the namespace is not connected (a first
  ``--dry`` run) the role fails with a clear message instead of guessing.
- ext4 with multi-mount protection (``mkfs.ext4 -q -m 0 -O mmp -L <label> -U <uuid>``) only on a blank
  device; an existing ext4 is kept; anything else is refused; ``kvpod_wipe`` recreates it (a mounted one
  after stopping vLLM and the mount unit; both are started again further on). A new filesystem gets a UUID
  derived from the subsystem NQN, so the mount unit can name it before it exists (a dry run shows the exact
  unit).
- A device or filesystem smaller than ``disk_budget_gb`` (GiB, as LMCache counts) is refused.
- ``<escaped path>.mount`` (``mnt-kvcache.mount``): ``What=/dev/disk/by-uuid/<uuid>`` -- the UUID names this
  filesystem only, whereas the label (``kvcache``) is the same on every node's drive and would be ambiguous
  if a second namespace ever showed up on the host; ``Options=<options>,_netdev,nofail``;
  ``Requires=``/``After=kvpod-nvme-connect.service``; enabled (``remote-fs.target``) and started now unless
  mounted. Something else mounted there is refused, never mounted over.
- The system user ``vllm.user`` exists (also ensured by the vllm role) and owns the mounted filesystem's root.
"""

from __future__ import annotations

import uuid

from pyinfra.api import deploy
from pyinfra.operations import files

from deploy.facts.nvme import NvmeSubsystems
from deploy.facts.snapshot import NamespaceReads, Read
from deploy.facts.storage import MountedAt
from deploy.facts.users import PasswdEntry
from deploy.hostdata import host_data
from deploy.names import CONNECT_UNIT, GIB, VLLM_UNITS_PATTERN
from deploy.operations import changed, storage, units
from deploy.operations.reads import Reads, directory_reads, file_reads, unit_reads
from deploy.operations.storage import mount_unit_name
from deploy.plan import NodePlan
from roles._common import service_user, template

FS_UUID_NAMESPACE = uuid.UUID("5b0b8a52-3f7e-4b8e-9a57-6b7670640001")


def filesystem_uuid(subnqn: str, nsid: int) -> str:
    """The UUID a new filesystem on this namespace gets (stable: derived from NQN and NSID)."""
    return str(uuid.uuid5(FS_UUID_NAMESPACE, f"{subnqn}/{nsid}"))


def mount_option_list(options: list[str]) -> list[str]:
    """The plan's options plus ``_netdev`` (network storage) and ``nofail`` (boot goes on without it)."""
    return list(dict.fromkeys([*options, "_netdev", "nofail"]))


def mount_options(options: list[str]) -> str:
    """:func:`mount_option_list` as the comma-separated ``Options=`` text."""
    return ",".join(mount_option_list(options))


def reads(plan: NodePlan) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    ns, mnt = plan.namespace, plan.mount
    return [
        Read.of(PasswdEntry, user=plan.vllm.user),
        Read.of(NvmeSubsystems),
        NamespaceReads(ns.subsystem_nqn, ns.nsid),  # type: ignore[list-item]
        *directory_reads(mnt.path),
        *file_reads(f"/etc/systemd/system/{mount_unit_name(mnt.path)}"),
        Read.of(MountedAt, path=mnt.path),
        *unit_reads(mount_unit_name(mnt.path)),
    ]


@deploy("kv mount")
def kv_mount() -> None:
    """ext4 on the namespace (only when blank), its mount unit, mounted now, owned by the vLLM user."""
    plan = host_data().node
    ns, mnt, user = plan.namespace, plan.mount, plan.vllm.user
    fs_uuid = filesystem_uuid(ns.subsystem_nqn, ns.nsid)
    where = {"subnqn": ns.subsystem_nqn, "nsid": ns.nsid}

    service_user(user)
    storage.ext4(
        name=f"ext4 on {ns.subsystem_nqn}",
        label=mnt.label,
        wipe=host_data().wipe,
        fs_uuid=fs_uuid,
        min_size_bytes=int(mnt.disk_budget_gb * GIB),
        stop_before_wipe=[VLLM_UNITS_PATTERN, mount_unit_name(mnt.path)],
        **where,
    )
    files.directory(name=f"mount point {mnt.path}", path=mnt.path)
    unit = storage.mount_unit(
        name=f"{mount_unit_name(mnt.path)}",
        path=mnt.path,
        template=template("kv_mount", "kvcache.mount.j2"),
        fs_uuid=fs_uuid,
        variables={"options": mount_option_list(mnt.options), "connect_unit": CONNECT_UNIT},
        **where,
    )
    units.daemon_reload(name="systemd daemon-reload", when=changed(unit))
    storage.mounted(name=f"{mnt.path} mounted", path=mnt.path, options=mnt.options, **where)
    units.service(
        name=f"{mount_unit_name(mnt.path)} enabled", unit=mount_unit_name(mnt.path), enabled=True, running=False
    )
    files.directory(name=f"{mnt.path} owned by {user}", path=mnt.path, user=user, group=user)
