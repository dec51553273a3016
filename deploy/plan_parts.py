"""Pieces of the plan built from the spec: SSH endpoints, engines, the install, the Hugging Face environment,
the lossless RoCE settings, namespace identifiers and the switches' VLANs and ports (pure)."""

from __future__ import annotations

import uuid

from deploy.names import LMCACHE_DIR, WHEELHOUSE_DEST, engine_dir_name, engine_file, engine_unit
from deploy.plan_models import (
    EnginePlan,
    InstallPlan,
    LmcachePlan,
    NodePlan,
    RoceQosPlan,
    SshPlan,
    SwitchPlan,
    SwitchPortPlan,
    SwitchVlanPlan,
    TargetPlan,
)
from deploy.sizing import engine_budgets, engines_of, lmcache_per_rank
from deploy.spec import PodSpec, RoceQos

# huggingface_hub reads HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) and transformers TRANSFORMERS_OFFLINE
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


_NS_IDS = uuid.UUID("2b1f7a4e-6c1d-4f0b-9a59-6b76706f6e73")


def namespace_ids(nqn: str, nsid: int) -> tuple[str, str]:
    """Deterministic (UUID, NGUID) of a namespace, both in UUID notation as nvmet's configfs takes them."""
    return str(uuid.uuid5(_NS_IDS, f"{nqn}#{nsid}#uuid")), str(uuid.uuid5(_NS_IDS, f"{nqn}#{nsid}#nguid"))


def ssh_plan(s) -> SshPlan | None:
    """The plan's SSH endpoint of a spec's ``ssh`` block (None without one)."""
    if s is None:
        return None
    return SshPlan(
        host=s.address,
        port=s.port,
        user=s.user,
        key=s.key,
        sudo=s.sudo,
        known_hosts_file=s.known_hosts_file,
        strict_host_key_checking=s.strict_host_key_checking,
    )


def _lmcache(spec: PodSpec, index: int, disk_dir: str, engines: int) -> LmcachePlan:
    kv = spec.kvcache
    nested = any(isinstance(v, dict | list) for v in kv.lmcache_extra.values())
    cpu, disk = lmcache_per_rank(spec, engines)
    return LmcachePlan(
        chunk_size=kv.chunk_size,
        local_cpu=True,
        max_local_cpu_size=cpu,
        local_disk=f"file://{disk_dir}/",
        max_local_disk_size=disk,
        extra=dict(sorted(kv.lmcache_extra.items())),
        telemetry=kv.lmcache_telemetry,
        config_mode="yaml" if nested else "env",
        env_file=engine_file(index, "env"),
        config_file=engine_file(index, "yaml") if nested else None,
    )


def engine_plans(spec: PodSpec, gpus: int) -> list[EnginePlan]:
    """The engines of a node of ``gpus`` GPUs: one per ``tensor_parallel_size`` GPUs."""
    tp, port = spec.vllm.tensor_parallel_size, spec.vllm.port
    count = engines_of(spec, gpus)
    cpu, disk = engine_budgets(spec, count)
    root = f"{spec.kvcache.path.rstrip('/')}/{LMCACHE_DIR}"
    engines = []
    for i in range(count):
        devices = list(range(i * tp, (i + 1) * tp))
        disk_dir = f"{root}/{engine_dir_name(i)}"
        engines.append(
            EnginePlan(
                index=i,
                unit=engine_unit(i),
                port=port + i,
                gpus=devices,
                cuda_visible_devices=",".join(str(d) for d in devices),
                health_url=f"http://127.0.0.1:{port + i}/health",
                models_url=f"http://127.0.0.1:{port + i}/v1/models",
                disk_dir=disk_dir,
                cpu_budget_gib=cpu,
                disk_budget_gib=disk,
                lmcache=_lmcache(spec, i, disk_dir, count),
            )
        )
    return engines


