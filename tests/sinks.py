"""The receiving programs of kvpod's files, for the sink tests: each file read back the way the program that
consumes it reads it.

- systemd units: ``systemd-analyze verify`` (in a scratch root with stand-in executables) accepts them, and
  :func:`unit_settings` / :func:`exec_argv` read them by systemd's documented rules (systemd.syntax(7),
  systemd.service(5) "Command lines"; no systemd tool prints an ``ExecStart=`` argv without a running manager).
- EnvironmentFile: :func:`env_file_values` is systemd's ``EnvironmentFile=`` reader (systemd.exec(5),
  env-file.c's states: quotes, escapes, comments, continuations) as a state machine.
- shell scripts: ``bash -n``, ``dash -n``, ``shellcheck``, and :func:`run_script`, which runs a script under
  ``sh`` with every command that changes the host replaced by a function recording its argv.
- ssh_config: ``ssh -G`` (prints the options it would use; connects to nothing).
- Every rendered file of a plan: :func:`node_files` and :func:`target_files` (the roles against fake hosts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from benchmarks.kvpod_sim import fresh_node, simulated
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.encode import EncodeError
from deploy.plan import NodePlan, TargetPlan
from roles.node import node
from roles.nvmet_target import nvmet_target

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SHELLCHECK = shutil.which("shellcheck")
DASH = shutil.which("dash")
SSH = shutil.which("ssh")

UNIT_SUFFIXES = (".service", ".mount")

# -- rendering every file of a plan ------------------------------------------------------------------------


def node_files(plan: NodePlan, netplan: bool = False) -> dict[str, str]:
    """Every file the node roles write for ``plan`` on a fresh node (path -> text)."""
    remote = fresh_node(plan, netplan=netplan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    if host in state.failed_hosts:
        last = remote.executed[-1] if remote.executed else ""
        if last.startswith("echo ") and "kvpod: " in last:
            raise EncodeError(last)  # an operation refused a value its destination cannot carry
        raise AssertionError(f"the node deploy failed: {remote.executed[-3:]}")
    return dict(remote.uploads)


def target_files(targets: list[TargetPlan]) -> dict[str, str]:
    """Every file the nvmet target role writes for the enclosures of one server (path -> text)."""
    links = {p.interface: {"mtu": 1500, "up": False, "addresses": []} for t in targets for p in t.portals}
    facts = {
        "kernel.LoadedModules": {},
        "kernel.RdmaLinks": {},
        "network.IpLinks": {"lo": {"mtu": 65536, "up": True, "addresses": []}, **links},
        "network.IpRoutes": [],
        "files.File": {},
        "nvmet.NvmetConfig": {"present": True, "subsystems": {}, "ports": {}, "hosts": []},
    }
    remote = simulated(FakeRemote(facts=facts, units={"systemd-networkd.service": {"running": True, "enabled": True}}))
    commands = changed_commands(deploy_plan(nvmet_target, remote, {"kvpod_targets": targets}))
    return {c[2]: c[1] for c in commands if isinstance(c, list) and c[0] == "upload"}


# -- systemd unit files ---------------------------------------------------------------------------------------


def unit_settings(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` of a unit file as systemd's parser sees them: comments (``#``, ``;``) and
    blank lines skipped, a trailing backslash joins the next line, key and value stripped."""
    out: list[tuple[str, str, str]] = []
    section = ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i]
            i += 1
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not a key=value line: {stripped!r}"
        out.append((section, key.strip(), value.strip()))
    return out


def raw_unit_value(text: str, section: str, key: str) -> str:
    """The one value of ``key`` in ``section`` as written (an ``Exec*=`` line goes to :func:`exec_argv`)."""
    (value,) = [v for s, k, v in unit_settings(text) if (s, k) == (section, key)]
    return value


def unit_value(text: str, section: str, key: str) -> str:
    """The one value of ``key`` in ``section``, specifiers expanded (only ``%%`` is allowed)."""
    return expand_specifiers(raw_unit_value(text, section, key))


def expand_specifiers(value: str) -> str:
    """``%%`` -> ``%``; any other specifier is an error (kvpod never means one)."""

    def one(match: re.Match) -> str:
        assert match[0] == "%%", f"unexpected specifier {match[0]!r} in {value!r}"
        return "%"

    return re.sub(r"%.?", one, value, flags=re.S)


