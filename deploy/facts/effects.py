"""Which fact reads a command can change: a host's values stay served until a command that may affect them runs.

A read (:func:`deploy.facts.snapshot.read_key`) depends on parts of the host (:mod:`deploy.facts.dependencies`): a
path, the kernel's modules, its network links, a systemd unit, the NVMe subsystems, a block device... A command
(:func:`effect_of_command`, :func:`effect_of_upload`) touches some of them. A read goes stale when a command
touches a part it depends on (:func:`deploy.facts.effect_model.stales`; the model of an effect is there too):

- an upload, ``mkdir``, ``install -d``, ``chmod``, ``chown``, ``rm``, ``ln``, ``truncate``, a ``printf``/``echo``
  into a file touch those paths (``rm`` and ``-R`` everything below them too; ``mkdir -p`` and ``install -d`` the
  parents they may create);
- ``systemctl daemon-reload`` touches every unit (its running and its enabled state); ``enable``/``disable``
  touch the unit directory's links and, as they reload the manager, what ``daemon-reload`` touches (``enable
  --now``: that, and what ``start`` touches); a file written under a unit directory touches the enabled state of
  the units (:ref:`systemd reads <systemd-reads>` below); ``start``/``stop``/``restart`` of a mount unit touch the
  mount and the tree under its mount point, and what the units it requires, or that require it, do;
- ``nvme connect``/``disconnect``/``ns-rescan`` and kvpod's own scripts over the NVMe subsystems in sysfs (the wait
  for a namespace, the I/O policy) touch the NVMe subsystems and every block device; ``mkfs.ext4``/``tune2fs`` the
  device they format; ``mount``/``umount`` the mounts and the paths named; ``udevadm settle`` the devices;
- ``ip``, ``networkctl reload``: the network links and routes; ``rdma``: RDMA links; ``dcb``: DCB settings;
  ``sysctl k=v``: that key; ``modprobe``: the loaded modules (and the sysctl keys a module may add);
  ``useradd``: the users and the home directory; ``python -m venv``/``pip install``: the virtual environment;
- starting or stopping one of kvpod's own services (``kvpod-*``) touches everything but the host's configuration:
  packages, users, /etc and /usr (:data:`KVPOD_SERVICE`); starting its soft-RoCE or its NVMe connect service
  touches what their scripts change (:func:`device_service_start`, :data:`DEVICE_SCRIPT_COMMANDS`).

Anything else (another service started, a package installed, a shell script, a command with shell operators)
touches EVERYTHING: every read goes stale, as a step depending on it must see the host as it is. A read
of a fact not known there depends on everything: any command stales it, and it is never kept after a live read.

Some effects complete after the command returns (an NVMe namespace appears after its connect): such a command
leaves parts ``unsettled``; reads of them are not kept afterwards, so each one reads the host again.

.. _systemd-reads:

systemd reads. pyinfra's ``SystemdStatus`` and ``SystemdEnabled`` run ``systemctl show --all --property Id
--property SubState|UnitFileState UNIT`` and map each ``Id`` to whether ``SubState`` is running, waiting, exited,
listening or mounted (the running state: part ``("unit", UNIT)``), or ``UnitFileState`` enabled or static (the
enabled state: part ``("unit-file", UNIT)``). What systemd documents and does:

- ``daemon-reload`` "reruns all generators, reloads all unit files, and recreates the entire dependency tree"
  (systemctl(1)). A loaded unit caches its ``UnitFileState`` (computed once, from the unit files on disk) until
  the manager recreates it: a reload can change every unit's enabled state, whatever kvpod wrote before it (the
  files may have changed since the host last reloaded). Units keep their state across a reload (it is serialised
  and restored), but names are resolved anew: a name that has become an alias shows the unit it aliases, under
  that unit's ``Id``. So a reload stales every unit's running state too.
- ``systemctl enable``/``disable``/``mask``/``unmask`` reload the manager after changing the links unless given
  ``--no-reload`` ("do not implicitly reload daemon configuration after executing the changes", systemctl(1)):
  they touch what ``daemon-reload`` touches.
- Writing a file under a unit directory changes no unit's running state: systemd reads unit files when it loads
  a unit or reloads, and loading starts nothing (a unit not loaded yet is loaded by ``systemctl show`` itself, its
  state inactive). It can change an enabled state: a unit not loaded is loaded from the new file, with the
  ``UnitFileState`` the files now give (``static`` for a file with no ``[Install]`` section), and a file is
  resolved through the aliases (symlinks) that name it: every unit's enabled state goes stale, no running state.
- ``start``/``stop``/``restart`` change the running state of the unit and of the units the job pulls in
  (``Requires=``/``Wants=``, and those requiring it on a stop or restart, systemd.unit(5)), not an enabled state.
"""

