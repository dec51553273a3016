"""Helpers shared by the node roles: template paths and rendering, device unit names, quoting, the service user."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from io import StringIO
from typing import Any

from pyinfra.operations import files

from deploy import encode, rendered
from deploy.facts.snapshot import Read
from deploy.facts.users import PasswdEntry
from deploy.operations.bundle_steps import (
    bundled_file,
)
from deploy.operations.reads import file_reads
from deploy.operations.steps import (
    BundledFile,
    Effect,
    Step,
    path_effect,
    step,
)
from deploy.operations.storage import systemd_escape_path
from deploy.shipped import templates_dir


def template(role: str, name: str) -> str:
    """Absolute path of ``templates/<role>/<name>``."""
    return str(templates_dir() / role / name)


def render(role: str, name: str, **variables: Any) -> str:
    """``templates/<role>/<name>`` rendered through kvpod's encoding environment (:func:`deploy.encode.render`;
    the text kept for the next host rendering it alike: :mod:`deploy.rendered`)."""
    return rendered.render(template(role, name), **variables)


def rendered_file(
    name: str,
    role: str,
    source: str,
    dest: str,
    mode: str | None = None,
    user: str | None = None,
    group: str | None = None,
    **variables: Any,
):
    """``dest`` holds ``templates/<role>/<source>`` rendered with ``variables`` (a pyinfra ``files.put`` with
    ``mode``, ``user`` and ``group``)."""
    text = StringIO(render(role, source, **variables))
    text.template = template(role, source)  # type: ignore[attr-defined]
    return files.put(name=name, src=text, dest=dest, mode=mode, user=user, group=group)


def put_rendered_step(name: str, role: str, source: str, dest: str, keep: str | None = None, **options: Any) -> Step:
    """:func:`rendered_file` as a step of its own (a host without a bundle: the target), reading what ``files.put``
    reads of ``dest``."""
    return step(
        rendered_file,
        file_reads(dest),
        keep=keep,
        effects=[path_effect(dest)],
        name=name,
        role=role,
        source=source,
        dest=dest,
        **options,
    )


def rendered_step(
    name: str,
    role: str,
    source: str,
    dest: str,
    keep: str | None = None,
    mode: str | None = None,
    user: str | None = None,
    group: str | None = None,
    when: Callable[[], bool] | None = None,
    when_reads: Iterable[Read] = (),
    **variables: Any,
) -> BundledFile:
    """``dest`` holds ``templates/<role>/<source>`` rendered with ``variables`` (when the bundle runs), with ``mode``
    (default 644) and owner (default root): a file of the role's bundle (:mod:`deploy.operations.bundle`), reading
    what ``files.put`` reads of ``dest``."""
    return bundled_file(
        name,
        dest,
        lambda: render(role, source, **variables).encode(),
        mode=mode,
        user=user,
        group=group,
        keep=keep,
        when=when,
        when_reads=when_reads,
    )


def netdev_unit(interface: str) -> str:
    """systemd's device unit of a network interface (``sys-subsystem-net-devices-eth1.100.device``)."""
    return f"sys-subsystem-net-devices-{systemd_escape_path(interface)}.device"


def shell_quote(value: object) -> str:
    """One POSIX shell word (:func:`deploy.encode.shell_word`)."""
    return encode.shell_word(value)


def systemd_quote(arg: str) -> str:
    """One word of a systemd ``ExecStart=`` line (see :func:`deploy.encode.unit_argv`)."""
    return encode._unit_word(str(arg))


def env_value(value: object) -> str:
    """The text of an LMCache environment variable: lists and dicts as compact JSON, booleans as ``True``/``False``
    (the template encodes it for the file with :func:`deploy.encode.env_value`)."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def service_user(name: str) -> None:
    """The system user (and its group) vLLM runs as; home ``/var/lib/<name>`` (model caches live there)."""
    from deploy.operations.users import system_user

    system_user(name=f"Service user {name}", user=name, home=f"/var/lib/{name}")


def service_user_step(name: str) -> Step:
    """:func:`service_user` as a step."""
    return step(service_user, [Read.of(PasswdEntry, user=name)], effects=[Effect("user", name)], name=name)
