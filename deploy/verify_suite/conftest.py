"""kvpod verify: a testinfra suite that checks a live pod against its plan.

Every expected value comes from the plan JSON (``kvpod plan SPEC --json``); hosts are reached with
testinfra's ssh backend through an ssh_config holding one ``Host`` block per node and target, named as in
the plan. ``kvpod verify SPEC`` writes both into its run directory and runs this suite. By hand::

    kvpod plan pod.yaml --json > plan.json
    pytest deploy/verify_suite --kvpod-plan plan.json --ssh-config ssh_config [-n 4] [--kvpod-limit node1]

``--kvpod-plan FILE`` (or ``$KVPOD_PLAN``) is required. ``--ssh-config`` is testinfra's option; without it
the suite writes one from the plan's SSH settings. ``--kvpod-limit NODE`` (repeatable) checks only those
nodes; targets and the pod-wide check always run.

Test ids name the host and the item: ``test_vlan_mtu[node1]``, ``test_portal_ping[node1-iom-a-p1]``,
``test_allowed_hosts[target-drive01]``, ``test_subsystem_on_one_node[pod]``. Each folder is one role area,
marked ``area("<folder>")``; run one area by giving its folder. Every test records ``kvpod_test``,
``kvpod_host`` and ``kvpod_area`` as JUnit properties, which ``kvpod verify`` groups its summary by.

Each host answers one command: before its first check, a script reads everything the checks of that host
look at (``verify_facts``: what it reads is derived from the plan by ``verify_expect.node_reads``), and the
checks assert on that answer. With xdist (``-n N``, ``--dist load`` or ``loadscope``) the suite schedules by
host: every check of a host runs in the same worker, hosts in parallel, the pod-wide checks last (they read
the NVMe controllers of nodes whose state their worker has not read, one small script per node).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suite's helper modules, whatever the import mode

from verify_expect import (
    ATTRIBUTES,
    DCB_SETTINGS,
    enclosure_portals,
    hf_env_files,
    hf_environment,
    kernel_modules,
    lmcache_environment,
    lmcache_settings,
    lossless_settings,
    node_reads,
    offline_models,
    sysctls,
    target_reads,
    vllm_arguments,
    weights_cache_dirs,
)
from verify_facts import HostFacts
from verify_state import HostUnreachable, ReadFailed

from deploy.plan import NodePlan, Plan, TargetPlan
from deploy.targets import co_hosted
from deploy.verify_runner import AREAS, POD_ROW, close_ssh_masters, host_of_test, ssh_config_text, target_names

_PLAN = pytest.StashKey[Plan]()
_LIMIT = pytest.StashKey[list[str]]()
_OWN_SSH_DIR = pytest.StashKey[str]()
_FACTS: dict[str, HostFacts] = {}

# Companion arguments of node tests: name -> (node -> [(id part, value)]).
NODE_ITEMS: dict[str, Callable[[NodePlan, Plan], list[tuple[str, Any]]]] = {
    "portal": lambda n, _: [(p.name, p) for p in n.namespace.portals],
    "path_setting": lambda n, _: [(f"{p.name}-{a}", (p, a)) for p in n.namespace.portals for a in ATTRIBUTES],
    "dcb_setting": lambda n, plan: (
        [(k, (k, *lossless_settings(n, plan))) for k in DCB_SETTINGS] if n.fabric.roce_qos is not None else []
    ),
    "enclosure_portal": lambda n, plan: [(p.name, p) for p in enclosure_portals(n, plan)],
    "module": lambda n, _: [(m, m) for m in kernel_modules(n)],
    "sysctl": lambda n, _: [(k, (k, v)) for k, v in sysctls(n).items()],
    "mount_option": lambda n, _: [(o, o) for o in n.mount.options],
    "engine": lambda n, _: [(f"engine{e.index}", e) for e in n.engines],
    "lmcache_setting": lambda n, _: [
        (f"engine{e.index}-{k}", (e, k, v)) for e in n.engines for k, v in lmcache_settings(n, e).items()
    ],
    "environment_variable": lambda n, _: [
        (f"engine{e.index}-{k}", (e, k, v))
        for e in n.engines
        for k, v in {**lmcache_environment(n, e), **hf_environment(n)}.items()
    ],
    "vllm_argument": lambda n, _: [
        (f"engine{e.index}-{k.lstrip('-')}", (e, k, v)) for e in n.engines for k, v in vllm_arguments(n, e).items()
    ],
    "hf_env_file": lambda n, _: [("hf-env", f) for f in hf_env_files(n)],
    "hf_setting": lambda n, _: [(k, (k, v)) for k, v in hf_environment(n).items()],
    "weights_cache_dir": lambda n, _: [("weights-cache", d) for d in weights_cache_dirs(n)],
    "offline_model": lambda n, _: [(m.replace("/", "--"), m) for m in offline_models(n)],
}
# Companion arguments of target tests.
TARGET_ITEMS: dict[str, Callable[[TargetPlan], list[tuple[str, Any]]]] = {
    "subsystem": lambda t: [(f"drive{s.drive:02d}", s) for s in t.subsystems],
    "target_portal": lambda t: [(p.name, p) for p in t.portals],
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvpod", "kvpod verify")
    group.addoption("--kvpod-plan", default=os.environ.get("KVPOD_PLAN"), help="plan JSON (default: $KVPOD_PLAN)")
    group.addoption("--kvpod-limit", action="append", default=[], metavar="NODE", help="check only this node")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"area(name): the role area of a check, one of {', '.join(AREAS)}")
    if config.getoption("help") or config.getoption("version", 0):
        return
    path = config.getoption("--kvpod-plan")
    if not path:
        raise pytest.UsageError("the kvpod verify suite needs --kvpod-plan FILE (or $KVPOD_PLAN): the plan JSON")
    try:
        plan = Plan.model_validate_json(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--kvpod-plan {path}: {exc}") from None
    limit = list(config.getoption("--kvpod-limit") or [])
    unknown = [n for n in limit if n not in {node.name for node in plan.nodes}]
    if unknown:
        raise pytest.UsageError(f"--kvpod-limit: unknown node {', '.join(unknown)}")
    config.stash[_PLAN] = plan
    config.stash[_LIMIT] = limit
    if not getattr(config.option, "ssh_config", None):  # write one from the plan (each xdist worker its own)
        own = tempfile.mkdtemp(prefix="kvpod-ssh-")
        cfg = Path(own) / "ssh_config"
        cfg.write_text(ssh_config_text(plan, control_dir=Path(own)))
        config.option.ssh_config = str(cfg)
        config.stash[_OWN_SSH_DIR] = own


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_SSH_DIR, None)
    if own:
        plan = config.stash[_PLAN]
        close_ssh_masters(Path(own) / "ssh_config", [n.name for n in plan.nodes] + target_names(plan))
        shutil.rmtree(own, ignore_errors=True)


def verified_nodes(config: pytest.Config) -> list[NodePlan]:
    limit = config.stash[_LIMIT]
    return [n for n in config.stash[_PLAN].nodes if not limit or n.name in limit]


def verified_targets(config: pytest.Config) -> list[TargetPlan]:
    """Targets kvpod configures over SSH (linux-nvmet); a Data24 is checked from the nodes (enclosure area)."""
    names = set(target_names(config.stash[_PLAN]))
    return [t for t in config.stash[_PLAN].targets if t.name in names]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise over the plan: ``node`` (+ one companion item), ``target`` (+ one), or ``pod``."""
    config, args = metafunc.config, metafunc.fixturenames
    plan = config.stash[_PLAN]
    if "node" in args:
        item = next((name for name in NODE_ITEMS if name in args), None)
        nodes = verified_nodes(config)
        if item is None:
            metafunc.parametrize("node", nodes, ids=[n.name for n in nodes])
            return
        cases = [(n, key, value) for n in nodes for key, value in NODE_ITEMS[item](n, plan)]
        metafunc.parametrize(("node", item), [(n, v) for n, _, v in cases], ids=[f"{n.name}-{k}" for n, k, _ in cases])
    elif "target" in args:
        item = next((name for name in TARGET_ITEMS if name in args), None)
        targets = verified_targets(config)
        if item is None:
            metafunc.parametrize("target", targets, ids=[t.name for t in targets])
            return
        tcases = [(t, key, value) for t in targets for key, value in TARGET_ITEMS[item](t)]
        metafunc.parametrize(
            ("target", item), [(t, v) for t, _, v in tcases], ids=[f"{t.name}-{k}" for t, k, _ in tcases]
        )
    elif "pod" in args:
        metafunc.parametrize("pod", [plan], ids=[POD_ROW])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop tests with nothing to check (e.g. target tests of a pod without an SSH-managed target), and
    put the pod-wide checks last (the scheduler hands out hosts in the order of their first test)."""
    empty = [i for i in items if any(_empty_parameter_set(m) for m in i.iter_markers("skip"))]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]
    items.sort(key=lambda i: "pod" in getattr(getattr(i, "callspec", None), "params", {}))


def scheduled_hosts(config: pytest.Config) -> list[str]:
    """Names a test id can name as its host: every node and target of the plan, and the pod."""
    plan = config.stash[_PLAN]
    return [n.name for n in plan.nodes] + [t.name for t in plan.targets] + [POD_ROW]


def host_scope(nodeid: str, hosts: list[str]) -> str:
    """The xdist scope of a test: the host it checks (its module when it names none)."""
    return host_of_test(nodeid, hosts) or nodeid.rsplit("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Schedule by host: every check of a host in one worker, so the host's state is read once."""
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    hosts = scheduled_hosts(config)

    class HostScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return host_scope(nodeid, hosts)

    return HostScheduling(config, log)


