"""A fake host for pyinfra 3 tests: a real ``State`` and ``Host`` (``@fake`` connector) whose facts come from a
:class:`FakeRemote` -- fixture facts plus a small model of files, directories, users, packages, units -- and
whose executed commands can change that model, so a fresh host can be deployed and then found converged.

Fixture fact keys are ``<module>.<Fact>`` (``nvme.NvmeSubsystems``, ``files.File``); facts with arguments map
pyinfra's argument string (``device=/dev/nvme1n1``, ``path=/etc/x``) to the value.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import io
import itertools
import json
import re
import shlex
import tarfile
from collections.abc import Callable, Iterable
from io import IOBase
from pathlib import Path
from typing import Any

from pyinfra.api import Config, FileUploadCommand, FunctionCommand, Inventory, State, StringCommand
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operations import run_ops
from pyinfra.api.util import get_kwargs_str
from pyinfra.connectors.fake import FakeConnector
from pyinfra.context import ctx_host, ctx_state

from deploy.engine import RunStats, SnapshotReader
from deploy.facts.bundle_command import extracted
from deploy.facts.nvme import NvmeSubsystems, namespace_of
from deploy.facts.snapshot import DEVICE_FACTS, NamespaceReads, read_key
from deploy.operations import planned_commands

HOST_NAME = "@fake/node1"

# Directories any Debian host has: uploads into them need no mkdir.
SYSTEM_DIRS = (
    "/",
    "/etc",
    "/etc/modules-load.d",
    "/etc/sysctl.d",
    "/etc/systemd",
    "/etc/systemd/system",
    "/etc/systemd/network",
    "/mnt",
    "/root",
    "/srv",
    "/usr",
    "/usr/local",
    "/usr/local/sbin",
    "/var",
    "/var/lib",
)

Effect = Callable[["FakeRemote", list[str]], Any]

# The shapes of the commands kvpod's roles and operations issue (what the fast tests see them emit). The fake host
# refuses anything else loudly: a command kvpod never issues (``wipefs -a``, ``dd of=/dev/...``, a misspelt
# ``nvme conect``) is a bug in the code under test, never a success.
_ARGS = r"[^;&|`$\n]*"  # the rest of a plain command: arguments, no second command chained on
KVPOD_COMMANDS = tuple(
    re.compile(shape.replace("ARGS", _ARGS), re.DOTALL)
    for shape in (
        r"modprobe -a( [\w-]+)+",
        r"ip (link (set|add|delete)|addr (add|del)|route replace) ARGS",
        r"rdma link add \S+ type rxe netdev \S+",
        r"dcb (app replace dev \S+ dscp-prio( \d+:[0-7])+|pfc set dev \S+ prio-pfc( [0-7]:(on|off)){8})",
        r"sysctl [\w.]+=ARGS",
        r"(networkctl reload|netplan apply|udevadm settle)",
        r"systemctl (daemon-reload|(start|stop|restart|enable|enable --now|disable)( ([\w@.:-]+|'[\w@.:\\-]+'))+)",
        r"systemctl stop 'kvpod-vllm\*\.service'",  # every vLLM unit, old or engine (a glob systemctl matches)
        r"nvme (connect --transport \w+ --nqn \S+ --traddr \S+ --trsvcid \d+ ARGS|disconnect --nqn \S+|ns-rescan \S+)",
        r"if blkid -p \S+ >/dev/null 2>&1; \[ \$\? -eq 2 \]; then mkfs\.ext4 -q -m 0 -O mmp ARGS; "
        r"else echo '[^']*' >&2; exit 1; fi",
        r"mkfs\.ext4 -F -q -m 0 -O mmp ARGS",
        r"tune2fs -O mmp \S+",
        r"mount -o remount,\S+ ARGS",
        r"umount ARGS",
        # the wait for a namespace to appear (deploy/operations/nvme.py), the guarded disconnect (roles/node_release)
        r"sh -c '(for i in \$\(seq \d+\); do for s in /sys/class/nvme-subsystem/"
        r"|for d in \"\$@\"; do for p in /sys/class/block/).+",
        # the multipath I/O policy of a subsystem found by NQN (deploy/operations/nvme.py set_iopolicy)
        r"sh -c 'for s in /sys/class/nvme-subsystem/nvme-subsys\*; do .+' \S+ (numa|round-robin|queue-depth)",
        r"echo '[^']*' >&2; exit 1",  # a refusal on the host
        # the restart of a batch's engines and the wait for their health (roles/vllm_restart)
        r"systemctl restart -- [\w@.:' -]+; python3 -c .+",
        r"(mkdir|mkdir -p|rm|rm -f|rm -rf|ln -s|chmod [0-7]{3,4}|chown [\w.:-]+|truncate -s \d+) ARGS",
        r"printf '%s(\\n)?' ARGS",
        r"install -d -m [0-7]{3,4} -o [\w.-]+ -g [\w.-]+ ARGS",
        r"useradd --system ARGS",
        r"DEBIAN_FRONTEND=noninteractive apt-get -y ARGS install [\w.+ -]+",
        r"\S+/bin/python3? -m (venv|pip install) ARGS",
    )
)


class UnknownCommand(AssertionError):
    """The code under test ran a command kvpod never issues."""


def fact_key(cls: type) -> str:
    """Fixture key: ``deploy.facts.nvme.NvmeSubsystems`` -> ``nvme.NvmeSubsystems``, ``files.File``."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _content_of(src: Any) -> str:
    """A file's content as text; bytes that are not UTF-8 (a wheel) kept as surrogates, so checksums match."""
    if isinstance(src, IOBase) or hasattr(src, "read"):
        src.seek(0)
        data = src.read()
        src.seek(0)
        return data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    return Path(src).read_bytes().decode("utf-8", "surrogateescape")


