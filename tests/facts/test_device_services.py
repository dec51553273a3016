"""Starting kvpod's soft-RoCE and NVMe connect services stales what their scripts change, no less: every command of
the rendered scripts is a read or changes no more than :func:`deploy.facts.effects.device_service_start` gives, and
their units pull in no unit but device units and those :data:`deploy.facts.effects.DEVICE_UNIT_WANTS` lists. A
command added to a script, or a dependency added to a unit, that does more fails here."""

from __future__ import annotations

import re
import shlex
from functools import cache

import pytest
from pyinfra.facts.files import Directory, File

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, deploy_run
from deploy.facts.effect_model import Effect, _part_stales, stales
from deploy.facts.effects import DEVICE_SCRIPT_COMMANDS, DEVICE_UNIT_WANTS, device_service_start, effect_of_command
from deploy.facts.snapshot import Read
from deploy.loader import load_spec
from deploy.names import CONNECT_SCRIPT, CONNECT_UNIT, RXE_UNIT, SYSTEMD_DIR
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec, reference_spec
from roles.node import node
from roles.node import reads as node_reads
from tests.facts.test_effects import KEYS

# commands that change nothing (``ip`` only as ``ip -o -4 addr show``); ``connected`` is the script's own function
READERS = {"cat", "grep", "sleep", "echo", "[", "exit", "return", "break", "continue", "true", "set", "connected"}
SEPARATORS = {";", ";;", "&&", "||", "|", "&", "(", ")", "()", "{", "}"}
KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "esac"}
UNIT_KEYS = {"Description", "Requires", "Wants", "After", "Before", "Type", "RemainAfterExit", "ExecStart"}
UNIT_KEYS |= {"TimeoutStartSec", "WantedBy"}
SYSFS_SUBSYSTEM = "/sys/class/nvme-subsystem/nvme-subsys0"


@cache
def _converged(spec: str) -> tuple[NodePlan, FakeRemote]:
    plan = build_plan(load_spec(lab_spec() if spec == "lab" else reference_spec())).nodes[0]
    remote = fresh_node(plan)
    remote.packages["python3-venv"] = ["3.11"]
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts
    return plan, remote


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split, lexer.commenters = True, ""
    return list(lexer)


def simple_commands(script: str) -> list[tuple[list[str], list[str]]]:
    """Each simple command of a POSIX shell script: ``(words, files it writes)``; redirections to /dev/null and to
    file descriptors left out, command substitutions listed as commands of their own. Enough for kvpod's scripts."""
    text = re.sub(r"\$\(\([^()]*\)\)", "0", script)  # arithmetic
    text = " ; ".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
    commands: list[tuple[list[str], list[str]]] = []
    current: list[str] = []
    writes: list[str] = []
    pattern = False  # inside a ``case`` pattern, up to its ``)``
    tokens = iter(_words(text))
    for token in tokens:
        for inner in re.findall(r"\$\((.*)\)", token):
            commands += simple_commands(inner)
        if pattern:
            pattern = token not in (")", "esac")
            continue
        if token in (">", ">>"):
            target = next(tokens)
            if target != "/dev/null":
                writes.append(target)
            if current and current[-1].isdigit():
                current.pop()
            continue
        if token in (">&", "<"):
            next(tokens)
            if current and current[-1].isdigit():
                current.pop()
            continue
        if token in SEPARATORS or (not current and token in KEYWORDS):
            if current:
                commands.append((current, writes))
            current, writes = [], []
            pattern = token == ";;"
            continue
        current.append(token)
        if current[0] == "case" and token == "in":
            current, writes, pattern = [], [], True
    if current:
        commands.append((current, writes))
    return [(w, f) for w, f in commands if w[0] != "for" and not re.fullmatch(r"[A-Za-z_]\w*=.*", w[0])]


def _expand(word: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: SYSFS_SUBSYSTEM if m.group(1) == "s" else "value", word)


def changes(script: str) -> list[str]:
    """The commands of ``script`` that are not reads, as plain commands (variables replaced)."""
    out = []
    for words, writes in simple_commands(script):
        words = words[1:] if words[0] == "exec" else words
        if words[0] in READERS and not writes:
            continue
        if words[:5] == ["ip", "-o", "-4", "addr", "show"] and not writes:
            continue
        command = shlex.join(_expand(w) for w in words)
        out.append(command + "".join(f" > {shlex.quote(_expand(t))}" for t in writes))
    return out


