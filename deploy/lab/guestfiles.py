"""Files the lab writes into the VM image, besides what the Debian packages install.

They make a freshly installed-looking server that the lab can manage: eth0 (management) from the
kernel command line, eth1 (the fabric NIC) left unconfigured, no timers or NVMe autoconnect that
would change the machine behind kvpod's back.
"""

from __future__ import annotations

# Modules the initramfs needs to mount a virtio root disk; everything else loads from the root fs.
INITRAMFS_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic")

# Units that would act on their own on a lab VM; masked so the product is the only actor.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "systemd-timesyncd.service",
    "nvmefc-boot-connections.service",
    "nvmf-autoconnect.service",
)

ENABLED_UNITS: tuple[str, ...] = ("kvpod-lab-net.service", "systemd-networkd.service", "ssh.service")

# Files removed from the image: each VM must create its own.
REMOVED_FILES: tuple[str, ...] = ("etc/nvme/hostnqn", "etc/nvme/hostid")

MGMT_NET_SCRIPT = """\
#!/bin/sh
# kvpod lab: hostname and management NIC (eth0) from the kernel command line.
#   kvpod.hostname=NAME   kvpod.ip=ADDR/PREFIX (default: DHCP from the VM's user-mode network)
# The fabric NIC (eth1) is deliberately left unconfigured.
arg() { tr ' ' '\\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
hn=$(arg kvpod.hostname)
ip=$(arg kvpod.ip)
if [ -n "$hn" ]; then
    echo "$hn" >/etc/hostname
    hostname "$hn"
    sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts
    printf '127.0.1.1\\t%s\\n' "$hn" >>/etc/hosts
fi
mkdir -p /run/systemd/network
if [ -n "$ip" ]; then address="Address=$ip"; else address="DHCP=ipv4"; fi
printf '[Match]\\nName=eth0\\n\\n[Network]\\n%s\\nLinkLocalAddressing=no\\nIPv6AcceptRA=no\\n' "$address" \\
    >/run/systemd/network/10-eth0.network
"""

MGMT_NET_UNIT = """\
[Unit]
Description=kvpod lab: hostname and management network from the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kvpod-lab-net

[Install]
WantedBy=sysinit.target
"""

SERIAL_AUTOLOGIN_DROPIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200 %I $TERM
"""

FSTAB = "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vda / ext4 rw,relatime 0 1\n"

HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

RESOLV_CONF = "# kvpod lab: VMs have no route out and no name server\n"

INITRAMFS_CONF = "# kvpod lab: a small initramfs boots much faster under emulation\nMODULES=list\n"


def guest_files(authorized_key: str) -> dict[str, tuple[str, int]]:
    """Files to write into the image: path relative to its root -> (content, mode)."""
    return {
        "usr/local/sbin/kvpod-lab-net": (MGMT_NET_SCRIPT, 0o755),
        "etc/systemd/system/kvpod-lab-net.service": (MGMT_NET_UNIT, 0o644),
        "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": (SERIAL_AUTOLOGIN_DROPIN, 0o644),
        "etc/fstab": (FSTAB, 0o644),
        "etc/hosts": (HOSTS, 0o644),
        "etc/hostname": ("localhost\n", 0o644),
        "etc/resolv.conf": (RESOLV_CONF, 0o644),
        "etc/machine-id": ("", 0o444),
        "root/.ssh/authorized_keys": (authorized_key.strip() + "\n", 0o600),
    }


def initramfs_hook() -> str:
    """A shell hook run in the new root before the kernel is installed: configure a small initramfs."""
    modules = "\\n".join(INITRAMFS_MODULES)
    return (
        'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && '
        f"printf '{INITRAMFS_CONF.replace(chr(10), chr(92) + 'n')}' "
        '> "$1/etc/initramfs-tools/conf.d/kvpod-lab.conf" && '
        f"printf '{modules}\\n' > \"$1/usr/share/initramfs-tools/modules.d/kvpod-lab.conf\""
    )
