"""pyinfra's per-host operation events, forwarded to the caller's live view (the CLI's progress lines)."""

from __future__ import annotations

from collections.abc import Callable

from pyinfra.api.state import BaseStateCallback

EventSink = Callable[[str, str, str], None]  # (host, kind, text): kind in start/ok/changed/error/info


class Progress(BaseStateCallback):
    """Forwards each operation's start, change and error on a host to ``sink``."""

    def __init__(self, sink: EventSink | None):
        self.sink = sink

    def _emit(self, host, kind: str, text: str) -> None:
        if self.sink:
            self.sink(host.name, kind, text)

    def operation_host_start(self, state, host, op_hash):
        self._emit(host, "start", ", ".join(state.get_op_meta(op_hash).names))

    def operation_end(self, state, op_hash):
        names = ", ".join(state.get_op_meta(op_hash).names)
        for host, ops in state.ops.items():
            data = ops.get(op_hash)
            if data is not None and data.operation_meta.is_complete() and data.operation_meta.did_change():
                self._emit(host, "changed", names)

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        self._emit(host, "error", ", ".join(state.get_op_meta(op_hash).names))
