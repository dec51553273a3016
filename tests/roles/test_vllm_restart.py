"""The restart-and-wait command of the rollout: read back by ``sh`` (``bash -n``, ``dash -n``, shellcheck), run
under ``sh`` against local HTTP servers with ``systemctl`` and ``journalctl`` stand-ins, and prepared by the role
for exactly the engines of its batch."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import changed_commands, deploy_plan
from deploy.loader import load_spec
from deploy.rollout import Engine, node_engines
from roles.vllm_restart import RESULT_PREFIX, engine_results, restart_wait_command, vllm_restart
from tests import sinks
from tests.conftest import LAB

HOSTILE_NAME = 'it\'s $(touch /tmp/kvpod-owned) `id` "q" \\ ; x'


@contextmanager
def engine_server(health: int, names: list[str]) -> Iterator[str]:
    """A local server answering /health with ``health`` and listing ``names`` in /v1/models; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                status, body = health, b""
            else:
                status, body = 200, json.dumps({"data": [{"id": n} for n in names]}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def engine(base: str, unit: str = "kvpod-vllm.service", model: str = "org/m") -> Engine:
    return Engine("node1", unit, f"{base}/health", f"{base}/v1/models", model)


def fake_tools(tmp: Path, failed_units: tuple[str, ...] = ()) -> dict[str, str]:
    """``systemctl`` (records its argv; ``is-failed`` true for ``failed_units``) and ``journalctl`` (25 lines)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    failed = " ".join(failed_units)
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp}/systemctl.log\n'
        'if [ "$1" = is-failed ]; then for u in ' + (failed or "none") + '; do [ "$u" = "$3" ] && exit 0; done; '
        "exit 1; fi\nexit 0\n"
    )
    (bin_dir / "journalctl").write_text('#!/bin/sh\nfor i in $(seq 1 25); do echo "$2 line $i"; done\n')
    for tool in ("systemctl", "journalctl"):
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run_wait(engines: list[Engine], seconds: int, env: dict[str, str]) -> tuple[int, dict[str, dict], str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        ["sh", "-c", restart_wait_command(engines, seconds)], env=env, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, engine_results(proc.stdout.splitlines()), proc.stderr, time.monotonic() - started


@pytest.mark.skipif(not sinks.SHELLCHECK, reason="needs shellcheck")
def test_the_command_passes_bash_dash_and_shellcheck(tmp_path: Path) -> None:
    """(A hostile model name, which shellcheck would note as a quoted ``$``, is run under ``sh`` below.)"""
    plan = load_spec_plan()
    engines = [*node_engines(plan.nodes[0]), engine("http://127.0.0.1:8001", "kvpod-vllm@1.service", "served-name")]
    script = tmp_path / "wait.sh"
    script.write_text("#!/bin/sh\n" + restart_wait_command(engines, 1800) + "\n")
    assert sinks.shell_checks(script) == []


def load_spec_plan():
    from deploy.plan import build_plan

    return build_plan(load_spec(LAB))


def test_healthy_engines_serving_their_model_pass(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    with engine_server(200, ["org/m"]) as a, engine_server(200, ["x", HOSTILE_NAME]) as b:
        engines = [engine(a), engine(b, "kvpod-vllm@1.service", HOSTILE_NAME)]
        code, verdicts, _, _ = run_wait(engines, 5, env)
    assert code == 0
    assert {u: v["healthy"] for u, v in verdicts.items()} == {"kvpod-vllm.service": True, "kvpod-vllm@1.service": True}
    restarts = (tmp_path / "systemctl.log").read_text().splitlines()[0]
    assert restarts == "restart -- kvpod-vllm.service kvpod-vllm@1.service"
    assert not Path("/tmp/kvpod-owned").exists()


def test_an_engine_answering_503_fails_after_the_timeout_with_its_journal(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    with engine_server(200, ["org/m"]) as good, engine_server(503, ["org/m"]) as bad:
        engines = [engine(good), engine(bad, "kvpod-vllm@1.service")]
        code, verdicts, stderr, seconds = run_wait(engines, 2, env)
    assert code == 1 and 2 <= seconds < 20
    assert verdicts["kvpod-vllm.service"]["healthy"] is True and "journal" not in verdicts["kvpod-vllm.service"]
    failed = verdicts["kvpod-vllm@1.service"]
    assert failed["healthy"] is False and failed["detail"] == "GET /health answered 503"
    assert failed["journal"] == [f"kvpod-vllm@1.service line {i}" for i in range(6, 26)], "the last 20 lines"
    assert "kvpod: kvpod-vllm@1.service not healthy after 2 s: GET /health answered 503" in stderr


def test_an_engine_that_does_not_list_its_model_is_not_healthy(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    with engine_server(200, ["other/model"]) as base:
        code, verdicts, _, _ = run_wait([engine(base)], 1, env)
    assert code == 1
    assert verdicts["kvpod-vllm.service"]["detail"] == "GET /v1/models does not list org/m (listed: other/model)"


def test_an_engine_not_answering_is_not_healthy(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    with engine_server(200, []) as base:
        pass  # closed: nothing listens there any more
    code, verdicts, _, _ = run_wait([engine(base)], 1, env)
    assert code == 1 and verdicts["kvpod-vllm.service"]["detail"].startswith("not answering (")


def test_a_failed_unit_ends_the_wait_at_once(tmp_path: Path) -> None:
    env = fake_tools(tmp_path, failed_units=("kvpod-vllm.service",))
    with engine_server(503, ["org/m"]) as base:
        code, verdicts, _, seconds = run_wait([engine(base)], 60, env)
    assert code == 1 and seconds < 20
    assert verdicts["kvpod-vllm.service"]["detail"].startswith("unit failed (last probe: not probed)")
    assert len(verdicts["kvpod-vllm.service"]["journal"]) == 20


def test_the_probe_lines_are_read_back_and_other_output_ignored() -> None:
    lines = ["noise", RESULT_PREFIX + '{"unit": "u.service", "healthy": true}', RESULT_PREFIX + "{broken", "x"]
    assert engine_results(lines) == {"u.service": {"unit": "u.service", "healthy": True}}


def test_the_role_restarts_only_the_engines_of_its_batch_with_the_plans_timeout() -> None:
    plan = load_spec_plan().nodes[0]
    plan = plan.model_copy(update={"vllm": plan.vllm.model_copy(update={"health_timeout_s": 42})})
    first = plan.engines[0].unit
    commands = changed_commands(
        deploy_plan(vllm_restart, fresh_node(plan), {"kvpod_node": plan, "kvpod_restart_engines": [first]})
    )
    assert commands == [restart_wait_command(node_engines(plan)[:1], 42)]
    every = changed_commands(deploy_plan(vllm_restart, fresh_node(plan), {"kvpod_node": plan}))
    assert every == [restart_wait_command(node_engines(plan), 42)], "without a batch's units: every engine"
