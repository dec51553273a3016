"""A hostile corpus: small edits of the lab spec that an attacker or a careless operator would make. Each is
refused before any host is touched, naming the field and what is wrong; unusual but legal values still pass."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import yaml
from pydantic import Field, ValidationError
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.names import CONNECT_SCRIPT, KVPOD_ETC, NVMET_ROOT, WHEELHOUSE_DEST
from deploy.podlock import lock_path
from deploy.spec import Strict
from deploy.spec_types import SYSTEM_TREES, inside
from tests.conftest import LAB

BASE = yaml.safe_load(LAB.read_text())
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
ENC = "enclosures[0]"
PORT = "enclosures[0].ioms[0].ports[0]"
GEN = "nodes.generate"
NODE1 = "nodes.overrides.node1"


def edit(data: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in ``data`` (list indices as numbers)."""
    *parents, last = dotted.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def spec(*edits: tuple[str, Any]) -> dict:
    data = copy.deepcopy(BASE)
    for dotted, value in edits:
        edit(data, dotted, value)
    return data


def drives(*paths: str, nqns: tuple[str | None, ...] = ()) -> list[dict]:
    """An explicit drive list with these device paths (and NQNs)."""
    out = []
    for i, path in enumerate(paths, start=1):
        drive = {"slot": i, "capacity_gb": 2, "device_path": path}
        if i <= len(nqns) and nqns[i - 1]:
            drive["nqn"] = nqns[i - 1]
        out.append(drive)
    return out


def second_enclosure(port: int = 2201, **fields: Any) -> dict:
    """A second linux-nvmet enclosure; on the lab target's server unless ``port`` says otherwise."""
    enc = copy.deepcopy(BASE["enclosures"][0])
    enc["name"] = "shelf2"
    enc["management"]["ssh"]["port"] = port
    enc["ioms"] = [{"name": "iom-a", "ports": [{"name": "p1", "interface": "eth2", "rdma": "soft-roce"}]}]
    enc.update(fields)
    return enc


def no_install(*edits: tuple[str, Any]) -> dict:
    data = spec(*edits)
    del data["vllm"]["install"]
    return data


LONG_NQN = "nqn.2024-01.com.example:" + "a" * 200


def per_node(interface: str) -> dict:
    """The lab pod with a VLAN per node from 4090 and this fabric interface."""
    data = spec(("nodes.generate.fabric_interface", interface), ("switches.0.routed", True))
    data["fabric"].update(vlan_mode="per-node", node_vlans={"start": 4090, "end": 4094}, node_subnets="10.79.0.0/24")
    return data


