"""Space on the KV-cache mount, as ``kvpod bench`` needs it before writing its file."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


class KvcacheSpace(FactBase[dict | None]):
    """
    Whether ``path`` is a mountpoint, the bytes free on it (``df``), the bytes LMCache's directory already
    holds and the bytes of a leftover benchmark directory (``du``, allocated blocks; 0 when absent).
    None when the answer cannot be read.

    .. code:: python

        {"mounted": True, "avail_bytes": 1870000128, "lmcache_bytes": 0, "bench_bytes": 0}
        {"mounted": False, "avail_bytes": None, "lmcache_bytes": 0, "bench_bytes": 0}
    """

    def command(self, path: str, lmcache_dir: str, bench_dir: str) -> StringCommand:
        p = QuoteString(path)
        return StringCommand(
            "if mountpoint -q",
            p,
            "; then echo mounted=1; echo avail=$(df -B1 --output=avail",
            p,
            "| tail -n 1); else echo mounted=0; fi;",
            "echo lmcache=$(du -sx -B1",
            QuoteString(lmcache_dir),
            "2>/dev/null | cut -f1);",
            "echo bench=$(du -sx -B1",
            QuoteString(bench_dir),
            "2>/dev/null | cut -f1)",
        )

    def process(self, output: list[str]) -> dict | None:
        values = {}
        for line in output:
            key, sep, value = line.strip().partition("=")
            if sep:
                values[key] = value.strip()
        if values.get("mounted") not in ("0", "1"):
            return None

        def number(key: str) -> int | None:
            text = values.get(key, "")
            return int(text) if text.isdigit() else None

        mounted = values["mounted"] == "1"
        avail = number("avail")
        if mounted and avail is None:
            return None
        return {
            "mounted": mounted,
            "avail_bytes": avail,
            "lmcache_bytes": number("lmcache") or 0,
            "bench_bytes": number("bench") or 0,
        }
