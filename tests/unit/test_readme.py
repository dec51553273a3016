"""The README's opening commands are the ones that work: CI runs exactly its test command."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


VENV = ".venv/bin/"


def test_readme_opens_with_two_commands():
    main_job, tests = readme_commands()
    assert "kvpod lab up" in main_job
    assert "pytest" in tests


def test_both_commands_make_and_use_a_virtual_environment_with_the_pinned_versions():
    """Debian's own python3 refuses ``pip install`` (externally managed): both commands go through ``.venv``,
    installing python3-venv where ensurepip is missing, and install with the constraints CI tests."""
    for command in readme_commands():
        steps = command.split(" && ")
        assert steps[0] == "(python3 -c 'import ensurepip' 2>/dev/null || apt-get install -y python3-venv)"
        assert steps[1] == "python3 -m venv .venv"
        assert all(step.startswith(VENV) for step in steps[2:]), steps
        assert "-c .ci/constraints.txt" in steps[2]
    assert readme_commands()[1].endswith(f"{VENV}python -m pytest")


def test_ci_runs_both_readme_commands_and_pip_only_in_its_environment():
    main_job, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert main_job in ci and tests in ci, "CI runs both commands exactly as written"
    assert ci.index(main_job) < ci.index("export KVPOD_LAB_REUSE=1") < ci.index(tests), (
        "the lab suite tests the lab the first command brought up"
    )
    pip = [line for line in ci if re.search(r"\bpip\b", line) and not line.lstrip().startswith("#")]
    assert pip and all(f"{VENV}pip install" in line and "python3 -m pip" not in line for line in pip), pip


def test_the_constraints_pin_every_dependency_and_pyproject_pins_pyinfra_exactly():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    assert [str(r) for r in wanted if canonicalize_name(r.name) not in pins] == []
    assert [str(r) for r in wanted if not r.specifier.contains(pins[canonicalize_name(r.name)])] == []
    pyinfra = next(r for r in wanted if r.name == "pyinfra")  # exactly: the engine's adapter reads its internals
    assert str(pyinfra.specifier) == f"=={pins['pyinfra']}"


def test_readme_pictures_exist():
    text = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert pictures
    assert [p for p in pictures if not (ROOT / p).is_file()] == []
