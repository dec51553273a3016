"""How much of a namespace ext4 leaves for data: an estimate used to validate disk budgets.

The estimate follows mke2fs defaults for a 4 KiB-block ext4 made by kvpod (``-m 0``: no reserved
blocks): one 256-byte inode per 16 KiB (1.5625 %), the default journal size for the filesystem size
(e2fsprogs ``ext2fs_default_journal_size``), and 1 % for bitmaps, group descriptors and the resize
inode. The live check on the node (kv_mount role) uses the real filesystem size.

Units: drive capacities are decimal gigabytes (``GB``, 10^9 bytes), as drives are sold and as the spec's
``capacity_gb`` states them. Every memory and cache size (LMCache's tiers, GPU memory, KV per session) is in
gibibytes (``GIB``, 2^30 bytes): LMCache 0.5.6 multiplies ``max_local_cpu_size`` and ``max_local_disk_size``
by ``1024**3``, so kvpod counts budgets the same way.
"""

from __future__ import annotations

from deploy.names import GB, GIB

BLOCK = 4096


def default_journal_blocks(blocks: int) -> int:
    """Journal size in 4 KiB blocks that mke2fs picks for a filesystem of ``blocks`` blocks."""
    for limit, journal in (
        (2048, 0),
        (32768, 1024),
        (256 * 1024, 4096),
        (512 * 1024, 8192),
        (4096 * 1024, 16384),
        (8192 * 1024, 32768),
        (16384 * 1024, 65536),
        (32768 * 1024, 131072),
    ):
        if blocks < limit:
            return journal
    return 262144


def ext4_usable_bytes(device_bytes: int) -> int:
    """Bytes available to files on a fresh ext4 of ``device_bytes`` (an estimate, see module doc)."""
    blocks = device_bytes // BLOCK
    inode_tables = device_bytes // 16384 * 256
    journal = default_journal_blocks(blocks) * BLOCK
    metadata = device_bytes // 100
    return max(0, device_bytes - inode_tables - journal - metadata)


def ext4_usable_gib(capacity_gb: float) -> float:
    """GiB available to files on a fresh ext4 made on a drive of ``capacity_gb`` decimal GB."""
    return ext4_usable_bytes(int(capacity_gb * GB)) / GIB
