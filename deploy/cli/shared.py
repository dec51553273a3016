"""What every kvpod command shares: the typer app, the consoles, the exit codes, spec loading, the options.

Exit codes: 0 success; 1 the input is invalid (spec, unknown node or drive), or verification/drift found a
difference; 2 an operation failed on a host, a host was unreachable, kvpod refused an unsafe step, or the
environment is unusable; 130 interrupted.

Command modules (one per command group) import this module and the layers below the CLI, never each other
upwards. Commands that reach hosts call :func:`deploy.cli.hosts.use_hosts` before importing anything that
imports pyinfra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from deploy import shipped
from deploy.errors import InputError, KvpodError, SpecError
from deploy.wording import plural

if TYPE_CHECKING:
    from deploy.plan import Plan
    from deploy.spec import PodSpec

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130

out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's usage error, and typer's own copy of it where typer carries click inside."""
    kinds: list[type[Exception]] = [click.UsageError]
    try:
        from typer._click.exceptions import UsageError as vendored
    except ImportError:
        return tuple(kinds)
    return (*kinds, vendored)


USAGE_ERRORS = _usage_errors()


class KvpodGroup(TyperGroup):
    """The command group: every command's user mistakes, host failures and Ctrl-C end with one message and
    kvpod's exit code (1, 2, 130), never a traceback, whether run from the console or a test's runner."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except USAGE_ERRORS as exc:
            exc.exit_code = EXIT_INVALID  # a mistake on the command line is invalid input, as for every option
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except USAGE_ERRORS as exc:
            exc.exit_code = EXIT_INVALID
            raise
        except InputError as exc:
            raise user_error(str(exc)) from None
        except KvpodError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt:
            raise interrupted() from None


def interrupted() -> typer.Exit:
    """Print ``interrupted`` and return the exit (130) to raise."""
    err.print("interrupted", highlight=False)
    return typer.Exit(EXIT_INTERRUPTED)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"kvpod {kvpod_version()}")
        raise typer.Exit(EXIT_OK)


def kvpod_version() -> str:
    """The installed distribution's version, or the source tree's when kvpod runs uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kvpod")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _flags_without_type_hint() -> None:
    """Help shows a flag as ``--dry``, not ``--dry <bool>``: a flag takes no value to describe."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "kvpod_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: click.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.kvpod_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_type_hint()

app = typer.Typer(
    name="kvpod",
    cls=KvpodGroup,
    help="Bring up a GPU inference pod whose LMCache disk tier lives on a shared NVMe-oF enclosure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print kvpod's version and exit"),
    ] = False,
) -> None:
    """Bring up a GPU inference pod whose LMCache disk tier lives on a shared NVMe-oF enclosure."""


SpecArg = Annotated[
    Path | None,
    typer.Argument(help="pod spec YAML (default: the embedded reference pod)", show_default=False),
]
SpecPath = Annotated[Path, typer.Argument(help="pod spec YAML")]
LimitOpt = Annotated[list[str] | None, typer.Option("--limit", metavar="NODE", help="only these nodes (repeatable)")]


def user_error(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit (1) to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_INVALID)


def fail_spec(exc: SpecError) -> typer.Exit:
    """Print every problem as ``field.path: message`` and return the exit (1) to raise."""
    for problem in exc.problems:
        err.print(str(problem), markup=False, highlight=False, emoji=False, soft_wrap=True)
    err.print(f"[red]spec invalid: {plural(len(exc.problems), 'problem')}[/red]")
    return typer.Exit(EXIT_INVALID)


def load_spec_file(path: Path) -> PodSpec:
    """The validated spec at ``path``; exits 1 with every problem listed when it is invalid."""
    from deploy.loader import load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise fail_spec(exc) from None


def load(spec_path: Path | None, default: Path | None = None) -> tuple[PodSpec, Plan]:
    """Load, validate and plan (the reference pod without a path); exits 1 when the spec is invalid."""
    from deploy.plan import build_plan

    spec = load_spec_file(spec_path or default or shipped.reference_spec())
    return spec, build_plan(spec)


def check_limit(plan: Plan, limit: list[str] | None) -> None:
    """``--limit`` may name only nodes of the plan; otherwise exit 1 naming the valid ones (every command)."""
    from deploy.cli import options

    options.limit(plan, limit)


def keep_json(run_dir: Path, name: str, text: str, json_path: Path | None) -> None:
    """Keep a run's JSON result in its run directory (and at ``--json``); print where both are."""
    (run_dir / name).write_text(text)
    if json_path:
        json_path.write_text(text)
    out.print(f"logs: {run_dir}" + (f"  json: {json_path}" if json_path else ""), highlight=False)


def main() -> None:
    """Console entry point: user mistakes and host failures end with a message, never a traceback; Ctrl-C with
    ``interrupted`` and exit 130 (the commands' own group handles both; this catches what comes outside them)."""
    try:
        app()
    except KvpodError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(EXIT_INVALID if isinstance(exc, InputError) else EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise SystemExit(interrupted().exit_code) from None