class FakeRemote:
    """Serves facts to pyinfra operations and applies executed commands to its model of the host."""

    def __init__(
        self,
        facts: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        dirs: dict[str, dict] | None = None,
        users: dict[str, dict] | None = None,
        groups: Iterable[str] | None = None,
        packages: dict[str, list[str]] | None = None,
        units: dict[str, dict] | None = None,
        sysctls: dict[str, Any] | None = None,
        mounts: dict[str, dict] | None = None,
        which: dict[str, str | None] | None = None,
    ):
        self.facts: dict[str, Any] = copy.deepcopy(facts or {})
        self.files: dict[str, dict] = {}
        for path, value in (files or {}).items():
            self.files[path] = value if isinstance(value, dict) else {"content": value}
        self.dirs: dict[str, dict] = copy.deepcopy(dirs or {})
        self.users = copy.deepcopy(users or {})
        self.groups = set(groups or ["root"])
        self.packages = copy.deepcopy(packages or {})
        self.units = copy.deepcopy(units or {})
        self.sysctls = copy.deepcopy(sysctls or {})
        self.mounts = copy.deepcopy(mounts or {})
        self.which = {"apt": "/usr/bin/apt", "useradd": "/usr/sbin/useradd", "systemctl": "/usr/bin/systemctl"}
        self.which.update(which or {})
        self.effects: list[tuple[str, Effect]] = []
        self.venvs: dict[str, dict] = {}  # path -> {"python": bool, "packages": {name: version}}
        self.executed: list[str] = []
        self.uploads: dict[str, str] = {}
        # path prefix -> hook(remote, path, content): an extracted file this model keeps elsewhere than ``files``
        self.file_hooks: dict[str, Callable[[FakeRemote, str, str], None]] = {}

    # -- facts -------------------------------------------------------------------------------------------

    def get_fact(self, cls: type, *args, **kwargs) -> Any:
        key = fact_key(cls)
        if args:
            raise TypeError(f"pass {key}'s arguments by name in tests")
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        if key in self.facts:
            value = self.facts[key]
            if not kwargs:
                return copy.deepcopy(value)
            arg = get_kwargs_str(kwargs)
            if arg in value:
                return copy.deepcopy(value[arg])
        derived = getattr(self, "_fact_" + key.replace(".", "_"), None)
        if derived is None:
            raise KeyError(f"no test fact {key}({get_kwargs_str(kwargs)})")
        return derived(**kwargs)

    def _fact_snapshot_HostSnapshot(self, reads: tuple) -> dict:
        """What the one-command snapshot of ``reads`` would find (reads this fake cannot answer left out)."""
        self.snapshots = getattr(self, "snapshots", 0) + 1
        values: dict[str, Any] = {}
        for r in reads:
            wanted = []
            if isinstance(r, NamespaceReads):
                ns = namespace_of(self.get_fact(NvmeSubsystems), r.subnqn, r.nsid)
                if ns is not None:
                    wanted = [(cls, {"device": f"/dev/{ns['name']}"}) for cls in DEVICE_FACTS]
            else:
                wanted = [(r.fact, r.arguments())]
            for cls, kwargs in wanted:
                with contextlib.suppress(KeyError):
                    values[read_key(cls, kwargs)] = self.get_fact(cls, **kwargs)
        return values

    def _fact_python_VenvPackages(self, venv: str) -> dict:
        return copy.deepcopy(self.venvs.get(venv, {"python": False, "packages": {}}))

    def _is_dir(self, path: str) -> bool:
        path = path.rstrip("/") or "/"
        if path in self.dirs or path in SYSTEM_DIRS:
            return True
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for paths in (self.files, self.dirs) for p in paths)

    def _fact_files_File(self, path: str) -> dict | bool | None:
        if path in self.files:
            f = self.files[path]
            return {
                "user": f.get("user", "root"),
                "group": f.get("group", "root"),
                "mode": f.get("mode", 644),
                "size": len(f.get("content", "")),
            }
        return False if self._is_dir(path) else None

    def _sum(self, path: str, algo: str) -> str | None:
        if path not in self.files:
            return None
        return hashlib.new(algo, self.files[path].get("content", "").encode("utf-8", "surrogateescape")).hexdigest()

    def _fact_files_Sha1File(self, path: str) -> str | None:
        return self._sum(path, "sha1")

    def _fact_files_Md5File(self, path: str) -> str | None:
        return self._sum(path, "md5")

    def _fact_files_Sha256File(self, path: str) -> str | None:
        return self._sum(path, "sha256")

    def _fact_files_FileContents(self, path: str) -> list[str] | None:
        return self.files[path].get("content", "").splitlines() if path in self.files else None

    def _fact_files_Directory(self, path: str) -> dict | bool | None:
        path = path.rstrip("/") or "/"
        if path in self.files:
            return False
        if not self._is_dir(path):
            return None
        d = self.dirs.get(path, {})
        default_mode = 700 if path == "/root" else 755  # root's home, as Debian makes it
        return {"user": d.get("user", "root"), "group": d.get("group", "root"), "mode": d.get("mode", default_mode)}

    def _fact_files_Link(self, path: str) -> None:
        return None

    def _fact_server_TmpDir(self) -> str:
        return "/tmp"

    def _fact_server_Os(self) -> str:
        return "Linux"

    def _fact_server_LinuxName(self) -> str:
        return "Debian"

    def _fact_server_Which(self, command: str) -> str | None:
        return self.which.get(command)

    def _fact_server_Users(self) -> dict:
        return copy.deepcopy(self.users)

    def _fact_users_PasswdEntry(self, user: str) -> dict | None:
        entry = self.users.get(user)
        if entry is None:
            return None
        return {"name": user, "uid": 999, "gid": 999, "home": entry["home"], "shell": entry["shell"]}

    def _fact_server_Groups(self) -> set[str]:
        return set(self.groups)

    def _fact_server_Home(self, user: str | None = None) -> str | None:
        return self.users.get(user or "root", {}).get("home")

    def _fact_server_Sysctl(self, keys: list[str] | None = None) -> dict:
        return {k: v for k, v in self.sysctls.items() if keys is None or k in keys}

    def _fact_server_Mounts(self) -> dict:
        return copy.deepcopy(self.mounts)

    def _fact_deb_DebPackages(self) -> dict:
        return {name: list(versions) for name, versions in self.packages.items()}

    def _units_fact(self, field: str, services: list[str] | str | None = None, **_: Any) -> dict[str, bool]:
        names = [services] if isinstance(services, str) else list(services or self.units)
        return {n: bool(self.units.get(n, {}).get(field, False)) for n in names if n in self.units}

    def _fact_systemd_SystemdStatus(self, **kwargs: Any) -> dict[str, bool]:
        return self._units_fact("running", **kwargs)

    def _fact_systemd_SystemdEnabled(self, **kwargs: Any) -> dict[str, bool]:
        return self._units_fact("enabled", **kwargs)

    # -- executed commands --------------------------------------------------------------------------------

    def on(self, first_word: str, effect: Effect) -> None:
        """Register ``effect(remote, argv)`` for executed commands starting with ``first_word``."""
        self.effects.append((first_word, effect))

    def upload(self, content: str, dest: str) -> None:
        self.uploads[dest] = content
        old = self.files.get(dest, {})
        self.files[dest] = {"content": content, "user": old.get("user", "root"), "group": old.get("group", "root")}
        self.files[dest]["mode"] = old.get("mode", 644)

    def run(self, command: str) -> bool:
        """Apply one executed shell command; returns its success."""
        self.executed.append(command)
        bundle = extracted(command)
        if bundle is not None:
            return self.extract(*bundle)
        if not any(shape.fullmatch(command) for shape in KVPOD_COMMANDS):
            raise UnknownCommand(f"the simulated host refuses a command kvpod never issues: {command}")
        if command.startswith("systemctl restart -- "):  # engines restarted, then found healthy
            for name in shlex.split(command[len("systemctl restart -- ") : command.index(";")]):
                self._builtin(["systemctl", "restart", name])
            return True
        try:
            argv = shlex.split(command)
        except ValueError:
            return True
        if not argv:
            return True
        for word, effect in self.effects:
            if argv[0] == word:
                result = effect(self, argv)
                return result is not False
        if argv[1:3] == ["-m", "venv"]:
            self.venvs.setdefault(argv[3], {"python": True, "packages": {}})["python"] = True
            return True
        if argv[1:4] == ["-m", "pip", "install"] and argv[0].endswith("/bin/python"):
            venv = argv[0].removesuffix("/bin/python")
            pins = dict(a.split("==", 1) for a in argv if "==" in a)
            self.venvs.setdefault(venv, {"python": True, "packages": {}})["packages"].update(pins)
            return True
        self._builtin(argv)
        return True

    def extract(self, archive: str, members: list[str]) -> bool:
        """The bundle extraction (:mod:`deploy.facts.bundle_command`) as GNU tar does it: each named member (a
        directory alone: ``--no-recursion``) with its mode and owner; the archive removed after. Fails,
        as tar does, on a missing archive or member; a directory's mode and owner are kept only where they are not
        the defaults this model gives an unrecorded directory (755, root)."""
        if archive not in self.files:
            return False
        data = self.files.pop(archive)["content"].encode("utf-8", "surrogateescape")
        self.uploads.pop(archive, None)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            named = [(m, f"/{m.name}") for m in tar.getmembers()]
            chosen = [m for m, path in named if path in members]
            if set(members) - {f"/{m.name}" for m in chosen}:
                return False
            for m in chosen:
                path, mode = f"/{m.name}", int(oct(m.mode)[2:])
                if m.isdir():
                    record = {"user": m.uname, "group": m.gname} if (m.uname, m.gname) != ("root", "root") else {}
                    self.dirs[path] = {**record, **({} if mode == 755 else {"mode": mode})}
                    continue
                content = tar.extractfile(m).read().decode("utf-8", "surrogateescape")  # type: ignore[union-attr]
                hook = next((h for prefix, h in self.file_hooks.items() if path.startswith(prefix)), None)
                if hook is not None:
                    hook(self, path, content)
                    continue
                self.uploads[path] = content
                self.files[path] = {"content": content, "user": m.uname, "group": m.gname, "mode": mode}
        return True

    def _target(self, path: str) -> dict:
        if path in self.files:
            return self.files[path]
        return self.dirs.setdefault(path, {})

    def _builtin(self, argv: list[str]) -> None:
        cmd, args = argv[0], [a for a in argv[1:] if not a.startswith("-")]
        if cmd == "mkdir":
            for path in args:
                self.dirs.setdefault(path.rstrip("/") or "/", {})
        elif cmd == "install" and "-d" in argv:
            opts = dict(itertools.pairwise(argv[:8]))
            made = {"mode": int(opts["-m"]), "user": opts["-o"], "group": opts["-g"]}
            for named in argv[8:]:  # install -d -m M -o U -g G DIR...: each named directory
                path = named.rstrip("/") or "/"
                self.dirs[path] = {**self.dirs.get(path, {}), **made}
        elif cmd == "chmod" and len(args) == 2:
            self._target(args[1])["mode"] = int(args[0]) if args[0].isdigit() else args[0]
        elif cmd in ("chown", "chgrp") and len(args) == 2:
            owner = args[0] if cmd == "chown" else f":{args[0]}"
            user, _, group = owner.partition(":")
            target = self._target(args[1])
            if user:
                target["user"] = user
            if group:
                target["group"] = group
        elif cmd == "rm":
            for path in args:
                self.files.pop(path, None)
        elif cmd == "groupadd" and args:
            self.groups.add(args[-1])
        elif cmd == "useradd" and args:
            opts = dict(itertools.pairwise(argv))
            name = argv[-1]
            group = opts.get("-g", name)
            if "--user-group" in argv:
                self.groups.add(name)
            self.users[name] = {
                "home": opts.get("-d", opts.get("--home-dir", f"/home/{name}")),
                "shell": opts.get("-s", opts.get("--shell", "/bin/sh")),
                "group": group,
                "groups": [],
                "comment": None,
                "password": None,
            }
            if "-m" in argv:
                self.dirs.setdefault(self.users[name]["home"], {"user": name, "group": group})
        elif cmd == "systemctl" and len(argv) >= 3 and "*" in argv[-1]:
            for name, unit in self.units.items():  # a glob matches loaded units only
                if fnmatch.fnmatchcase(name, argv[-1]) and argv[1] == "stop":
                    unit["running"] = False
        elif cmd == "systemctl" and len(argv) >= 3 and len(args) > 2:  # several units: each in turn
            for name in args[1:]:
                self._builtin([*(a for a in argv if a.startswith("-") or a in ("systemctl", args[0])), name])
        elif cmd == "systemctl" and len(argv) >= 3:
            unit = self.units.setdefault(argv[-1], {})
            if argv[1] in ("enable", "disable"):
                unit["enabled"] = argv[1] == "enable"
                if "--now" in argv:  # and started
                    self._builtin(["systemctl", "start", argv[-1]])
            elif argv[1] == "stop":
                unit["running"] = False
            elif argv[1] in ("start", "restart"):
                unit["running"] = True
                unit["restarts"] = unit.get("restarts", 0) + (argv[1] == "restart")
        elif cmd == "sysctl" and len(argv) >= 2 and all("=" in a for a in argv[1:]):
            for assignment in argv[1:]:
                key, _, value = assignment.partition("=")
                parts = [int(v) if v.lstrip("-").isdigit() else v for v in value.split()]
                self.sysctls[key] = parts[0] if len(parts) == 1 else parts
        elif "apt-get" in argv and "install" in argv:
            for name in argv[argv.index("install") + 1 :]:
                if not name.startswith("-"):
                    self.packages[name] = ["1.0"]