# (case id, spec, field path, fragment of the message)
HOSTILE = [
    (
        "lmcache-not-plain-data",
        spec(("kvcache.lmcache_extra", {"extra_config": {"when": datetime.date(2024, 1, 1)}})),
        "kvcache.lmcache_extra",
        "['extra_config']['when']: date is not plain data",
    ),
    (
        "lmcache-nested-int-key",
        spec(("kvcache.lmcache_extra", {"extra_config": {"k": {1: "x"}}})),
        "kvcache.lmcache_extra",
        "['extra_config']['k'][1]: a key must be a string",
    ),
    (
        "ifname-per-node-vlan-suffix",
        per_node("abcdefghijk"),
        f"{GEN}.fabric_interface",
        "its VLAN interface abcdefghijk.4090 is 16 bytes",
    ),
    (
        "ifname-override-vlan-suffix",
        spec(("nodes.overrides", {"node2": {"fabric_interface": "abcdefghijkl"}})),
        "nodes.overrides.node2.fabric_interface",
        "its VLAN interface abcdefghijkl.100 is 16 bytes",
    ),
    # NQNs: the NVMe grammar, its length, no '/', no blanks, no shell
    (
        "nqn-command",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:$(reboot)"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-quote",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:a'b"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-blank",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:a b"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-slash",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:a/b"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-dotdot",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:.."}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-walks-out",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:x/../../../etc"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-case-close",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:a)"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "nqn-too-long",
        spec(("nodes.overrides", {"node1": {"host_nqn": LONG_NQN}})),
        f"{NODE1}.host_nqn",
        "224 bytes (at most 223)",
    ),
    (
        "nqn-bad-uuid-form",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2014-08.org.nvmexpress:uuid:x"}})),
        f"{NODE1}.host_nqn",
        "the UUID form",
    ),
    (
        "nqn-month-13",
        spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-13.com.example:a"}})),
        f"{NODE1}.host_nqn",
        "malformed NQN",
    ),
    (
        "drive-nqn-command",
        spec(
            (
                "enclosures.0.drives",
                drives("/srv/nvmet/d1.img", "/srv/nvmet/d2.img", nqns=("nqn.2024-01.io.kvpod:`id`",)),
            )
        ),
        f"{ENC}.drives[0].nqn",
        "malformed NQN",
    ),
    (
        "prefix-command",
        spec(("enclosures.0.nqn_prefix", "nqn.2024-01.io.kvpod;reboot")),
        f"{ENC}.nqn_prefix",
        "malformed NQN prefix",
    ),
    (
        "prefix-colon",
        spec(("enclosures.0.nqn_prefix", "nqn.2024-01.io.kvpod:x")),
        f"{ENC}.nqn_prefix",
        "the prefix is the part before ':'",
    ),
    (
        "prefix-slash",
        spec(("enclosures.0.nqn_prefix", "nqn.2024-01.io/kvpod")),
        f"{ENC}.nqn_prefix",
        "malformed NQN prefix",
    ),
    (
        "prefix-makes-long-nqns",
        spec(("enclosures.0.nqn_prefix", "nqn.2024-01.com." + "a" * 200)),
        f"{ENC}.nqn_prefix",
        "NQN is 231 bytes (at most 223)",
    ),
    # device paths
    (
        "pattern-no-slot",
        spec(("enclosures.0.drives.device_path_pattern", "/srv/nvmet/drive.img")),
        f"{ENC}.drives.device_path_pattern",
        "has no {slot}: every drive would get the same path",
    ),
    (
        "pattern-relative",
        spec(("enclosures.0.drives.device_path_pattern", "srv/drive{slot}.img")),
        f"{ENC}.drives.device_path_pattern",
        "not an absolute path",
    ),
    (
        "pattern-dotdot",
        spec(("enclosures.0.drives.device_path_pattern", "/srv/nvmet/../../etc/d{slot}")),
        f"{ENC}.drives.device_path_pattern",
        "'..' component",
    ),
    (
        "pattern-in-etc",
        spec(("enclosures.0.drives.device_path_pattern", "/etc/nvmet/drive{slot}.img")),
        f"{ENC}.drives.device_path_pattern",
        "inside the system directory /etc",
    ),
    (
        "pattern-command",
        spec(("enclosures.0.drives.device_path_pattern", "/srv/$(reboot){slot}.img")),
        f"{ENC}.drives.device_path_pattern",
        "character '$'",
    ),
    (
        "pattern-blank",
        spec(("enclosures.0.drives.device_path_pattern", "/srv/nvmet/drive {slot}.img")),
        f"{ENC}.drives.device_path_pattern",
        "character ' '",
    ),
    (
        "device-boot",
        spec(("enclosures.0.drives", drives("/boot/vmlinuz", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "inside the system directory /boot",
    ),
    (
        "device-dev-dotdot",
        spec(("enclosures.0.drives", drives("/dev/../etc/shadow", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "'..' component",
    ),
    (
        "device-double-slash",
        spec(("enclosures.0.drives", drives("/srv//nvmet/d1", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "empty component",
    ),
    (
        "device-proc",
        spec(("enclosures.0.drives", drives("/proc/kcore", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "inside the system directory /proc",
    ),
    (
        "device-sys",
        spec(("enclosures.0.drives", drives("/sys/block/sda", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "inside the system directory /sys",
    ),
    (
        "device-backtick",
        spec(("enclosures.0.drives", drives("/dev/nvme0n1`id`", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "character '`'",
    ),
    (
        "device-relative",
        spec(("enclosures.0.drives", drives("nvme0n1", "/srv/nvmet/d2.img"))),
        f"{ENC}.drives[0].device_path",
        "not an absolute path",
    ),
    (
        "device-twice",
        spec(("enclosures.0.drives", drives("/srv/nvmet/d1.img", "/srv/nvmet/d1.img"))),
        f"{ENC}.drives[1].device_path",
        "also backing enclosures[0].drives[0].device_path on the same target server",
    ),
    (
        "device-twice-on-one-server",
        spec(("enclosures", [BASE["enclosures"][0], second_enclosure()])),
        "enclosures[1].drives",
        "also backing enclosures[0].drives on the same target server",
    ),
    (
        "nqn-twice-on-one-server",
        spec(
            (
                "enclosures",
                [
                    {
                        **BASE["enclosures"][0],
                        "drives": drives("/srv/nvmet/a1", "/srv/nvmet/a2", nqns=("nqn.2024-01.io.kvpod:same",)),
                    },
                    second_enclosure(drives=drives("/srv/nvmet/b1", nqns=("nqn.2024-01.io.kvpod:same",))),
                ],
            )
        ),
        "enclosures[1].drives[0].nqn",
        "subsystem NQN nqn.2024-01.io.kvpod:same is also used by enclosures[0]",
    ),
    # control characters, anywhere
    (
        "extra-arg-newline",
        spec(("vllm.extra_args", ["--enforce-eager\n", "ExecStartPre=+/bin/sh -c id"])),
        "vllm.extra_args[0]",
        "control character U+000A at position 15",
    ),
    ("extra-arg-tab", spec(("vllm.extra_args", ["--a\tb"])), "vllm.extra_args[0]", "control character U+0009"),
    ("model-newline", spec(("vllm.model", "meta-llama/Llama-3.1-8B-Instruct\n")), "vllm.model", "U+000A"),
    ("model-del", spec(("vllm.model", "meta-llama/x\x7f")), "vllm.model", "U+007F"),
    ("executable-newline", no_install(("vllm.executable", "/usr/bin/vllm\n")), "vllm.executable", "U+000A"),
    ("user-newline", spec(("vllm.user", "vllm\n")), "vllm.user", "U+000A"),
    (
        "mount-option-newline",
        spec(("kvcache.mount_options", ["noatime", "x\ny"])),
        "kvcache.mount_options[1]",
        "U+000A",
    ),
    (
        "lmcache-value-newline",
        spec(("kvcache.lmcache_extra", {"local_disk": "a\nb"})),
        "kvcache.lmcache_extra",
        "['local_disk']: control character U+000A",
    ),
    (
        "lmcache-nested-separator",
        spec(("kvcache.lmcache_extra", {"extra_config": {"k": ["ok", "b\u2028"]}})),
        "kvcache.lmcache_extra",
        "['extra_config']['k'][1]: control character U+2028",
    ),
    (
        "lmcache-key-newline",
        spec(("kvcache.lmcache_extra", {"a\nb": 1})),
        "kvcache.lmcache_extra",
        "(key): control character U+000A",
    ),
    ("override-key-newline", spec(("nodes.overrides", {"node1\n": {}})), "nodes.overrides", "(key): control"),
    (
        "ssh-user-proxycommand",
        spec(("nodes.generate.ssh_user", "root\nProxyCommand sh -c id")),
        f"{GEN}.ssh_user",
        "U+000A",
    ),
    ("ssh-key-newline", spec(("nodes.generate.ssh_key", "/tmp/k\nProxyCommand id")), f"{GEN}.ssh_key", "U+000A"),
    (
        "known-hosts-nul",
        spec(("nodes.generate.ssh_known_hosts_file", "/tmp/kh\x00")),
        f"{GEN}.ssh_known_hosts_file",
        "U+0000",
    ),
    (
        "index-url-c1",
        spec(("vllm.install.index_url", "https://pypi.org/simple\x85")),
        "vllm.install.index_url",
        "U+0085",
    ),
    ("netns-paragraph-separator", spec(("switches.0.netns", "lab\u2029")), "switches[0].netns", "U+2029"),
    (
        "switch-ref-carriage-return",
        spec(("enclosures.0.ioms.0.ports.0.switch", "fabric\r")),
        f"{PORT}.switch",
        "U+000D",
    ),
    # mount points and install places
    ("mount-etc", spec(("kvcache.path", "/etc")), "kvcache.path", "inside the system directory /etc"),
    ("mount-boot", spec(("kvcache.path", "/boot/kv")), "kvcache.path", "inside the system directory /boot"),
    ("mount-usr", spec(("kvcache.path", "/usr/local/kv")), "kvcache.path", "inside the system directory /usr"),
    ("mount-var-lib", spec(("kvcache.path", "/var/lib")), "kvcache.path", "holds the system directory /var/lib/kvpod"),
    (
        "mount-lock-dir",
        spec(("kvcache.path", "/var/lib/kvpod/lock")),
        "kvcache.path",
        "inside the system directory /var/lib/kvpod",
    ),
    (
        "mount-mnt-dotdot",
        spec(("kvcache.path", "/mnt/..")),
        "kvcache.path",
        "'..' component (write the path it means: /)",
    ),
    ("mount-root", spec(("kvcache.path", "/")), "kvcache.path", "holds the system directory"),
    ("mount-mnt", spec(("kvcache.path", "/mnt")), "kvcache.path", "holds other directories"),
    ("mount-relative", spec(("kvcache.path", "mnt/kvcache")), "kvcache.path", "not an absolute path"),
    ("mount-trailing-slash", spec(("kvcache.path", "/mnt/kvcache/")), "kvcache.path", "trailing '/'"),
    ("mount-is-venv", spec(("kvcache.path", "/opt/kvpod/vllm")), "kvcache.path", "overlaps vllm.install.venv"),
    ("mount-holds-venv", spec(("kvcache.path", "/opt/kvpod")), "kvcache.path", "overlaps vllm.install.venv"),
    ("venv-root", spec(("vllm.install.venv", "/")), "vllm.install.venv", "holds the system directory"),
    ("venv-usr", spec(("vllm.install.venv", "/usr")), "vllm.install.venv", "inside the system directory /usr"),
    ("executable-relative", no_install(("vllm.executable", "vllm")), "vllm.executable", "not an absolute path"),
    (
        "executable-in-mount",
        no_install(("vllm.executable", "/mnt/kvcache/bin/vllm")),
        "vllm.executable",
        "inside the KV-cache mount /mnt/kvcache",
    ),
    ("python-relative", spec(("vllm.install.python", "python3")), "vllm.install.python", "not an absolute path"),
    (
        "python-in-venv",
        spec(("vllm.install.python", "/opt/kvpod/vllm/bin/python3")),
        "vllm.install.python",
        "inside the environment /opt/kvpod/vllm",
    ),
    (
        "ssh-key-quote",
        spec(("nodes.generate.ssh_key", '/tmp/a" ProxyCommand "id')),
        f"{GEN}.ssh_key",
        "cannot be written in an ssh_config",
    ),
    ("ssh-key-tilde-user", spec(("nodes.generate.ssh_key", "~other/.ssh/id")), f"{GEN}.ssh_key", "only ~/"),
    (
        "known-hosts-empty",
        spec(("nodes.generate.ssh_known_hosts_file", "")),
        f"{GEN}.ssh_known_hosts_file",
        "empty path",
    ),
    (
        "target-key-quote",
        spec(("enclosures.0.management.ssh.key", 'k"')),
        f"{ENC}.management.ssh.key",
        "cannot be written in an ssh_config",
    ),
    # names and bounds
    ("service-user-root", spec(("vllm.user", "root")), "vllm.user", "does not run as root"),
    ("service-user-blank", spec(("vllm.user", "v llm")), "vllm.user", "not a portable user name"),
    ("service-user-upper", spec(("vllm.user", "Vllm")), "vllm.user", "not a portable user name"),
    ("service-user-long", spec(("vllm.user", "v" * 33)), "vllm.user", "at most 32 characters"),
    ("login-user-shell", spec(("nodes.generate.ssh_user", "root;id")), f"{GEN}.ssh_user", "not a portable user name"),
    (
        "login-user-option",
        spec(("enclosures.0.management.ssh.user", "-oProxyCommand=id")),
        f"{ENC}.management.ssh.user",
        "not a portable user name",
    ),
    (
        "ifname-colon",
        spec(("nodes.generate.fabric_interface", "eth1:0")),
        f"{GEN}.fabric_interface",
        "not a Linux interface name",
    ),
    (
        "ifname-slash",
        spec(("nodes.generate.fabric_interface", "eth/1")),
        f"{GEN}.fabric_interface",
        "not a Linux interface name",
    ),
    (
        "ifname-dotdot",
        spec(("nodes.generate.fabric_interface", "..")),
        f"{GEN}.fabric_interface",
        "not a Linux interface name",
    ),
    ("ifname-16", spec(("nodes.generate.fabric_interface", "a" * 16)), f"{GEN}.fabric_interface", "16 bytes"),
    (
        "ifname-vlan-suffix",
        spec(("nodes.generate.fabric_interface", "abcdefghijkl")),
        f"{GEN}.fabric_interface",
        "its VLAN interface abcdefghijkl.100 is 16 bytes",
    ),
    (
        "portal-ifname-blank",
        spec(("enclosures.0.ioms.0.ports.0.interface", "eth 1")),
        f"{PORT}.interface",
        "not a Linux interface name",
    ),
    (
        "portal-ifname-vlan-suffix",
        spec(("enclosures.0.ioms.0.ports.0.interface", "enp129s0f0np0")),
        f"{PORT}.interface",
        "its VLAN interface enp129s0f0np0.100 is longer than 15 bytes",
    ),
    ("bridge-shell", spec(("switches.0.bridge", "fabric0;id")), "switches[0].bridge", "not a Linux interface name"),
    ("netns-walks-out", spec(("switches.0.netns", "../../etc")), "switches[0].netns", "not a network namespace name"),
    ("netns-option", spec(("switches.0.netns", "-all")), "switches[0].netns", "not a network namespace name"),
    (
        "port-command",
        spec(("enclosures.0.ioms.0.ports.0.switch_port", "swp1$(id)")),
        f"{PORT}.switch_port",
        "not a switch port name",
    ),
    (
        "port-pattern-blank",
        spec(("nodes.generate.switch_port", "swp{n} x")),
        f"{GEN}.switch_port",
        "pattern gives a bad port for node 1: 'swp1 x' is not a switch port name",
    ),
    (
        "bridge-port-too-long",
        spec(("enclosures.0.ioms.0.ports.0.switch_port", "kvl-target-port-1")),
        f"{PORT}.switch_port",
        "a port of Linux bridge fabric is an interface",
    ),
    ("subnet-multicast", spec(("fabric.subnet", "224.0.0.0/24")), "fabric.subnet", "overlaps 224.0.0.0/4"),
    ("subnet-loopback", spec(("fabric.subnet", "127.0.0.0/24")), "fabric.subnet", "overlaps 127.0.0.0/8"),
    ("subnet-link-local", spec(("fabric.subnet", "169.254.0.0/16")), "fabric.subnet", "overlaps 169.254.0.0/16"),
    ("subnet-everything", spec(("fabric.subnet", "0.0.0.0/0")), "fabric.subnet", "overlaps 0.0.0.0/8"),
    ("subnet-broadcast", spec(("fabric.subnet", "255.255.255.255/32")), "fabric.subnet", "overlaps 240.0.0.0/4"),
    ("subnet-v6-multicast", spec(("fabric.subnet", "ff02::/64")), "fabric.subnet", "overlaps ff00::/8"),
    (
        "host-id-not-uuid",
        spec(("nodes.overrides", {"node1": {"host_id": "$(id)"}})),
        f"{NODE1}.host_id",
        "not a UUID in canonical form",
    ),
    (
        "host-id-upper",
        spec(("nodes.overrides", {"node1": {"host_id": UUID.upper()}})),
        f"{NODE1}.host_id",
        "not a UUID in canonical form",
    ),
    ("port-privileged", spec(("vllm.port", 80)), "vllm.port", "port 80 is privileged"),
    ("model-walks-out", spec(("vllm.model", "../../etc/passwd")), "vllm.model", "a hub id is org/name"),
    ("model-three-parts", spec(("vllm.model", "org/name/extra")), "vllm.model", "has 2 '/'"),
    ("model-option", spec(("vllm.model", "--help")), "vllm.model", "not a hub id"),
    ("model-local-dotdot", spec(("vllm.model", "/models/../etc")), "vllm.model", "'..' component"),
    ("model-blank", spec(("vllm.model", "my model")), "vllm.model", "not a hub id"),
    ("model-long-part", spec(("vllm.model", "org/" + "m" * 97)), "vllm.model", "97 characters in one part"),
    ("extra-port", spec(("vllm.extra_args", ["--port", "9000"])), "vllm.extra_args[0]", "sets --port"),
    ("extra-port-equals", spec(("vllm.extra_args", ["--port=9000"])), "vllm.extra_args[0]", "sets --port"),
    (
        "extra-tp-underscore",
        spec(("vllm.extra_args", ["--tensor_parallel_size=2"])),
        "vllm.extra_args[0]",
        "sets --tensor-parallel-size",
    ),
    ("extra-tp-short", spec(("vllm.extra_args", ["-tp", "2"])), "vllm.extra_args[0]", "sets -tp"),
    (
        "extra-kv-transfer",
        spec(("vllm.extra_args", ["--kv-transfer-config", "{}"])),
        "vllm.extra_args[0]",
        "sets --kv-transfer-config",
    ),
    ("extra-prefix", spec(("vllm.extra_args", ["--po=1"])), "vllm.extra_args[0]", "sets --port"),
    ("extra-empty", spec(("vllm.extra_args", [""])), "vllm.extra_args[0]", "empty argument"),
    ("version-word", spec(("vllm.install.vllm_version", "latest")), "vllm.install.vllm_version", "PEP 440"),
    ("version-shell", spec(("vllm.install.vllm_version", "0.11.0; rm -rf /")), "vllm.install.vllm_version", "PEP 440"),
    (
        "version-option",
        spec(("vllm.install.lmcache_version", "1.0 --index-url=http://x")),
        "vllm.install.lmcache_version",
        "PEP 440",
    ),
    ("index-ftp", spec(("vllm.install.index_url", "ftp://mirror/simple")), "vllm.install.index_url", "http(s) URL"),
    (
        "index-option",
        spec(("vllm.install.index_url", "https://pypi.org/simple --trusted-host x")),
        "vllm.install.index_url",
        "has blanks",
    ),
    (
        "mount-option-comma",
        spec(("kvcache.mount_options", ["noatime,exec"])),
        "kvcache.mount_options[0]",
        "not one mount option",
    ),
    (
        "mount-option-dash",
        spec(("kvcache.mount_options", ["noatime", "-o"])),
        "kvcache.mount_options[1]",
        "not one mount option",
    ),
    # generated values pass the explicit form's type
    (
        "generated-name-too-long",
        spec(("nodes.generate.name", "a" * 62 + "{n}"), ("nodes.generate.count", 10)),
        f"{GEN}.name",
        "does not give a valid name for node 10",
    ),
    (
        "generated-port-too-long",
        spec(("nodes.generate.switch_port", "p" * 63 + "{n}"), ("nodes.generate.count", 10)),
        f"{GEN}.switch_port",
        "bad port for node 10",
    ),
]


def problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(("data", "path", "fragment"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_value_is_refused_with_its_field(data, path, fragment):
    out = problems(data)
    assert any(p.startswith(f"{path}: ") and fragment in p for p in out), out
    assert all(len(p.splitlines()) == 1 for p in out)


def test_corpus_is_large_and_ids_unique():
    assert len(HOSTILE) >= 60
    assert len({c[0] for c in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", ["extra-arg-newline", "nqn-command", "device-twice-on-one-server", "mount-lock-dir"])
def test_cli_validate_exits_1_with_field_lines(tmp_path, case):
    _, data, path, fragment = next(c for c in HOSTILE if c[0] == case)
    file = tmp_path / "pod.yaml"
    file.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code == 1
    assert any(line.startswith(f"{path}: ") and fragment in line for line in result.stderr.splitlines())
    assert "Traceback" not in result.output


def test_a_repeated_problem_is_one_line_not_one_per_drive_or_node():
    out = problems(dict(HOSTILE_BY_ID["prefix-makes-long-nqns"]))
    assert len([p for p in out if p.startswith(f"{ENC}.nqn_prefix")]) == 1
    out = problems(dict(HOSTILE_BY_ID["ifname-vlan-suffix"]))
    assert len([p for p in out if p.startswith(f"{GEN}.fabric_interface")]) == 1


HOSTILE_BY_ID = {c[0]: c[1] for c in HOSTILE}


def test_kvpod_files_on_hosts_are_inside_the_refused_trees():
    for path in (lock_path("pod"), WHEELHOUSE_DEST, KVPOD_ETC, CONNECT_SCRIPT, NVMET_ROOT):
        assert any(inside(path, tree) for tree in SYSTEM_TREES), path


def test_a_new_string_field_refuses_control_characters_without_its_own_rule():
    class Later(Strict):
        note: str
        table: dict[str, Any] = Field(default_factory=dict)

    with pytest.raises(ValidationError, match="control character U\\+000A"):
        Later(note="a\nb")
    with pytest.raises(ValidationError, match=r"\['x'\]\[0\]\['y'\]: control character U\+2028"):
        Later(note="ok", table={"x": [{"y": "\u2028"}]})
    assert Later(note="plain words, quotes ' \" and unicode é").note.endswith("é")


LEGAL = [
    ("model-underscore", spec(("vllm.model", "my_org/_draft.v2"))),
    ("ifname-per-node-15", per_node("abcdefghij")),
    ("ipv6-ssh-host", spec(("enclosures.0.management.ssh.address", "2001:db8::5"))),
    ("uuid-host-nqn", spec(("nodes.overrides", {"node1": {"host_nqn": f"nqn.2014-08.org.nvmexpress:uuid:{UUID}"}}))),
    ("nqn-with-colons", spec(("nodes.overrides", {"node1": {"host_nqn": "nqn.2024-01.com.example:rack1:gpu_01.a"}}))),
    ("host-id", spec(("nodes.overrides", {"node1": {"host_id": UUID}}))),
    ("user-underscore", spec(("vllm.user", "_vllm-svc"))),
    ("login-user-dollar", spec(("nodes.generate.ssh_user", "deploy$"))),
    ("model-local-path", spec(("vllm.model", "/models/Llama-3.1-8B-Instruct"))),
    ("model-plain-name", spec(("vllm.model", "gpt2"))),
    ("extra-args", spec(("vllm.extra_args", ["--enforce-eager", "--served-model-name=my model"]))),
    (
        "device-by-path",
        spec(("enclosures.0.drives", drives("/dev/disk/by-path/pci-0000:01:00.0-nvme-1", "/dev/nvme1n1"))),
    ),
    ("mount-data", spec(("kvcache.path", "/data/kvcache"))),
    ("mount-var-lib-own", spec(("kvcache.path", "/var/lib/kvcache"))),
    ("venv-srv", spec(("vllm.install.venv", "/srv/venvs/vllm"))),
    ("subnet-172", spec(("fabric.subnet", "172.16.0.0/16"))),
    ("key-in-home", spec(("nodes.generate.ssh_key", "~/.ssh/id_ed25519"))),
    ("key-with-blank", spec(("nodes.generate.ssh_key", "/home/op/my keys/id_ed25519"))),
    ("same-pattern-other-server", spec(("enclosures", [BASE["enclosures"][0], second_enclosure(port=2210)]))),
    ("index-url", spec(("vllm.install.index_url", "https://pypi.example.com:8443/simple"))),
    ("version-rc", spec(("vllm.install.vllm_version", "0.11.0rc1"))),
    ("ifname-14-with-vlan", spec(("nodes.generate.fabric_interface", "enp65s0f0n"))),
    (
        "port-slash",
        spec(
            ("switches.0", {"name": BASE["switches"][0]["name"], "kind": "none"}),
            ("enclosures.0.ioms.0.ports.0.switch_port", "Ethernet1/1"),
        ),
    ),
    (
        "mount-options",
        spec(("kvcache.mount_options", ["noatime", "errors=remount-ro", "x-systemd.device-timeout=10s"])),
    ),
]


@pytest.mark.parametrize("data", [c[1] for c in LEGAL], ids=[c[0] for c in LEGAL])
def test_unusual_but_legal_values_pass(data):
    spec_from_dict(data)
