"""Read what the dynamic loader sees of a shared library, with binutils (``readelf``, ``nm``, ``c++filt``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from deploy.compat.linkage import Extension, Symbol, base_name

_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


def _run(args: list[str], stdin: str | None = None) -> str:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout


def needed(path: Path) -> list[str]:
    """The ``DT_NEEDED`` entries of ``path``, in order."""
    return _NEEDED.findall(_run(["readelf", "-d", "-W", str(path)]))


def undefined(path: Path) -> list[str]:
    """The undefined dynamic symbols of ``path`` (with their version, as ``nm -D`` shows them)."""
    return [line.split()[-1] for line in _run(["nm", "-D", "--undefined-only", str(path)]).splitlines() if line]


def exported(path: Path) -> frozenset[str]:
    """The names of the dynamic symbols ``path`` defines (versions dropped)."""
    lines = _run(["nm", "-D", "--defined-only", str(path)]).splitlines()
    return frozenset(base_name(line.split()[-1]) for line in lines if len(line.split()) >= 3)


def demangle(names: list[str]) -> list[str]:
    """``names`` demangled by ``c++filt`` (a C name stays as it is)."""
    if not names:
        return []
    out = _run(["c++filt"], stdin="\n".join(base_name(n) for n in names) + "\n").splitlines()
    return out if len(out) == len(names) else [base_name(n) for n in names]


def read_extension(path: Path, label: str) -> Extension:
    """The libraries and symbols ``path`` asks for, named ``label`` in the evidence."""
    names = undefined(path)
    return Extension(label, needed(path), [Symbol(n, d) for n, d in zip(names, demangle(names), strict=True)])