from __future__ import annotations

import functools
import itertools
import posixpath
import re
import shlex
from typing import Any

from deploy.facts.bundle_command import extracted
from deploy.facts.dependencies import ANY, UNIT_DIRS
from deploy.facts.dependencies import clean_path as _path
from deploy.facts.dependencies import parts as _parts
from deploy.facts.dependencies import under as _under
from deploy.facts.effect_model import EVERYTHING, NOTHING, Effect, PathTouch, _both
from deploy.facts.kvpod_scripts import guarded_mkfs_device, is_nvme_script

# kvpod's own services (``kvpod-*``: the boot-time connect, soft-RoCE, DCB, the nvmet restore, the engines) change
# the host's running state, not its configuration: they install no package, add no user, write nothing under
# /etc or /usr. What they change may complete after their start returns.
KVPOD_UNIT_PREFIX = "kvpod-"
KVPOD_SERVICE = Effect(
    everything=True,
    unsettled=frozenset({("unit", ANY), ("nvme", ""), ("block", ANY)}),
    spares=("package", "user", "/etc", "/usr", "/bin", "/sbin", "/lib"),
)
NVME_CHANGE = Effect(
    parts=frozenset({("nvme", ""), ("block", ANY)}), unsettled=frozenset({("nvme", ""), ("block", ANY)})
)
# what systemd's manager reload changes (see the module's docstring): every unit's running and enabled state
RELOAD = Effect(parts=frozenset({("unit", ANY), ("unit-file", ANY)}))
# The commands that change the host in the scripts of kvpod's soft-RoCE and NVMe connect services (the ``ExecStart``
# of templates/fabric_network/kvpod-rxe.service.j2, the script of templates/nvme_initiator/kvpod-nvme-connect.j2),
# as :func:`effect_of_command` sees them; their other commands read only (``cat``, ``grep``, ``ip -o -4 addr show``,
# ``sleep``, ``echo``). tests/facts/test_device_services.py renders both and fails on a command these miss.
DEVICE_SCRIPT_COMMANDS: dict[str, tuple[str, ...]] = {
    "kvpod-rxe.service": ("rdma link add rxe_dev type rxe netdev dev",),
    "kvpod-nvme-connect.service": (
        "modprobe -a nvme_fabrics nvme_transport",
        "nvme connect --transport rdma --nqn nqn --traddr address --trsvcid 4420",
        "printf '%s\\n' numa > /sys/class/nvme-subsystem/nvme-subsys0/iopolicy",
    ),
}
# the units a device service's start pulls in besides device units (``Wants=``/``Requires=``; pinned by the same test)
DEVICE_UNIT_WANTS: dict[str, tuple[str, ...]] = {"kvpod-nvme-connect.service": ("kvpod-rxe.service",)}
KVPOD_DEVICE_UNITS = frozenset(DEVICE_SCRIPT_COMMANDS)


_OPERATORS = set(";&|<>()`$\n")


def effect_of_upload(path: str) -> Effect:
    """An uploaded file (its path's reads; a unit file: the unit reads too)."""
    clean = _path(path)
    if clean is None:
        return EVERYTHING
    return _with_units(Effect(paths=(PathTouch(clean),)))