def uncovered(service: Effect, commands: list[str], keys: list[str]) -> list[str]:
    """The commands whose effect ``service`` misses: a read (of ``keys``, or of a path they touch) they stale that
    it does not, a part they change or leave settling that it does not."""
    missed = []
    for command in commands:
        effect = effect_of_command(command)
        touched = [Read.of(cls, path=t.path).key for t in effect.paths for cls in (File, Directory)]
        more = [k for k in [*keys, *touched] if stales(effect, k) and not stales(service, k)]
        parts = [p for p in effect.parts if not any(_part_stales(s, p) for s in service.parts)]
        settling = [u for u in effect.unsettled if not any(_part_stales(s, u) for s in service.unsettled)]
        if effect.everything or more or parts or settling:
            missed.append(command)
    return missed


def _keys(plan: NodePlan) -> list[str]:
    return sorted({*KEYS.values(), *(r.key for r in node_reads(plan) if isinstance(r, Read))})


def _unit(remote: FakeRemote, unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in remote.files[f"{SYSTEMD_DIR}/{unit}"]["content"].splitlines():
        key, eq, value = line.partition("=")
        if eq and not line.startswith("#"):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _scripts(remote: FakeRemote) -> dict[str, str]:
    scripts = {CONNECT_UNIT: remote.files[CONNECT_SCRIPT]["content"]}
    if f"{SYSTEMD_DIR}/{RXE_UNIT}" in remote.files:
        (exec_start,) = _unit(remote, RXE_UNIT)["ExecStart"]
        argv = shlex.split(exec_start.replace("$$", "$"))
        assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
        scripts[RXE_UNIT] = argv[2]
    return scripts


@pytest.mark.parametrize("spec", ["lab", "reference"])
def test_a_device_services_script_changes_no_more_than_its_start_stales(spec: str) -> None:
    plan, remote = _converged(spec)
    scripts = _scripts(remote)
    assert (RXE_UNIT in scripts) == (spec == "lab")  # soft-RoCE in the lab, hardware RoCE in the reference pod
    for unit, script in scripts.items():
        found = changes(script)
        assert found, "no command found: the script was not parsed"
        assert uncovered(device_service_start(unit), found, _keys(plan)) == [], unit
        declared = {" ".join(c.split()[:2]) for c in DEVICE_SCRIPT_COMMANDS[unit]}
        assert declared <= {" ".join(c.split()[:2]) for c in found}, "a declared command the script no longer runs"


@pytest.mark.parametrize("spec", ["lab", "reference"])
def test_a_device_services_unit_runs_its_script_alone_and_pulls_in_only_what_its_start_covers(spec: str) -> None:
    _, remote = _converged(spec)
    for unit in _scripts(remote):
        found = _unit(remote, unit)
        assert set(found) <= UNIT_KEYS, f"{unit}: {sorted(set(found) - UNIT_KEYS)}"
        assert found["Type"] == ["oneshot"]  # its start returns once the script has run
        pulled = [u for key in ("Requires", "Wants") for value in found.get(key, []) for u in value.split()]
        assert all(u.endswith(".device") or u in DEVICE_UNIT_WANTS.get(unit, ()) for u in pulled), pulled
    assert list(DEVICE_UNIT_WANTS[CONNECT_UNIT]) == [RXE_UNIT]


def test_a_command_added_to_a_script_is_found_and_refused() -> None:
    plan, remote = _converged("lab")
    script = remote.files[CONNECT_SCRIPT]["content"]
    keys = _keys(plan)
    service = device_service_start(CONNECT_UNIT)
    assert uncovered(service, changes(script), keys) == []
    for added in (
        "rm -rf /var/lib/vllm",
        'ip link set dev "$IFACE" up',
        "systemctl restart kvpod-vllm@0.service",
        "[ -d /x ] && udevadm trigger",
        'printf "%s\\n" 1 > /etc/kvpod/flag',
        'x="$(mkdir -p /etc/kvpod)"',
    ):
        changed = script.replace("exit 0\n", added + "\nexit 0\n")
        assert uncovered(service, changes(changed), keys), added
