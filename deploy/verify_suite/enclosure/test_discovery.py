"""Enclosure advertising: what each node's discovery request to each portal of its enclosure returns.

This is the check for an enclosure kvpod cannot log in to (a Data24 is configured by hand from
``kvpod target sheet``): ``nvme discover`` from each node against each portal, compared with the plan.
"""

from __future__ import annotations

import pytest
from verify_expect import expect
from verify_facts import HostFacts

from deploy.plan import NodePlan, TargetPortalPlan

pytestmark = pytest.mark.area("enclosure")


class TestDiscovery:
    def test_discovery(self, node: NodePlan, enclosure_portal: TargetPortalPlan, node_facts: HostFacts) -> None:
        """The portal's discovery log lists exactly the node's own subsystem, at this portal.

        With host access restricted, a discovery controller lists only the subsystems the asking host may
        access, so a node sees its own subsystem and no other: seeing another means another drive admits
        this node (or admits any host); seeing none means the portal does not export the node's drive or
        does not admit its host NQN. Each entry must carry the portal's address, service id and transport.
        """
        ns = node.namespace
        p = enclosure_portal
        records = node_facts.discover(ns.transport, p.address, p.trsvcid)
        found = {(r.get("subnqn"), r.get("traddr"), r.get("trsvcid"), r.get("trtype")) for r in records}
        expect(
            f"discovery log at {p.address}:{p.trsvcid}",
            {(ns.subsystem_nqn, p.address, str(p.trsvcid), ns.transport)},
            found,
        )
