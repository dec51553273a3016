"""``kvpod lab``: boot the QEMU lab, bring the lab pod up and verify it; status, ssh, down."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import yaml

from deploy import shipped
from deploy.cli.run import check_selection, run_up_command, up_options
from deploy.cli.shared import EXIT_FAILED, EXIT_INVALID, app, load, out
from deploy.plan import Plan

lab_app = typer.Typer(
    help="A virtual pod of QEMU VMs on this machine (real kernel NVMe/RDMA path).", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")


def _lab():
    from deploy.lab.manager import Lab

    return Lab()


def lab_spec_for(nodes: int, lab_dir: Path) -> Path:
    """The lab pod spec for ``nodes`` nodes: the shipped one, or a copy with more/fewer nodes and drives."""
    spec = shipped.lab_spec()
    data = yaml.safe_load(spec.read_text())
    if data["nodes"]["generate"]["count"] == nodes:
        return spec
    data["nodes"]["generate"]["count"] = nodes
    data["enclosures"][0]["drives"]["count"] = nodes + 1  # one spare, as in the shipped lab
    derived = lab_dir / "pod.yaml"
    derived.parent.mkdir(parents=True, exist_ok=True)
    derived.write_text(yaml.safe_dump(data, sort_keys=False))
    return derived


def lab_machines(plan: Plan):
    """The VMs to boot for a lab plan: its linux-nvmet targets and its nodes, on their SSH ports."""
    from deploy.lab.machines import LabMachine

    machines = [LabMachine(t.name, t.ssh.port, "target") for t in plan.targets if t.ssh is not None]
    return machines + [LabMachine(n.name, n.ssh.port, "node") for n in plan.nodes]


def _progress():
    from deploy.lab.progress import Progress

    @contextmanager
    def waiting(description: str):
        with out.status(description):
            yield

    def on_step(name: str, seconds: float) -> None:
        out.print(f"[green]✓[/green] {name} [dim]({seconds:.1f}s)[/dim]", highlight=False)

    return Progress(on_step=on_step, waiting=waiting)


@contextmanager
def _step(name: str):
    started = time.monotonic()
    with out.status(name):
        yield
    out.print(f"[green]✓[/green] {name} [dim]({time.monotonic() - started:.1f}s)[/dim]", highlight=False)


@lab_app.command("up")
def lab_up(
    nodes: Annotated[int, typer.Option(help="number of node VMs (plus one target VM)", min=1, max=6)] = 2,
    bring_up: Annotated[bool, typer.Option("--bring-up/--boot-only", help="run kvpod up and verify")] = True,
) -> None:
    """Boot the lab (building the VM image once), then `kvpod up` + `kvpod verify` of the lab pod."""
    from deploy.lab.errors import LabError
    from deploy.lab.wheels import build_standin_wheelhouse

    lab = _lab()
    started = time.monotonic()
    lab.ensure_hf_token()  # the lab spec's vllm.hf_token_file, read when the spec is loaded
    spec_path = lab_spec_for(nodes, lab.paths.root)
    _, plan = load(spec_path)
    try:
        with _step("host packages"):
            installed = lab.ensure_host_deps()
        if installed:
            out.print(f"  installed: {' '.join(installed)}")
        progress = _progress()
        lab.ensure_image(progress)
        for t in plan.targets:  # fresh VMs have fresh host keys
            if t.ssh and t.ssh.known_hosts_file:
                Path(t.ssh.known_hosts_file).unlink(missing_ok=True)
        lab.boot(lab_machines(plan), progress)
        with _step("stand-in wheels of vLLM and LMCache (the lab's wheelhouse)"):
            for n in plan.nodes[:1]:
                if n.vllm.install and n.vllm.install.wheelhouse:
                    lmcache = next(r for r in n.vllm.install.requirements if r.startswith("lmcache=="))
                    build_standin_wheelhouse(Path(n.vllm.install.wheelhouse), lmcache.split("==", 1)[1])
    except LabError as exc:
        out.print(f"[red]lab:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(f"lab booted in {time.monotonic() - started:.1f}s; pod spec: {spec_path}")
    if not bring_up:
        return
    check_selection(plan, [])  # the wheelhouse just built
    code = run_up_command(plan, up_options(), yes=True, report=None, verify=True)
    out.print(f"lab up finished in {time.monotonic() - started:.1f}s (exit {code})")
    raise typer.Exit(code)


@lab_app.command("down")
def lab_down() -> None:
    """Stop exactly what the lab started (by PID) and remove its namespace, taps and overlays."""
    removed = _lab().down()
    for item in removed:
        out.print(f"removed {item}", highlight=False)
    out.print("lab is down" if removed else "nothing to remove: the lab was not up")


@lab_app.command("status")
def lab_status() -> None:
    """Each lab VM with its SSH port and state."""
    from rich.table import Table

    rows = _lab().status()
    if not rows:
        out.print("the lab is not up")
        raise typer.Exit(EXIT_INVALID)
    t = Table(title="lab")
    for col in ("vm", "ssh", "pid", "state"):
        t.add_column(col)
    for r in rows:
        style = {"running": "green", "unreachable": "yellow"}.get(r.state, "red")
        t.add_row(r.name, f"127.0.0.1:{r.ssh_port}", str(r.pid or "-"), f"[{style}]{r.state}[/{style}]")
    out.print(t)


@lab_app.command("stop")
def lab_stop(
    name: Annotated[str, typer.Argument(help="VM name as in the lab spec (target, node1, ...)")],
    hard: Annotated[bool, typer.Option("--kill", help="SIGKILL at once instead of SIGTERM")] = False,
) -> None:
    """Power one lab VM off (its disk and switch port stay); `kvpod lab start NAME` boots it again."""
    from deploy.lab.errors import LabError

    try:
        pid = _lab().stop(name, hard=hard)
    except LabError as exc:
        out.print(f"[red]lab:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(f"stopped {name} (pid {pid})" if pid else f"{name} was not running", highlight=False)


@lab_app.command("start")
def lab_start(name: Annotated[str, typer.Argument(help="VM name as in the lab spec (target, node1, ...)")]) -> None:
    """Boot a stopped lab VM from its own disk and wait until it answers SSH."""
    from deploy.lab.errors import LabError

    try:
        with out.status(f"booting {name}"):
            seconds = _lab().start(name)
    except LabError as exc:
        out.print(f"[red]lab:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(f"[green]✓[/green] {name} answers SSH ({seconds:.1f}s)", highlight=False)


@lab_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_ssh(
    name: Annotated[str, typer.Argument(help="VM name as in the lab spec (target, node1, ...)")],
    command: Annotated[list[str] | None, typer.Argument(help="command to run (after --)")] = None,
) -> None:
    """Open a shell on a lab VM, or run `-- CMD ...` there and return its exit code."""
    from deploy.lab.errors import LabError

    try:
        argv = _lab().ssh_command(name, list(command) if command else None)
    except (LabError, KeyError) as exc:
        out.print(f"[red]lab:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    if command:
        raise typer.Exit(subprocess.run(argv, check=False).returncode)
    os.execvp(argv[0], argv)
