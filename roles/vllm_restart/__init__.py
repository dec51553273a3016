"""Role ``vllm restart``: restart vLLM engines on one node and wait until each serves its model.

Used by the rolling restart (:mod:`deploy.rollout`: batches of engines, each healthy before the next). Reads
``host.data.kvpod_node`` (the engines come from :func:`deploy.rollout.node_engines`, ``vllm.health_timeout_s``)
and ``host.data.kvpod_restart_engines`` (the units of this batch on this node; default: all of the node's).

One command: ``systemctl restart`` of the units, then a probe on the node itself (the endpoints listen on the
node's loopback) that waits until every engine answers ``GET /health`` with 200 and lists its model in ``GET
/v1/models`` (``data[].id``), at most the timeout. It prints one ``kvpod-engine {json}`` line per engine; for an
engine that did not become healthy (or whose unit failed) it adds the last lines of its journal and exits 1.
First the units that no longer belong (the single ``kvpod-vllm.service`` of earlier releases, engines no longer
planned) are stopped, disabled and removed with their LMCache files (:func:`roles.vllm.retire`): they hold the
GPUs and ports the engines need.
"""

from __future__ import annotations

import json

from pyinfra.api import StringCommand, deploy, operation

from deploy.encode import shell_word, shell_words, unit_name
from deploy.hostdata import host_data
from deploy.operations.reads import Reads
from deploy.operations.steps import Effect, Steps, after, reads_of, reload_step, run_steps, step
from deploy.plan import NodePlan
from deploy.rollout import JOURNAL_LINES, Engine, node_engines
from roles.vllm import retire_steps

WAIT_OPERATION = "engines restarted and healthy"
RESULT_PREFIX = "kvpod-engine "

# argv: timeout, journal lines, then unit, health URL, models URL, model name per engine
WAIT_PROBE = """\
import json, subprocess, sys, time, urllib.error, urllib.request
timeout, lines, rest = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
engines = [rest[i:i + 4] for i in range(0, len(rest), 4)]
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
def probe(health, models, name):
    try:
        status, _ = get(health)
        if status != 200:
            return "GET /health answered %d" % status
        status, body = get(models)
        if status != 200:
            return "GET /v1/models answered %d" % status
        ids = [m.get("id") for m in json.loads(body).get("data", [])]
    except Exception as e:
        return "not answering (%s)" % e
    if name not in ids:
        return "GET /v1/models does not list %s (listed: %s)" % (name, ", ".join(map(str, ids)) or "none")
    return None
start = time.monotonic()
waiting = {e[0]: "not probed" for e in engines}
failed = {}
while True:
    for unit, health, models, name in engines:
        if unit in waiting:
            if subprocess.run(["systemctl", "is-failed", "--quiet", unit]).returncode == 0:
                failed[unit] = "unit failed (last probe: %s)" % waiting.pop(unit)
                continue
            reason = probe(health, models, name)
            if reason is None:
                del waiting[unit]
            else:
                waiting[unit] = reason
    if not waiting or time.monotonic() - start >= timeout:
        break
    time.sleep(1)
failed.update(waiting)
for unit, *_ in engines:
    out = {"unit": unit, "healthy": unit not in failed, "detail": failed.get(unit, "healthy")}
    if unit in failed:
        j = subprocess.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager"], capture_output=True, text=True)
        out["journal"] = (j.stdout or j.stderr).splitlines()[-lines:]
        print("kvpod: %s not healthy after %d s: %s" % (unit, time.monotonic() - start, out["detail"]), file=sys.stderr)
    print("kvpod-engine " + json.dumps(out), flush=True)
sys.exit(1 if failed else 0)
"""


def restart_wait_command(engines: list[Engine], seconds: int) -> str:
    """``systemctl restart`` of the engines' units, then :data:`WAIT_PROBE` on them (every value a shell word)."""
    units = [unit_name(e.unit) for e in engines]
    probe_args = [int(seconds), JOURNAL_LINES]
    for e in engines:
        probe_args += [e.unit, e.health_url, e.models_url, e.model]
    return (
        f"systemctl restart -- {shell_words(units)}; "
        f"python3 -c {shell_word(WAIT_PROBE)} {shell_words(str(a) for a in probe_args)}"
    )


def engine_results(lines: list[str]) -> dict[str, dict]:
    """The probe's verdict per unit, from the restart operation's stdout lines."""
    out = {}
    for line in lines:
        if line.startswith(RESULT_PREFIX):
            try:
                record = json.loads(line[len(RESULT_PREFIX) :])
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("unit"), str):
                out[record["unit"]] = record
    return out


@operation(is_idempotent=False)
def restarted_healthy(engines: list[Engine], timeout: int):
    """
    Restart ``engines`` and wait until each serves its model (not idempotent: it restarts every time it runs).

    + engines: the engines of this node to restart (:class:`deploy.rollout.Engine`)
    + timeout: seconds the engines have to become healthy
    """
    yield StringCommand(restart_wait_command(engines, timeout))


def steps(plan: NodePlan, wanted: list[str] | None = None) -> Steps:
    """The retired units gone (:func:`roles.vllm.retire_steps`), then the engines of ``wanted`` (units; None: all)
    restarted and waited for."""
    engines = [e for e in node_engines(plan) if wanted is None or e.unit in wanted]
    restart = step(
        restarted_healthy,
        [],
        effects=[Effect("unit", e.unit) for e in engines],
        name=WAIT_OPERATION,
        engines=engines,
        timeout=plan.vllm.health_timeout_s,
    )
    return [*retire_steps(plan), reload_step(after("retired"), "systemd daemon-reload (retired units)"), restart]


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("vllm restart")
def vllm_restart() -> None:
    run_steps(steps(host_data().node, host_data().restart_engines))
