"""Rich renderables for the CLI. Builds tables; printing stays in the CLI modules."""

from __future__ import annotations

import json

from rich.table import Table

from deploy.sizing import FleetRow, NodeSizing


def sizing_tables(model: str, node: NodeSizing, fleet: list[FleetRow]) -> list[Table]:
    engines = f"{node.engines} engine(s) on {node.gpus} GPUs"
    t = Table(title=f"per node: {model}, {engines} (GiB = 2^30 bytes, as LMCache allocates)")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    rows = [
        ("KV bytes per token", f"{node.kv_bytes_per_token:,} ({node.kv_bytes_per_token / 1024:g} KiB)"),
        (f"one full-context session ({node.session_tokens} tokens)", f"{node.session_gib:.2f} GiB"),
        ("vLLM engines (one per tensor_parallel_size GPUs, each its own copy of the weights)", str(node.engines)),
        ("GPU memory per engine", f"{node.vram_per_engine_gib:g} GiB"),
        ("model weights per engine", f"{node.weights_gib:.2f} GiB"),
        ("VRAM for KV pages per engine (memory x utilisation - weights)", f"{node.kv_pages_per_engine_gib:.2f} GiB"),
        ("full-context sessions in VRAM per engine", str(node.sessions_vram_per_engine)),
        ("GPU memory, node", f"{node.vram_total_gib:g} GiB"),
        ("VRAM for KV pages, node", f"{node.kv_pages_gib:.2f} GiB"),
        ("full-context sessions in VRAM, node", str(node.sessions_vram)),
        (f"LMCache engines holding KV per vLLM engine ({node.kv_layout})", str(node.lmcache_ranks)),
        (
            "DRAM / disk budget per vLLM engine (the node's, split between its engines)",
            f"{node.cpu_budget_gib / node.engines:g} / {node.disk_budget_gib / node.engines:g} GiB",
        ),
        (
            "max_local_cpu_size per rank",
            f"{node.max_local_cpu_size:g} GiB ({node.cpu_bytes_per_rank:,} bytes pinned)",
        ),
        (
            "max_local_disk_size per rank",
            f"{node.max_local_disk_size:g} GiB ({node.disk_bytes_per_rank:,} bytes)",
        ),
        (f"full-context sessions in the DRAM tier, node ({node.cpu_budget_gib:g} GiB)", str(node.sessions_dram)),
        (f"full-context sessions in the disk tier, node ({node.disk_budget_gib:g} GiB)", str(node.sessions_disk)),
    ]
    for k, v in rows:
        t.add_row(k, v)
    f = Table(title="fleet (one drive per node)")
    for col in ("drives", "nodes", "GPUs", "max concurrent sessions"):
        f.add_column(col, justify="right")
    f.add_column("")
    for r in fleet:
        style = "bold" if r.note == "this pod" else ""
        f.add_row(str(r.drives), str(r.nodes), str(r.gpus), str(r.sessions), r.note, style=style)
    return [t, f]


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
