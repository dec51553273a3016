"""The kvpod command line. Thin typer commands: load, call a pure function or the runner, print.

Exit codes: 0 success; 1 the spec is invalid, or verification/drift found a difference;
2 an operation failed on a host or the environment is unusable; 130 interrupted.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # pyinfra runs hosts in parallel on gevent: patch before anything opens sockets

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from deploy import paths  # noqa: E402
from deploy.errors import InputError, KvpodError, SpecError  # noqa: E402
from deploy.loader import load_spec  # noqa: E402
from deploy.plan import Plan, build_plan  # noqa: E402
from deploy.spec import PodSpec  # noqa: E402

EXIT_INVALID = 1
EXIT_FAILED = 2

app = typer.Typer(
    name="kvpod",
    help="Bring up a GPU inference pod whose LMCache disk tier lives on a shared NVMe-oF enclosure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)


switch_app = typer.Typer(help="Switch-side configuration of the pod.", no_args_is_help=True)
target_app = typer.Typer(help="Target-side configuration of the pod.", no_args_is_help=True)


def _register_subcommands() -> None:
    from deploy.cli_lab import lab_app

    app.add_typer(lab_app, name="lab")
    app.add_typer(switch_app, name="switch")
    app.add_typer(target_app, name="target")
    from deploy.cli_verify import register as register_verify

    register_verify(app)
    from deploy.cli_bench import register as register_bench

    register_bench(app)


SpecArg = Annotated[
    Path | None,
    typer.Argument(help="pod spec YAML (default: the embedded reference pod)", show_default=False),
]


def fail_spec(exc: SpecError) -> typer.Exit:
    """Print every problem as ``field.path: message`` and return the exit to raise."""
    for problem in exc.problems:
        err.print(str(problem), markup=False, highlight=False, emoji=False, soft_wrap=True)
    err.print(f"[red]spec invalid: {len(exc.problems)} problem(s)[/red]")
    return typer.Exit(EXIT_INVALID)


def load(spec_path: Path | None, default: Path | None = None) -> tuple[PodSpec, Plan]:
    """Load, validate and plan; exits 1 with every problem listed when the spec is invalid."""
    path = spec_path or default or paths.reference_spec()
    try:
        spec = load_spec(path)
    except SpecError as exc:
        raise fail_spec(exc) from None
    return spec, build_plan(spec)


@app.command()
def validate(spec: SpecArg = None) -> None:
    """Check a pod spec; print one line per problem as `field.path: what is wrong (what would be valid)`."""
    s, plan = load(spec)
    out.print(
        f"[green]valid[/green]: pod {s.pod.name}, {len(plan.nodes)} nodes, "
        f"{sum(len(t.subsystems) for t in plan.targets)} drives, {len(plan.switches)} switches"
    )


@app.command()
def plan(
    spec: SpecArg = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """Show the desired state of every node, target and switch (a pure function of the spec)."""
    from deploy.output import plan_table, targets_table

    _, p = load(spec)
    if json_out:
        typer.echo(p.to_json(), nl=False)
        return
    out.print(plan_table(p))
    out.print(targets_table(p))


@app.command()
def size(
    spec: SpecArg = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the sizing as JSON")] = False,
) -> None:
    """Capacity sizing: KV bytes per token, VRAM for KV pages, sessions per tier, fleet table."""
    from deploy.output import sizing_tables, to_json
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
    fleet = fleet_table(gpus, s.vllm.sessions_per_node)
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
    from deploy.schema import schema_text

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
    from deploy.podmap import build_map, output_format, plural, render_map, status_from_report

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
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    except KvpodError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    if status and status.unknown_hosts:
        err.print(f"the report names hosts the spec does not have: {', '.join(status.unknown_hosts)}", highlight=False)
    drives = sum(len(t.subsystems) for t in p.targets)
    counts = [plural(len(p.nodes), "node"), plural(drives, "drive"), plural(len(p.switches), "switch")]
    out.print(f"wrote {output}: {', '.join(counts)}", highlight=False)


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


_register_subcommands()

LimitOpt = Annotated[list[str] | None, typer.Option("--limit", help="only these nodes (repeatable)")]


def _options(limit, wipe, batch, prune, force_unreachable, dry=False):
    from deploy.orchestrate import UpOptions

    return UpOptions(
        limit=limit, dry=dry, wipe=set(wipe or []), batch=batch, prune=prune, force_unreachable=force_unreachable
    )


WipeOpt = Annotated[list[str] | None, typer.Option("--wipe", help="reformat this drive (ENCLOSURE/SLOT): data is lost")]
BatchOpt = Annotated[str, typer.Option("--batch", help="vLLM restarts per batch: nodes (1) or a share (25%)")]
PruneOpt = Annotated[bool, typer.Option("--prune", help="release nodes that left the spec")]
ForceOpt = Annotated[
    bool, typer.Option("--force-unreachable", help="hand over drives of unreachable nodes (target revokes, MMP)")
]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", help="take over the pod lock of a run that is gone (stale lock only)")
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="write the per-host summary as JSON")]


@app.command()
def up(
    spec: Annotated[Path, typer.Argument(help="pod spec YAML")],
    limit: LimitOpt = None,
    dry: Annotated[bool, typer.Option("--dry", help="show what would change; change nothing")] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="show the diff before applying (the default when interactive)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask before applying")] = False,
    wipe: WipeOpt = None,
    batch: BatchOpt = "1",
    prune: PruneOpt = False,
    force_unreachable: ForceOpt = False,
    report: ReportOpt = None,
    verify: Annotated[bool, typer.Option(help="run kvpod verify after a successful bring-up")] = True,
    break_lock: BreakLockOpt = False,
) -> None:
    """Configure switches, hand over moved drives, targets, nodes; roll vLLM restarts. A rerun changes nothing."""
    from deploy.cli_run import run_diff_command, run_up_command

    _, p = load(spec)
    opts = _options(limit, wipe, batch, prune, force_unreachable, dry=dry)
    if diff and not dry and not yes:
        code = run_diff_command(p, _options(limit, wipe, batch, prune, force_unreachable, dry=True), exit_on_drift=True)
        if code != 1:
            raise typer.Exit(code)
    raise typer.Exit(run_up_command(p, opts, yes=yes or diff, report=report, verify=verify, break_lock=break_lock))


@app.command("diff")
def diff_cmd(
    spec: Annotated[Path, typer.Argument(help="pod spec YAML")],
    limit: LimitOpt = None,
    prune: PruneOpt = False,
    report: ReportOpt = None,
) -> None:
    """Read the live pod and show, per host, what `kvpod up` would change and why; change nothing."""
    from deploy.cli_run import run_diff_command

    _, p = load(spec)
    raise typer.Exit(
        run_diff_command(p, _options(limit, [], "1", prune, False, dry=True), exit_on_drift=False, report=report)
    )


@app.command()
def check(
    spec: Annotated[Path, typer.Argument(help="pod spec YAML")],
    limit: LimitOpt = None,
    report: ReportOpt = None,
) -> None:
    """Report drift (live state differing from the plan) per host; exit 1 when there is drift."""
    from deploy.cli_run import run_diff_command

    _, p = load(spec)
    raise typer.Exit(
        run_diff_command(p, _options(limit, [], "1", False, False, dry=True), exit_on_drift=True, report=report)
    )


@app.command()
def reassign(
    spec: Annotated[Path, typer.Argument(help="pod spec YAML (edited in place, comments kept)")],
    drive: Annotated[str, typer.Option("--drive", help="ENCLOSURE/SLOT of the drive to move")],
    to: Annotated[str, typer.Option("--to", help="the node that receives the drive")],
    swap: Annotated[
        bool, typer.Option("--swap", help="the receiving node's drive goes to the drive's old holder")
    ] = False,
    wipe: Annotated[
        bool, typer.Option("--wipe", help="recreate the filesystem on the moved drive: data is lost")
    ] = False,
    force_unreachable: ForceOpt = False,
    batch: BatchOpt = "1",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = True,
    break_lock: BreakLockOpt = False,
) -> None:
    """Move a drive to another node safely: old holder releases, target re-admits, new holder mounts."""
    from deploy.cli_reassign import run_reassign_command

    raise typer.Exit(
        run_reassign_command(
            spec,
            drive,
            to,
            swap=swap,
            wipe=wipe,
            force_unreachable=force_unreachable,
            batch=batch,
            break_lock=break_lock,
        )
    )


def main() -> None:
    """Console entry point: user mistakes and host failures end with a message, never a traceback."""
    try:
        app()
    except KvpodError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(EXIT_INVALID if isinstance(exc, InputError) else EXIT_FAILED) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