def install_plan(spec: PodSpec) -> InstallPlan | None:
    """The vLLM/LMCache install kvpod does (None when the spec names an executable instead)."""
    inst = spec.vllm.install
    if inst is None:
        return None
    lmcache = inst.lmcache_version or spec.kvcache.lmcache_version
    return InstallPlan(
        venv=inst.venv,
        python=inst.python,
        requirements=[f"vllm=={inst.vllm_version}", f"lmcache=={lmcache}"],
        wheelhouse=inst.wheelhouse,
        wheelhouse_dest=WHEELHOUSE_DEST,
        index_url=inst.index_url,
    )


def hf_environment(spec: PodSpec) -> dict:
    """vLLM's Hugging Face environment: the token (a :class:`Secret`), the cache, offline mode."""
    v = spec.vllm
    env: dict = {}
    if v.hf_token_file is not None:
        env["HF_TOKEN"] = v.hf_token_file.secret
    if v.weights_cache_dir:
        env["HF_HOME"] = v.weights_cache_dir
    if v.offline:
        env.update(OFFLINE_ENV)
    return env


def roce_qos_plan(spec: PodSpec) -> RoceQosPlan | None:
    """The pod's lossless RoCE settings: ``fabric.roce_qos``, else its defaults when a switch asks for RoCE QoS;
    None when neither does. Switches and nodes both take it from here."""
    qos = spec.fabric.roce_qos
    if qos is None:
        if not any(sw.roce_qos for sw in spec.switches):
            return None
        qos = RoceQos()
    return RoceQosPlan(priority=qos.priority, dscp=list(qos.dscp), ecn=qos.ecn)


def roce_tos(qos: RoceQosPlan) -> int:
    """The IP type of service byte of the lossless traffic: the first DSCP value, ECN bits left to the NIC."""
    return qos.dscp[0] << 2


def switch_plans(spec: PodSpec, nodes: list[NodePlan], targets: list[TargetPlan], addressing) -> list[SwitchPlan]:
    """Each switch's VLANs and access ports, from the planned nodes and target portals."""
    fab = spec.fabric
    plans = []
    for sw in spec.switches:
        vlans = [
            SwitchVlanPlan(
                id=fab.storage_vlan,
                name=f"{spec.pod.name}-storage",
                svi_address=str(addressing.storage_svi) if sw.routed and addressing.storage_svi else None,
                prefix_length=addressing.storage_subnet.prefixlen,
            )
        ]
        ports: list[SwitchPortPlan] = []
        for t in targets:
            for p in t.portals:
                if p.switch == sw.name and p.switch_port:
                    ports.append(
                        SwitchPortPlan(
                            port=p.switch_port,
                            description=f"{t.name} {p.iom} {p.port}",
                            access_vlan=p.vlan,
                            tagged=p.vlan_interface is not None,
                            mtu=sw.mtu,
                            peer=f"enclosure:{t.name}/{p.iom}/{p.port}",
                        )
                    )
        for n in nodes:
            if n.fabric.switch == sw.name and n.fabric.switch_port:
                ports.append(
                    SwitchPortPlan(
                        port=n.fabric.switch_port,
                        description=f"{n.name} {n.fabric.interface}",
                        access_vlan=n.fabric.vlan,
                        tagged=True,
                        mtu=sw.mtu,
                        peer=f"node:{n.name}",
                    )
                )
                if fab.vlan_mode == "per-node":
                    vlans.append(
                        SwitchVlanPlan(
                            id=n.fabric.vlan,
                            name=f"{spec.pod.name}-{n.name}",
                            svi_address=n.fabric.gateway if sw.routed else None,
                            prefix_length=n.fabric.prefix_length,
                        )
                    )
        plans.append(
            SwitchPlan(
                name=sw.name,
                kind=sw.kind,
                ssh=ssh_plan(sw.management.ssh),
                mtu=sw.mtu,
                bridge=sw.bridge,
                netns=sw.netns,
                roce_qos=sw.roce_qos,
                routed=sw.routed,
                roce=roce_qos_plan(spec) if sw.roce_qos else None,
                vlans=vlans,
                ports=ports,
            )
        )
    return plans
