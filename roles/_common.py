"""Helpers shared by the node roles: template paths, device unit names, quoting, the service user."""

from __future__ import annotations

import json
import re
import shlex

from deploy.operations.storage import systemd_escape_path
from deploy.shipped import templates_dir

_SAFE = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")


def template(role: str, name: str) -> str:
    """Absolute path of ``templates/<role>/<name>``."""
    return str(templates_dir() / role / name)


def netdev_unit(interface: str) -> str:
    """systemd's device unit of a network interface (``sys-subsystem-net-devices-eth1.100.device``)."""
    return f"sys-subsystem-net-devices-{systemd_escape_path(interface)}.device"


def shell_quote(value: object) -> str:
    return shlex.quote(str(value))


def systemd_quote(arg: str) -> str:
    """One word of a systemd ``ExecStart=`` line: ``%`` and ``$`` escaped, quoted when needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE.match(arg):
        return escaped
    if "'" not in escaped and "\\" not in escaped:
        return f"'{escaped}'"
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_value(value: object) -> str:
    """A value for a systemd ``EnvironmentFile``: Python booleans as ``True``/``False``, quoted when needed."""
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = str(value)
    if _SAFE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def service_user(name: str) -> None:
    """The system user (and its group) vLLM runs as; home ``/var/lib/<name>`` (model caches live there)."""
    from deploy.operations.users import system_user

    system_user(name=f"Service user {name}", user=name, home=f"/var/lib/{name}")
