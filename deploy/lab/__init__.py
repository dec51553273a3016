"""kvpod's lab: a virtual pod of QEMU VMs with a real kernel NVMe/RDMA path.

One VM is the NVMe-oF target, the others are inference nodes. Management is SSH over
127.0.0.1 port forwards only (user-mode networking with ``restrict=on``: the VMs have no route out);
the fabric is one tap per VM inside the lab's own network namespace, where a bridge waits for kvpod's
switch driver to join the ports. Entry point: :class:`Lab`.
"""

from .errors import LabError
from .image import ImageInfo, ImageRecipe
from .machines import LabMachine, default_machines
from .manager import Lab, VmStatus
from .network import bridge_ports
from .progress import Progress
from .state import LabState, VmRecord

__all__ = [
    "ImageInfo",
    "ImageRecipe",
    "Lab",
    "LabError",
    "LabMachine",
    "LabState",
    "Progress",
    "VmRecord",
    "VmStatus",
    "bridge_ports",
    "default_machines",
]
