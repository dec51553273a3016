"""Every place kvpod relies on pyinfra beyond its public API, in one module pinned to one pyinfra version.

``tests/unit/test_pyinfra_adapter.py`` fails when the installed pyinfra is not :data:`SUPPORTED_PYINFRA`
(``pyproject.toml`` pins it exactly): read this module against the new version's source before moving the pin.

- :func:`serve`: a host's fact reads and commands pass through a :class:`HostSeam` first (how the snapshot
  answers reads and how commands are counted). pyinfra has no hook for either, and its ``Inventory`` builds
  plain ``Host`` objects: the host becomes an instance of a subclass of its own class whose ``get_fact`` asks
  the seam, its connector one whose commands, uploads and downloads tell the seam first (also those a
  connector runs for another: the ``mv`` of an upload with sudo).
- :mod:`deploy.engine.pyinfra_speed`: pyinfra's per-operation argument handling done once per run, not per
  operation and host (the same pin applies).
- :func:`would_change` and :func:`commands_run`: what an operation's meta says before and after it ran
  (``OperationMeta._maybe_is_change`` and ``._commands`` have no public reader).
- :func:`connection_lost`: whether the SSH connector's paramiko transport died.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from pyinfra.api.host import Host

SUPPORTED_PYINFRA = "3.10.0"

LiveRead = Callable[..., Any]  # (fact class, *args, **kwargs) -> the value pyinfra reads from the host now


class HostSeam(Protocol):
    """What a served host asks before each fact read and each command (see :func:`serve`)."""

    def read(self, cls: type, args: tuple, kwargs: dict[str, Any]) -> Any:
        """The fact's value, served or read live (:func:`live_read`)."""

    def command(self, name: str, args: tuple, kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
        """Every command, upload and download the host runs (``name``: the connector method), run by ``run()``."""


@functools.cache
def _served_host(base: type) -> type:
    """``base`` (a ``Host`` class) whose fact reads ask the seam; every other behaviour is the base's."""

    class ServedHost(base):
        kvpod_served = True

        def get_fact(self, name_or_cls, *args, **kwargs):
            return self.kvpod_seam.read(name_or_cls, args, kwargs)

    ServedHost.__name__ = ServedHost.__qualname__ = f"Served{base.__name__}"
    return ServedHost


@functools.cache
def _served_connector(base: type) -> type:
    """``base`` (a connector class) telling the seam of each command before running it."""

    class ServedConnector(base):
        kvpod_served = True

        def run_shell_command(self, *args, **kwargs):
            run = functools.partial(super().run_shell_command, *args, **kwargs)
            return self.kvpod_seam.command("run_shell_command", args, kwargs, run)

        def put_file(self, *args, **kwargs):
            run = functools.partial(super().put_file, *args, **kwargs)
            return self.kvpod_seam.command("put_file", args, kwargs, run)

        def get_file(self, *args, **kwargs):
            run = functools.partial(super().get_file, *args, **kwargs)
            return self.kvpod_seam.command("get_file", args, kwargs, run)

    ServedConnector.__name__ = ServedConnector.__qualname__ = f"Served{base.__name__}"
    return ServedConnector


def serve(host: Host, seam: HostSeam) -> None:
    """From now on ``host``'s fact reads and commands go through ``seam`` (a later call replaces it).

    Call once the host's ``State`` exists (it makes the connector)."""
    for obj, served in ((host, _served_host), (host.connector, _served_connector)):
        if not getattr(obj, "kvpod_served", False):
            obj.__class__ = served(type(obj))  # a subclass adding no state: the object is unchanged
        obj.kvpod_seam = seam


def live_read(host: Host) -> LiveRead:
    """The served ``host``'s own fact read, past its seam (pyinfra's, unless the host's class reads otherwise)."""
    return lambda cls, *args, **kwargs: super(type(host), host).get_fact(cls, *args, **kwargs)


def would_change(meta) -> bool:
    """A prepared (not executed) operation's own guess whether it changes something (a dry run's count)."""
    return bool(meta._maybe_is_change)


def commands_run(meta) -> int:
    """How many commands an executed operation ran."""
    return len(meta._commands or [])


def connection_lost(host) -> bool:
    """Whether the host's SSH session died during the run (the machine went away or its sshd was killed)."""
    client = getattr(host.connector, "client", None)
    if client is None or not hasattr(client, "get_transport"):
        return False  # not an SSH connection (local, fake): it cannot be lost
    transport = client.get_transport()
    return transport is None or not transport.is_active()
