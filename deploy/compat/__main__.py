"""Print the compatibility table as Markdown (the README's "Which vLLM and LMCache" table)."""

from __future__ import annotations

from deploy.compat import default_pair, pairs


def markdown() -> str:
    """One line per pair: working pairs first, newest vLLM first; the default pair marked."""
    default = default_pair()
    lines = ["| vLLM | LMCache | torch | CUDA runtime | status | why |", "| --- | --- | --- | --- | --- | --- |"]
    rows = sorted(pairs().values(), key=lambda p: (p.status != "works", [-int(x) for x in p.vllm.split(".")[:3]]))
    for p in rows:
        status = f"**{p.status}** (default)" if (p.vllm, p.lmcache) == default else p.status
        lines.append(f"| {p.vllm} | {p.lmcache} | {p.torch} | {p.cuda} | {status} | {p.reason} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
