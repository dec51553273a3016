"""A generated pod spec of any size: ``nodes`` nodes on ``ceil(nodes / 24)`` OpenFlex Data24 enclosures."""

from __future__ import annotations

import math

import yaml


def fleet_spec(nodes: int) -> str:
    """YAML of a shared-VLAN pod with ``nodes`` generated nodes, node i on drive i (enclosure by enclosure)."""
    enclosures = max(1, math.ceil(nodes / 24))
    spec = {
        "pod": {"name": f"fleet-{nodes}"},
        "fabric": {"subnet": "10.78.0.0/20", "transport": "rdma", "multipath": True},
        "switches": [{"name": "leaf1", "kind": "none", "mtu": 9216}],
        "enclosures": [
            {
                "name": f"data24-{e + 1:02d}",
                "kind": "data24",
                "management": {"address": f"192.0.2.{e + 10}"},
                "nqn_prefix": "nqn.2024-01.com.example.fleet",
                "ioms": [
                    {
                        "name": "iom-a",
                        "ports": [{"name": "p1", "switch": "leaf1", "switch_port": f"swp{1000 + 2 * e}"}],
                    },
                    {
                        "name": "iom-b",
                        "ports": [{"name": "p1", "switch": "leaf1", "switch_port": f"swp{1001 + 2 * e}"}],
                    },
                ],
                "drives": {"count": 24, "capacity_gb": 7680},
            }
            for e in range(enclosures)
        ],
        "nodes": {
            "generate": {
                "count": nodes,
                "name": "gpu{n:03d}",
                "ssh_address": "198.18.0.1",
                "fabric_interface": "ens1f0np0",
                "rdma": "hardware",
                "switch": "leaf1",
                "switch_port": "swp{n}",
            }
        },
        "kvcache": {"path": "/mnt/kvcache", "cpu_budget_gb": 30, "disk_budget_gb": 100},
        "vllm": {"model": "meta-llama/Llama-3.1-70B-Instruct", "tensor_parallel_size": 4},
    }
    return yaml.safe_dump(spec, sort_keys=False)
