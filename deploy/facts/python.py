"""Python environment facts: what a virtual environment holds, read from its ``*.dist-info`` directories."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from deploy.validate import project_name


class VenvPackages(FactBase[dict]):
    """
    The virtual environment at ``venv``: whether its interpreter exists, and its installed distributions
    (name normalized -> version), from the names of the ``*.dist-info`` directories pip writes.

    .. code:: python

        {"python": True, "packages": {"vllm": "0.11.0", "lmcache": "0.5.6"}}
        {"python": False, "packages": {}}                  # no environment there
    """

    def command(self, venv: str) -> str:
        v = shlex.quote(venv)
        return (
            f"[ -x {v}/bin/python ] && echo python; "
            f'for d in {v}/lib/python3*/site-packages/*.dist-info; do [ -d "$d" ] && echo "dist ${{d##*/}}"; done; true'
        )

    @staticmethod
    def default() -> dict:
        return {"python": False, "packages": {}}

    def process(self, output: list[str]) -> dict:
        out = self.default()
        for line in output:
            line = line.strip()
            if line == "python":
                out["python"] = True
            elif line.startswith("dist ") and line.endswith(".dist-info"):
                name, _, version = line[5 : -len(".dist-info")].partition("-")
                if name and version:
                    out["packages"][project_name(name)] = version
        return out
