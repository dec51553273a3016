"""Block-device facts: filesystem signature (blkid), what is mounted at a path (findmnt), ext4 geometry (dumpe2fs)."""

from __future__ import annotations

import re

from pyinfra.api import FactBase, QuoteString, StringCommand

_PAIR = re.compile(r'([A-Z_:]+)="((?:[^"\\]|\\.)*)"')


class BlockSignature(FactBase[dict[str, str] | None]):
    """
    What ``blkid -p`` (low-level probe, no cache) finds on a block device. ``None`` only when blkid says the
    device holds no signature at all (exit code 2): that is the one answer that allows a mkfs. Anything
    else, including no answer, is a dict; problems carry ``ERROR`` so callers refuse instead of guessing.

    .. code:: python

        {"TYPE": "ext4", "UUID": "6f1c...", "LABEL": "kvcache", "USAGE": "filesystem", ...}
        None                                            # blank
        {"ERROR": "ambivalent probe result (several signatures)"}
    """

    def command(self, device: str) -> StringCommand:
        dev = QuoteString(device)
        return StringCommand(
            "if [ -b",
            dev,
            "]; then blkid -p -o export",
            dev,
            '2>/dev/null; echo "KVPOD_BLKID_RC=$?";',
            "else echo KVPOD_BLKID_RC=nodev; fi",
        )

    @staticmethod
    def default() -> dict[str, str]:
        return {"ERROR": "no answer from blkid"}

    def process(self, output: list[str]) -> dict[str, str] | None:
        tags: dict[str, str] = {}
        rc = None
        for line in output:
            key, sep, value = line.strip().partition("=")
            if not sep:
                continue
            if key == "KVPOD_BLKID_RC":
                rc = value
            else:
                tags[key] = value
        if rc == "2" and not tags:
            return None
        if rc == "0":
            return tags
        reasons = {
            None: "no answer from blkid",
            "nodev": "not a block device",
            "8": "ambivalent probe result (several signatures)",
        }
        tags["ERROR"] = reasons.get(rc, f"blkid failed (exit code {rc})")
        return tags


class MountedAt(FactBase[dict | None]):
    """
    The filesystem mounted at ``path`` (the top one when stacked), with its source resolved to the kernel
    device name; None when nothing is mounted there.

    .. code:: python

        {"source": "/dev/nvme1n1", "fstype": "ext4", "options": ["rw", "noatime"], "device": "nvme1n1"}
    """

    def command(self, path: str) -> StringCommand:
        p = QuoteString(path)
        return StringCommand(
            "findmnt -n -P -o SOURCE,FSTYPE,OPTIONS --mountpoint",
            p,
            "2>/dev/null | tail -n 1;",
            "src=$(findmnt -n -o SOURCE --mountpoint",
            p,
            "2>/dev/null | tail -n 1);",
            'case "$src" in /dev/*) printf \'KERNEL="%s"\\n\' "$(basename "$(readlink -f "$src")")";; esac;',
            "true",
        )

    def process(self, output: list[str]) -> dict | None:
        values: dict[str, str] = {}
        for line in output:
            for key, value in _PAIR.findall(line):
                values[key] = value.encode().decode("unicode_escape") if "\\" in value else value
        if "SOURCE" not in values:
            return None
        return {
            "source": values["SOURCE"],
            "fstype": values.get("FSTYPE", ""),
            "options": [o for o in values.get("OPTIONS", "").split(",") if o],
            "device": values.get("KERNEL") or None,
        }


class Ext4Info(FactBase[dict | None]):
    """
    ext4 superblock of a device (``dumpe2fs -h``): size = block count x block size, features (check ``mmp``).
    None when the device holds no ext2/3/4 filesystem.

    .. code:: python

        {"uuid": "6f1c...", "label": "kvcache", "block_count": 488281, "block_size": 4096,
         "size": 1999998976, "features": ["has_journal", "extent", "mmp", ...]}
    """

    def command(self, device: str) -> StringCommand:
        return StringCommand("dumpe2fs -h", QuoteString(device), "2>/dev/null || true")

    def process(self, output: list[str]) -> dict | None:
        fields: dict[str, str] = {}
        for line in output:
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        try:
            count, size = int(fields["Block count"]), int(fields["Block size"])
        except (KeyError, ValueError):
            return None
        label = fields.get("Filesystem volume name", "")
        return {
            "uuid": fields.get("Filesystem UUID"),
            "label": None if label in ("", "<none>") else label,
            "block_count": count,
            "block_size": size,
            "size": count * size,
            "features": fields.get("Filesystem features", "").split(),
        }
