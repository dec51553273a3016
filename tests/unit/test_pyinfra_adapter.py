"""The engine's pyinfra adapter is read against one pyinfra version, and pyproject pins exactly that one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pyinfra
from pyinfra.facts.files import LINUX_STAT_COMMAND

from deploy.engine import pyinfra_adapter
from deploy.facts.snapshot import STAT_FORMAT

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_pyinfra_is_the_one_the_adapter_supports() -> None:
    assert pyinfra.__version__ == pyinfra_adapter.SUPPORTED_PYINFRA, (
        f"pyinfra {pyinfra.__version__} is installed, deploy/engine/pyinfra_adapter.py supports "
        f"{pyinfra_adapter.SUPPORTED_PYINFRA}: read the adapter against the new version before moving its pin"
    )


def test_pyproject_and_the_ci_constraints_pin_that_version_exactly() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pyinfra=={pyinfra_adapter.SUPPORTED_PYINFRA}" in deps
    constraints = (ROOT / ".ci" / "constraints.txt").read_text().splitlines()
    assert f"pyinfra=={pyinfra_adapter.SUPPORTED_PYINFRA}" in constraints


def test_the_grouped_stat_prints_what_pyinfra_s_file_fact_parses() -> None:
    """The snapshot's one ``stat`` for many paths uses kvpod's own format: pyinfra's, unchanged."""
    assert f"stat -c '{STAT_FORMAT}'" == LINUX_STAT_COMMAND
    assert re.fullmatch(r"[^']+", STAT_FORMAT)