class _RemoteHost(Host):
    """A host whose facts come from its :class:`FakeRemote` (a snapshot reader serves them past it)."""

    remote: FakeRemote

    def get_fact(self, cls, *args, **kwargs):
        return self.remote.get_fact(cls, *args, **kwargs)


class _RemoteConnector(FakeConnector):
    """pyinfra's ``@fake`` connector whose commands and uploads also act on the host's :class:`FakeRemote`."""

    remote: FakeRemote

    def run_shell_command(self, command, *args, **kwargs):
        status, output = super().run_shell_command(command, *args, **kwargs)
        text = command if isinstance(command, str) else command.get_raw_value()
        return self.remote.run(text) and status, output

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        self.remote.upload(_content_of(filename_or_io), remote_filename)
        return True


def fake_state(
    remote: FakeRemote,
    data: dict | None = None,
    check_for_changes: bool = True,
    reads: list | None = None,
    stats: RunStats | None = None,
) -> tuple[State, Any]:
    """A connected pyinfra ``State`` with one ``@fake`` host whose facts and commands go to ``remote``.

    With ``reads``, the host's fact reads are served from a snapshot of them as the engine does (counted in
    ``stats``).
    """
    host_data = {"fake_delay": 0, "fake_delay_jitter": 0, **(data or {})}
    inventory = Inventory(([(HOST_NAME, host_data)], {}))
    state = State(inventory, Config(), check_for_changes=check_for_changes)
    connect_all(state)
    host = inventory.get_host(HOST_NAME)
    host.__class__ = _RemoteHost
    host.remote = remote  # type: ignore[attr-defined]
    host.noops = []  # type: ignore[attr-defined]
    host.noop = host.noops.append  # type: ignore[method-assign]
    host.connector.__class__ = _RemoteConnector
    host.connector.remote = remote  # type: ignore[attr-defined]
    if reads is not None:
        reader = SnapshotReader(state, host, stats if stats is not None else RunStats())
        with ctx_state.use(state), ctx_host.use(host):
            reader.load(reads)
    return state, host


