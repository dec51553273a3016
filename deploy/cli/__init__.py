"""The kvpod command line: the app with every command registered, and its entry point ``main``.

:mod:`deploy.cli.shared` owns what commands share (app, consoles, exit codes, spec loading, options); each other
module is one command group: ``offline`` (commands that touch no host), ``verify``, ``bench``, ``drill``, ``run`` (up,
diff, check), ``reassign``, ``lab``. Importing them registers their commands. :mod:`deploy.cli.hosts` holds
the gevent patch, applied here first when the command line names a command that reaches hosts.
"""

import sys

from deploy.cli.hosts import reaches_hosts, use_hosts

try:  # Ctrl-C while kvpod starts: the same one line and exit code as during a command
    if reaches_hosts(sys.argv[1:]):
        use_hosts()  # before typer, rich and pydantic are imported, as early as pyinfra's own command line does

    # Importing a command group registers its commands, in the order of --help.
    # isort: off
    from deploy.cli import offline  # noqa: F401
    from deploy.cli import run  # noqa: F401
    from deploy.cli import verify  # noqa: F401
    from deploy.cli import reassign  # noqa: F401
    from deploy.cli import bench  # noqa: F401
    from deploy.cli import drill  # noqa: F401
    from deploy.cli import lab  # noqa: F401
    from deploy.cli.shared import app, main
    # isort: on
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

__all__ = ["app", "main"]