def _empty_parameter_set(mark: pytest.Mark) -> bool:
    reason = mark.kwargs.get("reason", mark.args[0] if mark.args else "")
    return str(reason).startswith("got empty parameter set")


def _facts(config: pytest.Config, name: str, sudo: bool, **reads: Any) -> HostFacts:
    """The facts of a host, one object per host and worker (so one state read per host and worker)."""
    if name not in _FACTS:
        host = testinfra.get_host(f"ssh://{name}", ssh_config=config.option.ssh_config, sudo=sudo)
        _FACTS[name] = HostFacts(name, host, **reads)
    return _FACTS[name]


def _node_facts(config: pytest.Config, node: NodePlan) -> HostFacts:
    return _facts(config, node.name, node.ssh.sudo, node_reads=node_reads(node, config.stash[_PLAN]))


@pytest.fixture
def node_facts(request: pytest.FixtureRequest, node: NodePlan) -> HostFacts:
    """The node's live facts (its state read, run once); the test errors as unreachable when SSH fails."""
    facts = _node_facts(request.config, node)
    facts.ensure_reachable()
    return facts


@pytest.fixture
def target_facts(request: pytest.FixtureRequest, target: TargetPlan) -> HostFacts:
    facts = _facts(request.config, target.name, bool(target.ssh and target.ssh.sudo), target_reads=target_reads())
    facts.ensure_reachable()
    return facts


