"""Where pyinfra's own log goes while kvpod runs it: the run directory, redacted, never the console."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from deploy.secrets import RedactingFilter


@contextlib.contextmanager
def pyinfra_log(run_dir: Path | None) -> Iterator[None]:
    """pyinfra's log (INFO and up) into ``run_dir/pyinfra.log`` while the block runs; without a run dir, nowhere
    (not onto stderr: kvpod reports each host's failure itself, once)."""
    logger = logging.getLogger("pyinfra")
    if run_dir is None:
        quiet = logging.NullHandler()
        logger.addHandler(quiet)
        try:
            yield
        finally:
            logger.removeHandler(quiet)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "pyinfra.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())  # no secret in the log
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