def _with_units(effect: Effect) -> Effect:
    """A change under a unit directory can change the enabled state ``systemctl show`` reports of any unit (not a
    running state: see the module's docstring)."""
    if any(_under(t.path, d) or (t.tree and _under(d, t.path)) for t in effect.paths for d in UNIT_DIRS):
        return Effect(parts=effect.parts | {("unit-file", ANY)}, paths=effect.paths, unsettled=effect.unsettled)
    return effect


@functools.cache
def device_service_start(unit: str) -> Effect:
    """What starting one of kvpod's device services changes: what its script's commands change, every unit's
    running state (the unit, and what its start job pulls in: the units it wants, the fabric NIC's device unit; the
    ``sysinit.target`` its default dependencies require is active on any booted host) and what starting each unit
    it wants changes. The start returns once the script has run (``Type=oneshot``)."""
    effect = Effect(parts=_parts(("unit", ANY)))
    for command in DEVICE_SCRIPT_COMMANDS[unit]:
        effect = _both(effect, effect_of_command(command))
    for wanted in DEVICE_UNIT_WANTS.get(unit, ()):
        effect = _both(effect, device_service_start(wanted))
    return effect


def _words(command: str) -> list[str] | None:
    """The words of a plain command (no shell operator outside quotes, no expansion), else None."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return None
    if any(set(w) <= _OPERATORS for w in words) or "$" in command or "`" in command:
        return None
    return words


def _redirect(command: str) -> tuple[list[str], str] | None:
    """``printf ... > PATH`` / ``echo ... > PATH``: the words before the redirection and its target."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return None
    if len(words) < 3 or words[-2] not in (">", ">>") or "$" in command or "`" in command:
        return None
    if any(set(w) <= _OPERATORS for w in words[:-2]):
        return None
    return words[:-2], words[-1]


def _args(words: list[str]) -> list[str]:
    return [w for w in words[1:] if not w.startswith("-")]


def _paths(args: list[str], **kind: bool) -> Effect:
    paths = [_path(a) for a in args]
    if not paths or any(p is None for p in paths):
        return EVERYTHING
    return _with_units(Effect(paths=tuple(PathTouch(p, **kind) for p in paths if p)))


def _mount_point(unit: str) -> str | None:
    """The mount point of a systemd mount unit (``mnt-kvcache.mount`` -> ``/mnt/kvcache``)."""
    name = unit.removesuffix(".mount")
    if not re.fullmatch(r"[A-Za-z0-9_.:\\-]+", name):
        return None
    parts = [re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), p) for p in name.split("-")]
    return "/" + "/".join(parts) if name != "-" else "/"


# where enabling a unit without an alias links it: the ``.wants``/``.requires`` directories of /etc/systemd/system
_INSTALL_LINKS = (
    PathTouch(UNIT_DIRS[0]),
    PathTouch(UNIT_DIRS[0] + "/*.wants", pattern=True),
    PathTouch(UNIT_DIRS[0] + "/*.requires", pattern=True),
)


