"""pyinfra host data for the plan's hosts: SSH settings, and the plan part each host's deploy reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deploy.names import NAME_KEY, NODE_KEY, SWITCH_KEY, TARGET_KEY
from deploy.plan import Plan, SshPlan


def ssh_host_data(ssh: SshPlan) -> dict[str, Any]:
    """pyinfra host data for an SSH host of the plan."""
    data: dict[str, Any] = {
        "ssh_hostname": ssh.host,
        "ssh_port": ssh.port,
        "ssh_user": ssh.user,
        "ssh_strict_host_key_checking": ssh.strict_host_key_checking,
        "ssh_connect_retries": 2,
    }
    if ssh.key:
        data["ssh_key"] = ssh.key
    if ssh.known_hosts_file:
        data["ssh_known_hosts_file"] = ssh.known_hosts_file
    if ssh.sudo:
        data["_sudo"] = True
    return data


def node_hosts(plan: Plan, limit: Iterable[str] | None, extra: dict[str, dict] | None = None) -> list[tuple[str, dict]]:
    """pyinfra hosts for the plan's nodes (optionally limited by name), with their NodePlan attached."""
    wanted = set(limit or [])
    out = []
    for n in plan.nodes:
        if wanted and n.name not in wanted:
            continue
        data = ssh_host_data(n.ssh) | {NODE_KEY: n}
        data.update((extra or {}).get(n.name, {}))
        out.append((n.name, data))
    return out


def target_hosts(plan: Plan) -> list[tuple[str, dict]]:
    """pyinfra hosts of the managed enclosures: one per SSH endpoint (named after its first enclosure), with
    the enclosures it serves attached; those without SSH on ``@local`` (see :mod:`deploy.targets`)."""
    from deploy.targets import managed_groups

    out = []
    for group in managed_groups(plan):
        data = {TARGET_KEY: group, NAME_KEY: group[0].name}
        ssh = group[0].ssh
        out.append((group[0].name, ssh_host_data(ssh) | data) if ssh else ("@local", data))
    return out


def switch_hosts(plan: Plan) -> list[tuple[str, dict]]:
    out = []
    for sw in plan.switches:
        if sw.kind == "none":
            continue
        if sw.ssh is not None:
            out.append((sw.name, ssh_host_data(sw.ssh) | {SWITCH_KEY: sw}))
        else:  # a Linux bridge on the machine running kvpod
            out.append(("@local", {SWITCH_KEY: sw}))
    return out
