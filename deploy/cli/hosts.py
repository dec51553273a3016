"""The commands that reach hosts, and the gevent patch that pyinfra (which runs hosts in parallel on gevent)
needs before it is imported.

``kvpod <host command>`` patches first thing, before the command line's own imports (see
:mod:`deploy.cli`); every host command also calls :func:`use_hosts` itself, for callers that did not start
from the command line. The other commands never load gevent or pyinfra.
"""

from __future__ import annotations

HOST_COMMANDS = frozenset({"up", "diff", "check", "verify", "bench", "drill", "reassign", "lab"})


def use_hosts() -> None:
    """Patch the standard library for gevent, once, before anything imports pyinfra."""
    from gevent import monkey
    from gevent.hub import Hub

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    if KeyboardInterrupt not in Hub.NOT_ERROR:  # Ctrl-C reaches the command as usual, without the hub's traceback
        Hub.NOT_ERROR = (*Hub.NOT_ERROR, KeyboardInterrupt)


def reaches_hosts(argv: list[str]) -> bool:
    """Whether ``kvpod`` with ``argv`` (without the program name) runs a command that reaches hosts."""
    return bool(argv) and argv[0] in HOST_COMMANDS
