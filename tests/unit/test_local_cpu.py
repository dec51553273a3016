"""The shortcuts that keep a large fleet's local CPU low give exactly what the slow paths give."""

from __future__ import annotations

import copy
import datetime
import importlib
import inspect

import pytest
from pyinfra.api import FactBase

from benchmarks.pyinfra_fake import FakeRemote, fake_state
from deploy.engine import pyinfra_speed
from deploy.facts.call_arguments import call_arguments
from deploy.facts.copies import deep_copy
from deploy.facts.read_keys import read_key_of
from deploy.facts.snapshot import NamespaceReads, read_key
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from roles.node import reads as node_reads


def _getcallargs(cls: type[FactBase], given: dict) -> dict:
    merged = inspect.getcallargs(cls().command, **given)
    merged.pop("self", None)
    return merged


def test_call_arguments_are_what_getcallargs_gives_for_every_read_of_a_node() -> None:
    reads = [r for r in node_reads(build_plan(load_spec(lab_spec())).nodes[0]) if not isinstance(r, NamespaceReads)]
    assert len(reads) > 20
    for read in reads * 2:  # the second time from what was kept
        given = read.arguments()
        got = call_arguments(read.fact, given)
        assert got == _getcallargs(read.fact, given)
        for value in got.values():  # a list given is the caller's own, not one kept for the next read
            assert not isinstance(value, list) or all(value is not v for v in given.values())


def test_read_keys_kept_are_the_read_keys() -> None:
    reads = [r for r in node_reads(build_plan(load_spec(lab_spec())).nodes[0]) if not isinstance(r, NamespaceReads)]
    for read in reads * 2:
        assert read_key_of(read.fact, read.arguments()) == read_key(read.fact, read.arguments())
    from pyinfra.facts.systemd import SystemdStatus

    odd = {"services": ["a.service"], "_sudo": True, "machine": {"not": "hashable"}}
    assert read_key_of(SystemdStatus, odd) == read_key(SystemdStatus, odd)


def test_call_arguments_refuse_what_getcallargs_refuses() -> None:
    from pyinfra.facts.files import File

    with pytest.raises(TypeError):
        call_arguments(File, {"nope": "/x"})
    with pytest.raises(TypeError):
        call_arguments(File, {"path": "/x", "nope": [1]})


@pytest.mark.parametrize(
    "value",
    [
        None,
        "text",
        {"a": 1, "b": None},
        {"eth0": {"mtu": 1500, "addresses": ["10.0.0.1/24"]}, 3: [True, 2.5]},
        [{"dst": "default", "gateway": "10.0.2.2"}],
        {"when": datetime.datetime(2026, 1, 1), "groups": {"a", "b"}},
    ],
)
def test_deep_copy_is_equal_and_independent(value) -> None:
    got = deep_copy(value)
    assert got == copy.deepcopy(value)
    if isinstance(value, dict | list):
        assert got is not value
        inner = [v for v in (value.values() if isinstance(value, dict) else value) if isinstance(v, dict | list | set)]
        copied = [v for v in (got.values() if isinstance(got, dict) else got) if isinstance(v, dict | list | set)]
        assert all(a is not b for a, b in zip(inner, copied, strict=True))


def test_popping_global_arguments_gives_what_pyinfra_gives() -> None:
    pyinfra_speed.install()
    pyinfra_speed.install()  # idempotent
    arguments = importlib.import_module("pyinfra.api.arguments")
    operation = importlib.import_module("pyinfra.api.operation")
    assert operation.pop_global_arguments is arguments.pop_global_arguments
    original = arguments.pop_global_arguments.__wrapped__
    state, host = fake_state(FakeRemote(), {"_sudo": True, "_sudo_user": "root", "kvpod_x": [1]})
    host.data.kvpod_y = "set during the deploy"
    for given in ({}, {"_sudo": False, "_retries": 2}, {"_ignore_errors": True, "other": 1}):
        fast, slow = dict(given), dict(given)
        assert arguments.pop_global_arguments(state, host, fast) == original(state, host, slow)
        assert fast == slow  # the same arguments popped
    assert type(host.data).__name__ == "HostData"  # the host's own data is back
    assert host.data.kvpod_y == "set during the deploy"
    assert arguments.all_global_arguments() == list(
        importlib.import_module("typing").get_type_hints(arguments.AllArguments).items()
    )


