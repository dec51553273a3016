"""kvpod's own shell scripts, recognised by their whole text: their effects are known (:mod:`deploy.facts.effects`)
though a shell runs them. Any other text, an argument added, a command chained on, is not recognised."""

from __future__ import annotations

import re
import shlex

_NQN_TEST = r'\[ "\$\(cat "\$s/subsysnqn" 2>/dev/null\)" = "\$0" \] \|\| continue; '
# kvpod's own scripts over the NVMe subsystems in sysfs (deploy/operations/nvme.py): the wait for a namespace to
# appear (it writes nothing) and the write of a subsystem's I/O policy; with their arguments after ``sh -c``
NVME_SCRIPTS = (
    re.compile(
        r"for i in \$\(seq \d+\); do for s in /sys/class/nvme-subsystem/nvme-subsys\*; do "
        + _NQN_TEST
        + r'for n in "\$s"/nvme\*n\* "\$s"/nvme\*/nvme\*n\*; do \[ -e "\$n" \] && exit 0; done; done; sleep 1; done; '
        r'echo "[^"]*" >&2; exit 1'
    ),
    re.compile(
        r"for s in /sys/class/nvme-subsystem/nvme-subsys\*; do "
        + _NQN_TEST
        + r"printf '%s\\n' \"\$1\" > \"\$s/iopolicy\" && exit 0; "
        r'echo "[^"]*" >&2; exit 1; done; echo "[^"]*" >&2; exit 1'
    ),
)
_GUARDED_MKFS = re.compile(
    r"if blkid -p (/\S+) >/dev/null 2>&1; \[ \$\? -eq 2 \]; then mkfs\.ext4 [^;&|`$\n]*; "
    r"else echo '[^']*' >&2; exit 1; fi"
)


def guarded_mkfs_device(command: str) -> str | None:
    """The device of kvpod's blank-checked ``mkfs.ext4`` (it formats only a device without a signature), else None."""
    guarded = _GUARDED_MKFS.fullmatch(command)
    return guarded.group(1) if guarded else None


def is_nvme_script(command: str) -> bool:
    """Whether ``command`` is ``sh -c`` of one of kvpod's NVMe scripts with its arguments, every word quoted."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    plain = shlex.join(argv) == command  # every word quoted: nothing else for the shell to run
    return len(argv) > 2 and argv[1] == "-c" and plain and any(s.fullmatch(argv[2]) for s in NVME_SCRIPTS)
