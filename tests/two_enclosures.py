"""The lab pod with a second Linux nvmet enclosure served by the same target VM (own NQN prefix, portal and
drive files), node2 on its first drive: the spec variant of the two-enclosure tests, fast and lab."""

from __future__ import annotations

from deploy.spec_edit import set_node_namespaces

SECOND = "shelf2"
SECOND_PORTAL = "10.78.0.201"  # explicit, so the lab's other fabric addresses stay as they are
SECOND_PREFIX = "nqn.2024-01.io.kvpod.lab2"

_ENCLOSURE = f"""  - name: {SECOND}
    kind: linux-nvmet
    management:
      ssh:
        address: 127.0.0.1
        port: 2201
        key: /var/tmp/kvpod-lab/id_ed25519
        known_hosts_file: /var/tmp/kvpod-lab/known_hosts
    nqn_prefix: {SECOND_PREFIX}
    file_backed: true
    ioms:
      - name: iom-a
        ports:
          - {{name: p1, interface: eth1, rdma: soft-roce, address: {SECOND_PORTAL}}}
    drives:
      count: 2
      capacity_gb: 2
      device_path_pattern: /srv/nvmet/{SECOND}-drive{{slot}}.img

"""


def two_enclosures(lab_text: str, node2: tuple[str, int] = (SECOND, 1)) -> str:
    """The lab spec with enclosure ``shelf2`` added on the target VM and node2 on ``node2`` (enclosure, slot)."""
    marker = "\nnodes:\n"
    assert marker in lab_text, "the lab spec has no nodes section"
    head, tail = lab_text.split(marker, 1)
    text = head.rstrip("\n") + "\n" + _ENCLOSURE + "nodes:\n" + tail
    return set_node_namespaces(text, {"node2": node2})


def second_nqn(slot: int) -> str:
    return f"{SECOND_PREFIX}:{SECOND}-drive{slot:02d}"