def test_popping_global_arguments_from_every_layer_gives_what_pyinfra_gives() -> None:
    from pyinfra.api.exceptions import ArgumentTypeError

    pyinfra_speed.install()
    arguments = importlib.import_module("pyinfra.api.arguments")
    fast_pop, slow_pop = arguments.pop_global_arguments, arguments.pop_global_arguments.__wrapped__
    data = {"_env": {"A": "1"}, "_retries": 1, "_success_exit_codes": [0, 2], "_sudo_user": "root"}
    state, host = fake_state(FakeRemote(), data)
    host.data._timeout = 5  # pyinfra's override layer, searched first
    host.data._sudo_user = "kvpod"
    host.current_deploy_kwargs = {"_sudo": True, "_env": {"B": "2"}, "_retries": 3}
    try:
        for given in ({}, {"_env": {"C": "3"}}, {"_timeout": 9, "_sudo": False, "kvpod_other": 1}):
            fast, slow = dict(given), dict(given)
            got = fast_pop(state, host, fast)
            assert got == slow_pop(state, host, slow)
            assert fast == slow
            assert got[0]["_sudo_user"] == "kvpod" and got[0]["_retries"] == 3
            assert got[0]["_success_exit_codes"] == [0, 2]
            got[0]["_success_exit_codes"].append(1)  # a copy: the host's data keeps its own
            assert host.data._success_exit_codes == [0, 2]
        errors = []
        for pop in (fast_pop, fast_pop, slow_pop):  # a wrong value is refused each time
            with pytest.raises(ArgumentTypeError) as raised:
                pop(state, host, {"_retries": "many"})
            errors.append(str(raised.value))
        assert errors[0] == errors[1] == errors[2]
    finally:
        host.current_deploy_kwargs = None


def test_full_collections_are_rare_once_installed() -> None:
    import gc

    pyinfra_speed.install()
    assert gc.get_threshold() == pyinfra_speed.GC_THRESHOLDS
    assert gc.isenabled()  # young garbage is still collected


def test_kept_parts_of_the_state_read_are_what_building_them_gives() -> None:
    from pyinfra.facts.files import File, Sha1File
    from pyinfra.facts.server import Sysctl
    from pyinfra.facts.systemd import SystemdStatus

    from deploy.facts import snapshot, snapshot_groups
    from deploy.facts.snapshot import Read

    reads = list(node_reads(build_plan(load_spec(lab_spec())).nodes[0]))
    script = snapshot.snapshot_script(reads)
    assert script == snapshot._script.built(tuple(reads))
    assert snapshot.snapshot_script(list(reads)) is script  # kept for the next host reading alike
    taken = snapshot.SnapshotReads(reads)
    assert snapshot.HostSnapshot().command(taken) is script and taken == tuple(reads)
    assert str(taken) == repr(taken) == f"<{len(reads)} reads>", "pyinfra's log lines print the count"
    for read in (r for r in reads * 2 if isinstance(r, Read)):
        assert snapshot._grouping(read) == snapshot._grouping.built(read)
        assert snapshot._read_section(read) == snapshot._read_section.built(read)
    unhashable = Read(File, (("path", "/etc/x"), ("odd", {"not": "hashable"})))
    with pytest.raises(TypeError):  # refused as building it refuses it
        snapshot._grouping(unhashable)
    key = snapshot_groups._member_key
    assert key(File, "path", "/etc/x", False) == read_key(File, {"path": "/etc/x"})
    assert key(Sysctl, "keys", "vm.swappiness", True) == read_key(Sysctl, {"keys": ["vm.swappiness"]})
    assert key(SystemdStatus, "services", "a.service", True) == read_key(SystemdStatus, {"services": ["a.service"]})
    digest = "a" * 40
    for path, line in (("/etc/x", f"{digest}  /etc/x"), ("/etc/x", f"{digest}  /etc/y"), ("/e t", f"{digest}  /e t")):
        fact = Sha1File()
        fact.command(path)
        for _ in range(2):
            assert snapshot_groups._sha1_of(path, line) == fact.process([line])


def test_kept_renders_are_what_rendering_gives_and_tell_alike_looking_values_apart() -> None:
    from deploy import encode, rendered
    from deploy.shipped import templates_dir

    sysctls = str(templates_dir() / "fabric_network" / "sysctl.conf.j2")
    texts = set()
    for value in (1, True, 1.0, 0.0, -0.0, "1"):  # equal or alike-looking values that print differently
        for _ in range(2):  # the second time from what was kept
            text = rendered.render(sysctls, sysctls={"net.core.rmem_max": value})
            assert text == encode.render(sysctls, sysctls={"net.core.rmem_max": value})
        texts.add(text)
    assert len(texts) == 5, "1 and '1' print alike; the others each differently"
    for _ in range(2):  # a render that fails is not kept: it fails again
        with pytest.raises(encode.EncodeError):
            rendered.render(sysctls, sysctls={"not a key": 1})
    assert rendered.frozen({"a": 0.0}) != rendered.frozen({"a": -0.0})
    assert rendered.frozen([1]) != rendered.frozen([True]) != rendered.frozen((1,))
    assert rendered.frozen({"a": 1, "b": 2}) != rendered.frozen({"b": 2, "a": 1}), "templates iterate in order"
    assert rendered.frozen({"a": object()}) is None, "only plain values are kept"
