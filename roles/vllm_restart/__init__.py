"""Role ``vllm restart``: restart the vLLM engines of one node, each until its health endpoint answers.

Used by rolling restarts (batches of nodes, each healthy before the next). Reads ``host.data.kvpod_node``
(``engines``: each engine's ``unit`` and ``health_url``) and ``kvpod_health_timeout`` (seconds, default 300).
First the units that no longer belong (the single ``kvpod-vllm.service`` of earlier releases, engines no
longer planned) are stopped, disabled and removed with their LMCache files (:func:`roles.vllm.retire`): they
hold the GPUs and ports the engines need. Then each engine is restarted (started, when it was not running)
and waited for. The health check runs on the node itself: the endpoint listens on the node's loopback.
"""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand, deploy, operation

from deploy.hostdata import host_data
from deploy.operations import changed, units

HEALTH_PROBE = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)"


def health_wait_command(url: str, seconds: int) -> StringCommand:
    """Poll ``url`` from the node until it answers 2xx, at most ``seconds``; fail with a clear message."""
    script = (
        f'i=0; until python3 -c "$0" "$1" 2>/dev/null; do i=$((i+1)); '
        f'if [ "$i" -ge {int(seconds)} ]; then echo "kvpod: $1 not healthy after {int(seconds)} s" >&2; exit 1; fi; '
        "sleep 1; done"
    )
    return StringCommand("sh", "-c", QuoteString(script), QuoteString(HEALTH_PROBE), QuoteString(url))


@operation(is_idempotent=False)
def restarted_healthy(unit: str, health_url: str, timeout: int = 300):
    """
    Restart ``unit`` and wait for ``health_url`` (not idempotent: it restarts every time it runs).

    + unit: the systemd unit
    + health_url: an HTTP URL on the node's loopback
    + timeout: seconds to wait for health
    """
    yield StringCommand("systemctl", "restart", QuoteString(unit))
    yield health_wait_command(health_url, timeout)


@deploy("vllm restart")
def vllm_restart() -> None:
    from roles.vllm import retire

    plan = host_data().node
    removed = retire(plan)
    units.daemon_reload(name="systemd daemon-reload (retired units)", when=changed(*removed))
    for engine in plan.engines:
        restarted_healthy(
            name=f"{engine.unit} restarted and healthy",
            unit=engine.unit,
            health_url=engine.health_url,
            timeout=host_data().health_timeout,
        )
