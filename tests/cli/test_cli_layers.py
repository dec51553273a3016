"""The CLI's shape: commands that touch no host load neither pyinfra nor gevent; ``--limit`` is one check."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from tests.conftest import LAB

# without a spec: the reference pod (cumulus-nvue switch, data24 enclosure); the lab: linux-bridge, linux-nvmet
OFFLINE = [["validate"], ["plan"], ["plan", "--json"], ["size"], ["switch", "render"], ["target", "sheet"], ["schema"]]
OFFLINE += [[*argv, str(LAB)] for argv in (["validate"], ["switch", "render"], ["target", "sheet"])]


def test_offline_commands_import_neither_pyinfra_nor_gevent() -> None:
    """Every such command, one after the other in one fresh interpreter; after each, what it loaded."""
    code = (
        "import sys\n"
        "from deploy.cli import main\n"
        f"for argv in {OFFLINE!r}:\n"
        "    sys.argv = ['kvpod', *argv]\n"
        "    try:\n        main()\n    except SystemExit as exc:\n        assert not exc.code, (argv, exc.code)\n"
        "    loaded = sorted({m.split('.')[0] for m in sys.modules} & {'pyinfra', 'gevent'})\n"
        "    print('LOADED', ' '.join(argv), loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("LOADED")]
    assert len(lines) == len(OFFLINE)
    assert [line for line in lines if not line.endswith("[]")] == []


@pytest.mark.parametrize("command", ["up", "diff", "check", "verify", "bench"])
def test_unknown_limit_is_exit_1_everywhere(command: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, [command, str(LAB), "--limit", "node9", "--yes"][: 4 if command != "up" else 5])
    assert result.exit_code == 1, result.output
    assert "--limit: unknown node node9 (valid: node1, node2)" in result.output
    assert not list(tmp_path.iterdir())  # refused before any run directory (or host) was touched