def command_json(command: Any) -> Any:
    """A command as fixture JSON: a string, ``["upload", content, dest]`` or ``["refuse", message]``."""
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        return ["upload", _content_of(command.src), command.dest]
    if isinstance(command, FunctionCommand):
        name = command.function.__name__.lstrip("_")
        return [name, *[str(a) for a in command.args]]
    return repr(command)


def commands_json(command: Any) -> list:
    """:func:`command_json` of one command; a bundle's upload as the uploads of the files it holds (each
    ``["upload", content, path]``), which its extraction command writes."""
    members = getattr(getattr(command, "src", None), "members", None)
    if isinstance(command, FileUploadCommand) and members is not None:
        return [
            ["upload", (content if isinstance(content, bytes) else content()).decode("utf-8", "surrogateescape"), path]
            for path, content in members
        ]
    return [command_json(command)]


def op_commands(
    op: Any,
    remote: FakeRemote,
    args: list | None = None,
    kwargs: dict | None = None,
    data: dict | None = None,
    executing: bool = False,
) -> tuple[list, list[str]]:
    """Run an operation's body against ``remote``: (commands as JSON, noop messages)."""
    state, host = fake_state(remote, data)
    state.is_executing = executing
    with ctx_state.use(state), ctx_host.use(host):
        commands = [j for c in op._inner(*(args or []), **(kwargs or {})) for j in commands_json(c)]
    return commands, list(host.noops)