@pytest.fixture
def co_hosted_targets(request: pytest.FixtureRequest, target: TargetPlan) -> list[TargetPlan]:
    """The enclosures served by the same host as ``target`` (itself included)."""
    return co_hosted(request.config.stash[_PLAN], target)


@pytest.fixture
def pod_facts(request: pytest.FixtureRequest, pod: Plan) -> dict[str, HostFacts]:
    """Facts of every node of the plan (``--kvpod-limit`` does not apply: pod-wide checks need them all).

    The NVMe controllers of every node are read up front, the nodes in parallel: from the node's state read
    when this worker has it, else by a script reading only them. A node that cannot be read raises
    :class:`HostUnreachable` when the check asks for its controllers.
    """
    facts = {n.name: _node_facts(request.config, n) for n in pod.nodes}
    with ThreadPoolExecutor(max_workers=min(8, len(facts) or 1)) as pool:
        list(pool.map(_prefetch_controllers, facts.values()))
    return facts


def _prefetch_controllers(facts: HostFacts) -> None:
    with contextlib.suppress(Exception):  # a failed read is remembered and raised again to the check
        facts.controllers()


@pytest.fixture(autouse=True)
def _kvpod_labels(request: pytest.FixtureRequest) -> None:
    """Record each check's node id, host and role area in the JUnit XML (``kvpod_test/host/area``)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    owner = params.get("node") or params.get("target")
    host = getattr(owner, "name", "") or (POD_ROW if "pod" in params else "")
    marker = request.node.get_closest_marker("area")
    request.node.user_properties.append(("kvpod_test", request.node.nodeid))
    request.node.user_properties.append(("kvpod_host", host))
    request.node.user_properties.append(("kvpod_area", marker.args[0] if marker else ""))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
    """Report a check whose host could not be reached or read in one line, without a traceback (formatting
    one per check of an unreachable host would cost more than the checks)."""
    exc = call.excinfo.value if call.excinfo is not None else None
    if not isinstance(exc, HostUnreachable | ReadFailed):
        return None
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "failed",
        f"{type(exc).__name__}: {exc}",
        call.when,  # type: ignore[arg-type]
        [(f"Captured {key} {when}", content) for when, key, content in item._report_sections],
        call.duration,
        call.start,
        call.stop,
        user_properties=item.user_properties,
    )
