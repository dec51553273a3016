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

from deploy.facts.nvme import NvmeSubsystems
from deploy.facts.snapshot import NamespaceReads, Read
from deploy.facts.storage import MountedAt
from deploy.hostdata import host_data
from deploy.names import CONNECT_UNIT, GIB, SYSTEMD_DIR, VLLM_UNITS_PATTERN
from deploy.operations import storage
from deploy.operations.bundle_steps import (
    role_steps,
)
from deploy.operations.reads import Reads, file_reads
from deploy.operations.steps import (
    Effect,
    Results,
    Steps,
    after,
    directory_step,
    path_effect,
    reads_of,
    reload_step,
    run_steps,
    service_step,
    step,
)
from deploy.operations.storage import mount_unit_name
from deploy.plan import NodePlan
from roles._common import service_user_step, template

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


def steps(plan: NodePlan, wipe: bool = False) -> Steps:
    """ext4 on the namespace (only when blank; recreated with ``wipe``), its mount unit, mounted now, owned by the
    vLLM user."""
    ns, mnt, user = plan.namespace, plan.mount, plan.vllm.user
    fs_uuid = filesystem_uuid(ns.subsystem_nqn, ns.nsid)
    where = {"subnqn": ns.subsystem_nqn, "nsid": ns.nsid}
    device = [Read.of(NvmeSubsystems), NamespaceReads(ns.subsystem_nqn, ns.nsid)]
    unit = mount_unit_name(mnt.path)
    return [
        service_user_step(user),
        step(
            storage.ext4,
            device,
            effects=[Effect("device", ns.subsystem_nqn)],
            name=f"ext4 on {ns.subsystem_nqn}",
            label=mnt.label,
            wipe=wipe,
            fs_uuid=fs_uuid,
            min_size_bytes=int(mnt.disk_budget_gb * GIB),
            stop_before_wipe=[VLLM_UNITS_PATTERN, unit],
            **where,
        ),
        directory_step(f"mount point {mnt.path}", mnt.path),
        step(
            storage.mount_unit,
            [*device, *file_reads(f"{SYSTEMD_DIR}/{unit}")],
            keep="unit",
            effects=[path_effect(f"{SYSTEMD_DIR}/{unit}")],
            name=f"{unit}",
            path=mnt.path,
            template=template("kv_mount", "kvcache.mount.j2"),
            fs_uuid=fs_uuid,
            variables={"options": mount_option_list(mnt.options), "connect_unit": CONNECT_UNIT},
            **where,
        ),
        reload_step(when=after("unit")),
        step(
            storage.mounted,
            [*device, Read.of(MountedAt, path=mnt.path)],
            effects=[Effect("unit", unit), path_effect(mnt.path)],
            name=f"{mnt.path} mounted",
            path=mnt.path,
            options=mnt.options,
            **where,
        ),
        service_step(f"{unit} enabled", unit, enabled=True, running=False),
        directory_step(f"{mnt.path} owned by {user}", mnt.path, user=user, group=user),
    ]


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("kv mount")
def kv_mount(results: Results | None = None) -> None:
    """ext4 on the namespace (only when blank), its mount unit, mounted now, owned by the vLLM user (``results``:
    the node's, after its bundle)."""
    run_steps(*role_steps(steps(host_data().node, wipe=host_data().wipe), results))