_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "s": " "}
_C_ESCAPES.update({c: c for c in "\\\"'"})


def _unescape(text: str, i: int) -> tuple[str, int]:
    """One C escape at ``text[i]`` (after the backslash) -> (character, next index)."""
    c = text[i]
    if c in _C_ESCAPES:
        return _C_ESCAPES[c], i + 1
    for prefix, width, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if c == prefix:
            code = int(text[i + 1 : i + 1 + width], base)
            assert code != 0, "systemd refuses \\0"
            return chr(code), i + 1 + width
    if c in "01234567":
        code = int(text[i : i + 3], 8)
        assert code != 0, "systemd refuses \\0"
        return chr(code), i + 3
    raise AssertionError(f"invalid escape \\{c}")


def exec_argv(value: str) -> list[str]:
    """An ``ExecStart=`` value split into argv as systemd does: specifiers first (only ``%%``), words separated
    by blanks, single or double quotes grouping, C escapes inside and outside quotes, an unquoted lone ``;``
    separating commands (refused here), ``$$`` -> ``$`` and no ``$VAR`` expansion (refused here), the first
    word's ``-@:+!`` prefixes dropped."""
    text = expand_specifiers(value)
    words: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\n":
            i += 1
        if i >= len(text):
            break
        assert not (text[i] == ";" and (i + 1 == len(text) or text[i + 1] in " \t")), "a second command"
        word, quote = [], None
        while i < len(text):
            c = text[i]
            if quote is None and c in " \t\n":
                break
            if c == "\\":
                ch, i = _unescape(text, i + 1)
                word.append(ch)
                continue
            if quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
            else:
                word.append(c)
            i += 1
        assert quote is None, f"unterminated quote in {value!r}"
        words.append("".join(word))
    argv = []
    for word in words:
        assert not re.search(r"(?<!\$)\$(?!\$)", word.replace("$$", "")), f"environment expansion in {word!r}"
        argv.append(word.replace("$$", "$"))
    if argv:
        argv[0] = argv[0].lstrip("-@:+!")
    return argv


