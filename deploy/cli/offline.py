"""Commands that read only the spec and touch no host: validate, plan, size, schema, map, switch render,
target sheet. They import neither pyinfra nor gevent, so they answer within a moment of starting."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from deploy.cli.shared import (
    EXIT_FAILED,
    EXIT_INVALID,
    SpecArg,
    app,
    err,
    load,
    out,
    user_error,
)
from deploy.errors import InputError, KvpodError
from deploy.wording import plural


@app.command()
def validate(spec: SpecArg = None) -> None:
    """Check a pod spec; print one line per problem as `field.path: what is wrong (what would be valid)`."""
    from deploy.validate import warnings

    s, plan = load(spec)
    for problem in warnings(s):
        err.print(f"warning: {problem}", markup=False, highlight=False, emoji=False, soft_wrap=True)
    drives = sum(len(t.subsystems) for t in plan.targets)
    counts = [plural(len(plan.nodes), "node"), plural(drives, "drive"), plural(len(plan.switches), "switch")]
    out.print(f"[green]valid[/green]: pod {s.pod.name}, {', '.join(counts)}")


@app.command()
def plan(
    spec: SpecArg = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="every value of every node, enclosure and switch port")] = False,
) -> None:
    """Show the desired state of every node, target and switch (a pure function of the spec)."""
    _, p = load(spec)
    if json_out:
        typer.echo(p.to_json(), nl=False)
        return
    from deploy.cli.plan_view import plan_view

    for part in plan_view(p, wide=wide):
        out.print(part)


@app.command()
def size(
    spec: SpecArg = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the sizing as JSON")] = False,
) -> None:
    """Capacity sizing: KV bytes per token, VRAM for KV pages, sessions per tier, fleet table."""
    from deploy.cli.tables import sizing_tables, to_json
    from deploy.sizing import fleet_table, model_shape, size_node

    s, p = load(spec)
    shape = model_shape(s)
    if shape is None:
        err.print(
            f"vllm.model_shape: unknown model {s.vllm.model!r} (give layers, kv_heads, head_dim, dtype_bytes, "
            "params_billion, or use a Llama 8B/70B/405B model)",
            markup=False,
        )
        raise typer.Exit(EXIT_INVALID)
    gpus = p.nodes[0].gpus
    node = size_node(s, shape, gpus)
    drives = sum(len(t.subsystems) for t in p.targets)
    fleet = fleet_table(gpus, s.vllm.sessions_per_node, nodes=len(p.nodes), drives=drives)
    if json_out:
        typer.echo(
            to_json({"node": dataclasses.asdict(node), "fleet": [dataclasses.asdict(r) for r in fleet]}), nl=False
        )
        return
    for table in sizing_tables(s.vllm.model, node, fleet):
        out.print(table)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the schema to this file")] = None,
) -> None:
    """Print the JSON Schema of the pod spec (for editors: completion, hover help, early errors)."""
    from deploy.cli import options
    from deploy.schema import schema_text

    options.output_file("--output", output)
    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    err.print(f"wrote {output}", highlight=False)


@app.command("map")
def map_cmd(
    spec: SpecArg = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="the picture: .svg or .png (.dot: the Graphviz source)")
    ] = Path("pod-map.svg"),
    report: Annotated[
        Path | None,
        typer.Option("--report", help="colour hosts and drives by a `kvpod up --report` JSON or `verify --junit` XML"),
    ] = None,
) -> None:
    """Draw the pod: switches and ports, nodes, enclosure portals, drives and who holds them."""
    from deploy.cli import options
    from deploy.podmap import build_map, output_format, render_map, status_from_report

    options.output_file("--output", output)
    _, p = load(spec)
    try:
        output_format(output)
        status = None
        if report is not None:
            try:
                text = report.read_text()
            except OSError as exc:
                raise InputError(f"--report {report}: {exc.strerror}") from None
            status = status_from_report(text, p, str(report))
        render_map(build_map(p, status), output)
    except InputError as exc:
        raise user_error(str(exc)) from None
    except KvpodError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    if status and status.unknown_hosts:
        err.print(f"the report names hosts the spec does not have: {', '.join(status.unknown_hosts)}", highlight=False)
    drives = sum(len(t.subsystems) for t in p.targets)
    counts = [plural(len(p.nodes), "node"), plural(drives, "drive"), plural(len(p.switches), "switch")]
    out.print(f"wrote {output}: {', '.join(counts)}", highlight=False)


switch_app = typer.Typer(help="Switch-side configuration of the pod.", no_args_is_help=True)
target_app = typer.Typer(help="Target-side configuration of the pod.", no_args_is_help=True)
app.add_typer(switch_app, name="switch")
app.add_typer(target_app, name="target")


@switch_app.command("render")
def switch_render(spec: SpecArg = None) -> None:
    """Print each switch's configuration for review (NVUE patch, bridge commands); touches nothing."""
    from deploy.switches import render_switch_configs

    _, p = load(spec)
    configs = render_switch_configs(p)
    if not configs:
        err.print("the spec has no switches")
    for name, text in configs.items():
        if len(configs) > 1:
            typer.echo(f"# ---- switch {name} ----")
        typer.echo(text, nl=not text.endswith("\n"))


@target_app.command("sheet")
def target_sheet(
    spec: SpecArg = None,
    csv: Annotated[bool, typer.Option("--csv", help="one CSV (section column: port, route, subsystem)")] = False,
) -> None:
    """What an operator configures on each enclosure: portal addresses/VLANs/MTU and drive → host access."""
    from deploy.targets.sheet import render_target_csv, render_target_sheet

    _, p = load(spec)
    text = render_target_csv(p) if csv else render_target_sheet(p)
    typer.echo(text, nl=not text.endswith("\n"))