def _systemctl(words: list[str]) -> Effect:
    args = _args(words)
    if not args:
        return EVERYTHING
    verb, units = args[0], args[1:]
    if verb == "enable" and "--now" in words:  # enabled, then started
        rest = [w for w in words if w != "--now"]
        at = rest.index(verb)
        return _both(_systemctl(rest), _systemctl([*rest[:at], "start", *rest[at + 1 :]]))
    if any(w in ("--now", "--user", "--global") or w.startswith("--root") for w in words):
        return EVERYTHING
    if verb == "daemon-reload" and not units:
        return RELOAD
    if not units or any("*" in u or "?" in u or "[" in u for u in units):
        return EVERYTHING
    named = frozenset(("unit", u) for u in units)
    if verb in ("enable", "disable") and all(u.startswith(KVPOD_UNIT_PREFIX) or u.endswith(".mount") for u in units):
        return _both(Effect(parts=named, paths=_INSTALL_LINKS), RELOAD)  # kvpod's units and mount units: no alias
    if verb in ("enable", "disable", "mask", "unmask"):
        return _both(Effect(parts=named, paths=tuple(PathTouch(d, tree=True) for d in UNIT_DIRS[:2])), RELOAD)
    if verb in ("start", "stop", "restart") and all(u.endswith(".mount") for u in units):
        return _mount_units(verb, units)
    if verb == "start" and all(u in KVPOD_DEVICE_UNITS for u in units):
        return functools.reduce(_both, [device_service_start(u) for u in units])
    if verb in ("start", "stop", "restart") and all(u.startswith(KVPOD_UNIT_PREFIX) for u in units):
        return KVPOD_SERVICE  # a device service's stop or restart stops or restarts the mount and engines needing it
    return EVERYTHING  # a service runs its own code: anything may change


def _mount_units(verb: str, units: list[str]) -> Effect:
    """Start, stop or restart of mount units: the mounts and the trees under their mount points; a start pulls in
    what a mount requires (kvpod's: the NVMe connect service), a stop or restart stops or restarts the units that
    require it (kvpod's engines, ``RequiresMountsFor=``)."""
    points = [_mount_point(u) for u in units]
    if any(p is None for p in points):
        return EVERYTHING
    trees = tuple(PathTouch(p, tree=True) for p in points if p)
    effect = Effect(parts=_parts(("unit", ANY), ("mount", "")), paths=trees)
    if verb in ("start", "restart"):
        effect = _both(effect, device_service_start("kvpod-nvme-connect.service"))
    return effect if verb == "start" else _both(effect, KVPOD_SERVICE)


def _sysctl_set(words: list[str]) -> Effect:
    args = [w for w in words[1:] if w != "-w"]
    if not args or any(w.startswith("-") or "=" not in w for w in args):
        return EVERYTHING
    return Effect(parts=frozenset(("sysctl", w.partition("=")[0].strip()) for w in args))


def _device(words: list[str]) -> Effect:
    device = _path(words[-1])
    return Effect(parts=_parts(("block", device))) if device else EVERYTHING


def _useradd(words: list[str]) -> Effect:
    opts = dict(itertools.pairwise(words))
    home = opts.get("--home-dir") or opts.get("-d") or f"/home/{words[-1]}"
    path = _path(home)
    if path is None:
        return EVERYTHING
    return Effect(parts=_parts(("user", "")), paths=(PathTouch(path, tree=True, parents=True),))


def _python(words: list[str]) -> Effect:
    """``PYTHON -m venv DIR`` and ``DIR/bin/python -m pip install ...``: the virtual environment's tree."""
    if words[1:3] == ["-m", "venv"]:
        return _paths(_args(words[2:]), tree=True, parents=True)
    if words[1:4] == ["-m", "pip", "install"] and re.search(r"/bin/python[0-9.]*$", words[0]):
        venv = words[0].rsplit("/bin/", 1)[0]
        return _paths([venv], tree=True)
    return EVERYTHING


def _install(words: list[str]) -> Effect:
    """``install -d [-m MODE] [-o USER] [-g GROUP] DIR...``: those directories (and their parents); else unknown."""
    rest, named = iter(words[1:]), []
    for word in rest:
        if word in ("-m", "-o", "-g"):
            next(rest, None)
        elif word != "-d":
            named.append(word)
    known = "-d" in words and not any(w.startswith("-") for w in named)
    return _paths(named, parents=True) if known else EVERYTHING


