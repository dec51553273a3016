"""A plain (non-editable) install carries everything kvpod reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_holds_roles_templates_specs_suite_and_standin(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("kvpod-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*.j2")}
    assert templates and {f"deploy/_data/templates/{t}" for t in templates} <= names
    roles = {p.relative_to(ROOT).as_posix() for p in (ROOT / "roles").rglob("*.py")}
    assert roles <= names
    for required in (
        "deploy/_data/inventories/reference/pod.yaml",
        "deploy/_data/inventories/lab/pod.yaml",
        "deploy/_data/inventories/pod.schema.json",
        "deploy/verify_suite/conftest.py",
        "deploy/verify_suite/pytest.ini",
        "deploy/verify_suite/fabric/test_fabric.py",
        "deploy/_data/standin/vllm",
        "deploy/lmcache_keys/0.5.6.json",
        "deploy/compat/table.toml",
        "deploy/compat/evidence/vllm-0.32.0_lmcache-0.5.6.json",
        "deploy/cli/__init__.py",
    ):
        assert required in names
