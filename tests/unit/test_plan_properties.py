"""Properties over generated valid pods: unique addresses inside the subnet, one node per namespace,
per-rank LMCache budgets."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netaddr import IPAddress, IPNetwork

from deploy.loader import spec_from_dict
from deploy.plan import build_plan


@st.composite
def pods(draw) -> dict:
    drives = draw(st.integers(1, 24))
    nodes = draw(st.integers(1, drives))
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    prefix = draw(st.integers(20, 26))
    base = draw(st.integers(0, 200))
    explicit = draw(st.lists(st.integers(1, nodes), max_size=nodes, unique=True))
    per_node = draw(st.booleans())
    order = draw(st.permutations(list(range(1, drives + 1))))
    data = {
        "pod": {"name": draw(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True))},
        "fabric": {"subnet": f"10.{base}.0.0/{prefix}", "mtu": draw(st.integers(1280, 9000))},
        "enclosures": [
            {
                "name": "encl",
                "kind": "data24",
                "ioms": [{"name": "a", "ports": [{"name": "p1"}]}, {"name": "b", "ports": [{"name": "p1"}]}],
                "drives": {"count": drives, "capacity_gb": draw(st.floats(200, 8000))},
            }
        ],
        "nodes": {
            "generate": {
                "count": nodes,
                "name": "n{n}",
                "ssh_address": "192.0.2.1",
                "fabric_interface": "eth1",
                "gpus": 8,
            }
        },
        "kvcache": {"cpu_budget_gib": draw(st.floats(1, 512)), "disk_budget_gib": draw(st.floats(1, 150))},
        "vllm": {"tensor_parallel_size": tp},
    }
    # some nodes pin their drive explicitly, to a random but distinct drive
    data["nodes"]["overrides"] = {
        f"n{i}": {"namespace": {"enclosure": "encl", "drive": order[i - 1]}} for i in explicit
    }
    if per_node:
        data["fabric"].update(
            vlan_mode="per-node", node_vlans={"start": 200, "end": 200 + nodes}, node_subnets="172.16.0.0/16"
        )
        data["switches"] = [{"name": "sw", "kind": "none", "routed": True}]
    return data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_generated_pods(data):
    from deploy.errors import SpecError

    try:
        spec = spec_from_dict(data)
    except SpecError as exc:
        # the only acceptable refusal for these pods: the positional default collides with a pinned drive
        assert all("is assigned to 2 nodes" in p.message for p in exc.problems), exc.problems
        return
    plan = build_plan(spec)
    addresses = [IPAddress(n.fabric.address) for n in plan.nodes] + [
        IPAddress(p.address) for t in plan.targets for p in t.portals
    ]
    assert len(set(addresses)) == len(addresses)
    for n in plan.nodes:
        net = IPNetwork(f"{n.fabric.address}/{n.fabric.prefix_length}")
        assert IPAddress(n.fabric.address) not in (net.network, net.broadcast)
    storage = IPNetwork(spec.fabric.subnet)
    assert all(IPAddress(p.address) in storage for t in plan.targets for p in t.portals)
    drives = [(n.namespace.enclosure, n.namespace.drive) for n in plan.nodes]
    assert len(set(drives)) == len(drives)
    holders = [s.node for t in plan.targets for s in t.subsystems if s.node]
    assert sorted(holders) == sorted(n.name for n in plan.nodes)
    tp = spec.vllm.tensor_parallel_size
    for n in plan.nodes:
        # every GPU runs in exactly one engine; ports and disk-tier directories are the engines' own
        assert sorted(g for e in n.engines for g in e.gpus) == list(range(n.gpus))
        assert len({e.port for e in n.engines}) == len({e.disk_dir for e in n.engines}) == len(n.engines)
        ranks = tp * len(n.engines)
        for per_rank, budget in (
            (n.lmcache.max_local_cpu_size, spec.kvcache.cpu_budget_gib),
            (n.lmcache.max_local_disk_size, spec.kvcache.disk_budget_gib),
        ):
            # LMCache allocates int(size * 1024**3) bytes per rank: the ranks never exceed the node budget
            # (a budget is read to 10^-6 GiB: 1.9999999999999716 is 2)
            assert ranks * int(per_rank * 2**30) <= round(budget, 6) * 2**30
            assert per_rank * ranks > budget - 0.001 * ranks