def _plain(words: list[str]) -> Effect:
    program = words[0]
    args = _args(words)
    recursive = any(w in ("-R", "-r", "-rf", "-fr", "--recursive") for w in words[1:])
    if program == "mkdir":
        return _paths(args, parents="-p" in words)
    if program == "install":
        return _install(words)
    if program in ("chmod", "chown", "chgrp"):
        return _paths(args[1:], tree=recursive)
    if program == "rm":
        return _paths(args, tree=True)
    if program == "ln":
        return _paths(args[-1:], tree=True)
    if program in ("truncate", "touch"):
        return _paths([a for a in args if not a.isdigit()])
    if program in ("mount", "umount"):
        named = [
            w
            for w, before in zip(words[1:], words, strict=False)
            if not w.startswith("-") and before not in ("-o", "-t")
        ]
        paths = _paths(named, tree=True)
        return paths if paths.everything else Effect(parts=_parts(("mount", "")), paths=paths.paths)
    if program == "systemctl":
        return _systemctl(words)
    if program == "nvme" and len(words) > 1 and words[1] in ("connect", "disconnect", "ns-rescan"):
        return NVME_CHANGE
    if program in ("mkfs.ext4", "tune2fs"):
        return _device(words)
    if program == "udevadm" and words[1:] == ["settle"]:
        return Effect(parts=_parts(("block", ANY), ("nvme", ""), ("net", ""), ("mount", "")))
    if program == "ip":
        return Effect(parts=_parts(("net", "")))
    if program == "networkctl" and words[1:] == ["reload"]:
        return Effect(parts=_parts(("net", "")), unsettled=_parts(("net", "")))
    if program == "rdma" and words[1:3] == ["link", "add"]:  # the kernel loads the link type's module on demand
        return Effect(parts=_parts(("rdma", ""), ("module", ""), ("sysctl", ANY)))
    if program == "rdma":
        return Effect(parts=_parts(("rdma", "")))
    if program == "dcb":
        return Effect(parts=_parts(("dcb", "")))
    if program == "sysctl":
        return _sysctl_set(words)
    if program == "modprobe":
        return Effect(parts=_parts(("module", ""), ("sysctl", ANY)))
    if program == "useradd":
        return _useradd(words)
    if program.endswith(("/python", "/python3")) or re.search(r"/python3\.\d+$", program):
        return _python(words)
    return EVERYTHING


def effect_of_extraction(command: str) -> Effect | None:
    """A file bundle's extraction (:mod:`deploy.facts.bundle_command`): its archive (removed) and its members, with
    the parents tar may create (so the listings of their directories); None for any other command."""
    found = extracted(command)
    if found is None:
        return None
    archive, members = found
    touched = [PathTouch(archive), *(PathTouch(m, parents=True) for m in members)]
    return _with_units(Effect(paths=tuple(touched)))


def effect_of_command(command: str) -> Effect:
    """What the shell command ``command`` may change (EVERYTHING when not known)."""
    bundle = effect_of_extraction(command)
    if bundle is not None:
        return bundle
    guarded = guarded_mkfs_device(command)
    if guarded:
        return Effect(parts=_parts(("block", posixpath.normpath(guarded))))
    if command.startswith("sh -c ") and is_nvme_script(command):
        return NVME_CHANGE
    redirected = _redirect(command)
    if redirected is not None:
        words, target = redirected
        if words and words[0] in ("printf", "echo"):
            return _paths([target])
        return EVERYTHING
    words = _words(command)
    if not words:
        return EVERYTHING
    return _plain(words)


def effect_of_call(name: str, args: tuple, kwargs: dict[str, Any]) -> Effect:
    """The effect of a connector call: ``run_shell_command(command)``, ``put_file(src, dest)``, ``get_file``."""
    if name == "get_file":
        return NOTHING
    if name == "put_file":
        dest = args[1] if len(args) > 1 else kwargs.get("remote_filename")
        return effect_of_upload(dest) if isinstance(dest, str) else EVERYTHING
    command = args[0] if args else kwargs.get("command")
    if hasattr(command, "get_raw_value"):
        command = command.get_raw_value()
    return effect_of_command(command) if isinstance(command, str) else EVERYTHING
