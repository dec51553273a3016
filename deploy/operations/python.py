"""Python environment operations: a virtual environment holding pinned distributions, installed with pip."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.facts.python import VenvPackages
from deploy.validate import project_name


def pins(requirements: list[str]) -> dict[str, str]:
    """``["vllm==0.11.0"]`` -> ``{"vllm": "0.11.0"}`` (names normalized)."""
    out = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        if not sep or not name or not version:
            raise ValueError(f"{req!r} is not pinned as name==version")
        out[project_name(name)] = version
    return out


def satisfies(installed: str | None, pinned: str) -> bool:
    """Whether ``installed`` is the pinned release (a local label such as ``+cu124`` does not matter, PEP 440)."""
    return installed is not None and installed.split("+", 1)[0] == pinned.split("+", 1)[0]


@operation()
def venv_packages(
    venv: str,
    requirements: list[str],
    python: str = "/usr/bin/python3",
    find_links: str | None = None,
    index_url: str | None = None,
):
    """
    A virtual environment at ``venv`` holding each pinned requirement; pip runs only when one is missing or
    at another version (never for a converged environment).

    + venv: path of the environment
    + requirements: ``name==version`` pins
    + python: interpreter that creates the environment
    + find_links: install only from this directory of wheels (no index)
    + index_url: the package index to use (default: pip's)
    """
    current = host.get_fact(VenvPackages, venv=venv)
    wanted = pins(requirements)
    stale = [name for name, version in wanted.items() if not satisfies(current["packages"].get(name), version)]
    if current["python"] and not stale:
        host.noop(f"{venv} holds {', '.join(requirements)}")
        return
    if not current["python"]:
        yield StringCommand(QuoteString(python), "-m", "venv", QuoteString(venv))
    pip = [QuoteString(f"{venv}/bin/python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    if find_links:
        pip += ["--no-index", "--find-links", QuoteString(find_links)]
    elif index_url:
        pip += ["--index-url", QuoteString(index_url)]
    yield StringCommand(*pip, *(QuoteString(r) for r in requirements))