def deploy_plan(
    deploy: Callable,
    remote: FakeRemote,
    data: dict | None = None,
    reads: list | None = None,
    stats: RunStats | None = None,
    **kwargs,
) -> list[tuple[str, list]]:
    """Prepare ``deploy`` (as a dry run does) and list ``[(operation name, commands)]`` that would run."""
    state, host = fake_state(remote, data, check_for_changes=True, reads=reads, stats=stats)
    add_deploy(state, deploy, host=host, **kwargs)
    return [(name, [j for c in cmds for j in commands_json(c)]) for name, cmds in planned_commands(state, host)]


def deploy_run(
    deploy: Callable,
    remote: FakeRemote,
    data: dict | None = None,
    reads: list | None = None,
    stats: RunStats | None = None,
    **kwargs,
) -> tuple[State, Any]:
    """Prepare and execute ``deploy`` as the runner does for a real run (facts read as operations run)."""
    state, host = fake_state(remote, data, check_for_changes=False, reads=reads, stats=stats)
    add_deploy(state, deploy, host=host, **kwargs)
    with contextlib.suppress(PyinfraError):  # "No hosts remaining!" once the only host failed, as the runner does
        run_ops(state)
    return state, host


def changed_commands(plan: list[tuple[str, list]]) -> list:
    """All commands of a :func:`deploy_plan` result, flattened."""
    return [c for _, cmds in plan for c in cmds]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
