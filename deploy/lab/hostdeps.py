"""Host packages the lab needs, installed with apt only when missing."""

from __future__ import annotations

import os
import subprocess

from .errors import LabError

HOST_PACKAGES: tuple[str, ...] = (
    "qemu-system-x86",
    "qemu-utils",
    "mmdebstrap",
    "openssh-client",
    "iproute2",
    "e2fsprogs",
    "util-linux",
    "debian-archive-keyring",
)


def installed(package: str) -> bool:
    """Whether dpkg reports ``package`` as installed."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "installed"


def missing_packages(packages: tuple[str, ...] = HOST_PACKAGES) -> list[str]:
    """The packages from ``packages`` that are not installed."""
    return [p for p in packages if not installed(p)]


def _apt(args: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise LabError(f"apt-get {' '.join(args)} failed (exit {result.returncode}):\n{tail}")


def ensure_host_deps(packages: tuple[str, ...] = HOST_PACKAGES) -> list[str]:
    """Install whatever of ``packages`` is missing; return what was installed (empty if nothing)."""
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise LabError(f"the lab needs these packages, and installing them needs root: {' '.join(missing)}")
    _apt(["update", "-q"])
    _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    still_missing = missing_packages(tuple(missing))
    if still_missing:
        raise LabError(f"apt-get install finished but these are still missing: {' '.join(still_missing)}")
    return missing