def systemd_verify(units: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``units`` (name -> text) in a scratch root whose executables are
    stand-ins (the first word of every ``Exec*=``), so only the units themselves are judged."""
    root = tmp / "root"
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
        for _, key, value in unit_settings(text):
            if key.startswith("Exec"):
                exe = root / exec_argv(value)[0].lstrip("/")
                exe.parent.mkdir(parents=True, exist_ok=True)
                exe.write_text("#!/bin/sh\n")
                exe.chmod(0o755)
    paths = [str(unit_dir / name) for name in units]
    return subprocess.run(
        [SYSTEMD_ANALYZE or "systemd-analyze", "verify", "--man=no", "--recursive-errors=no", f"--root={root}", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


# -- EnvironmentFile ------------------------------------------------------------------------------------------


def env_file_values(text: str) -> dict[str, str]:
    """systemd's ``EnvironmentFile=`` reader: ``KEY=value`` lines; ``#``/``;`` comments; unquoted values with
    backslash escapes and trailing blanks dropped; ``'...'`` literal; ``"..."`` with ``\\"``, ``\\\\``,
    ``\\```, ``\\$`` unescaped, a backslash-newline continuing, other backslashes kept; newlines kept inside
    quotes."""
    out: dict[str, str] = {}
    state, key, value, trailing = "pre_key", "", "", 0
    for c in text + "\n":
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key = "key", c
        elif state == "key":
            if c in "\n\r":
                state, key = "pre_key", ""
            elif c == "=":
                state, value, trailing = "pre_value", "", 0
            else:
                key += c
        elif state == "pre_value":
            if c in "\n\r":
                out[key.strip()] = value
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif not c.isspace():
                state, value, trailing = "value", value + c, 0
        elif state == "value":
            if c in "\n\r":
                out[key.strip()] = value[: len(value) - trailing] if trailing else value
                state = "pre_key"
            elif c == "\\":
                state, trailing = "value_escape", 0
            else:
                value += c
                trailing = trailing + 1 if c.isspace() else 0
        elif state == "value_escape":
            state = "value"
            if c not in "\n\r":
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in '"\\`$':
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in "\n\r":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    assert state == "pre_key", f"the file ends inside a value ({state})"
    for name, val in out.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f"systemd drops the invalid name {name!r}"
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", val), f"systemd drops {name}: control character"
    return out


# -- shell scripts --------------------------------------------------------------------------------------------

# Commands that change or wait on the host become functions recording their argv (count, then each word,
# NUL-terminated). mkdir also creates directories under the sandbox ($C), so redirections there work.
RECORDED = ("modprobe", "mount", "mountpoint", "ip", "grep", "sleep", "truncate", "ln", "rm", "nvme", "find")
RECORDED += ("chown", "chmod")
_PRELUDE = """rec() { printf '%s\\0' "$#" "$@" >> "$KVPOD_LOG"; }
{functions}
mkdir() {{
  rec mkdir "$@"
  for a in "$@"; do case "$a" in "${C:-/nonexistent}"/*) command mkdir -p -- "$a" ;; esac; done
}}
cd() {{
  rec cd "$@"
  for a in "$@"; do d=$a; done
  case $d in /*) d=$KVPOD_ROOT$d ;; esac
  command mkdir -p -- "$d" && command cd -P -- "$d"
}}
pwd() {{ p=$(command pwd -P); printf '%s\n' "${p#"$KVPOD_ROOT"}"; }}
"""


def run_script(text: str, tmp: Path, sandbox_var: str | None = None, args: tuple[str, ...] = ()) -> list[list[str]]:
    """Run ``text`` under ``sh`` (with ``args``) with the host-changing commands recorded instead of run; returns
    their argv. ``cd`` and ``pwd`` are recorded too and move within a scratch root standing in for the host's tree.

    ``sandbox_var``: the script's ``NAME=<configfs root>`` line is pointed at a scratch directory."""
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "argv.log"
    log.write_bytes(b"")
    sandbox = tmp / "sandbox"
    sandbox.mkdir(exist_ok=True)
    root = tmp / "root"  # `cd` and `pwd` see the host's directories under here
    root.mkdir(exist_ok=True)
    lines = text.split("\n")
    if sandbox_var:
        lines = [f"{sandbox_var}={sandbox}" if line.startswith(f"{sandbox_var}=/") else line for line in lines]
    functions = "\n".join(f'{c}() {{ rec {c} "$@"; }}' for c in RECORDED if c != "mkdir")
    prelude = _PRELUDE.replace("{functions}", functions).replace("{{", "{").replace("}}", "}")
    script = tmp / "script.sh"
    script.write_text(lines[0] + "\n" + prelude + "\n".join(lines[1:]))
    result = subprocess.run(
        ["sh", str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KVPOD_LOG": str(log),
            "KVPOD_ROOT": str(root),
            "LC_ALL": "C.UTF-8",
        },
    )
    assert result.returncode == 0, result.stderr
    return parse_argv_log(log.read_bytes())


def parse_argv_log(data: bytes) -> list[list[str]]:
    fields = data.split(b"\0")[:-1]
    calls, i = [], 0
    while i < len(fields):
        count = int(fields[i])
        calls.append([f.decode("utf-8", "surrogateescape") for f in fields[i + 1 : i + 1 + count]])
        i += 1 + count
    return calls


def shell_checks(path: Path) -> list[str]:
    """Problems ``bash -n``, ``dash -n`` and ``shellcheck -s sh`` (every severity) report for ``path``."""
    problems = []
    tools = [["bash", "-n"], *([[DASH, "-n"]] if DASH else []), [SHELLCHECK or "shellcheck", "-s", "sh", "-f", "gcc"]]
    for argv in tools:
        result = subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            problems.append(f"{argv[0]}: {result.stdout}{result.stderr}")
    return problems


# -- ssh_config ------------------------------------------------------------------------------------------------


def ssh_options(config: Path, host: str) -> dict[str, list[str]]:
    """``ssh -G -F config host``: every option ssh would use (lowercase key -> values); connects to nothing."""
    result = subprocess.run(
        [SSH or "ssh", "-G", "-F", str(config), host],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    out: dict[str, list[str]] = {}
    for line in result.stdout.split("\n"):
        key, _, value = line.partition(" ")
        if key:
            out.setdefault(key.lower(), []).append(value)
    return out
