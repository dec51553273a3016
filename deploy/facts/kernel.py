"""Kernel facts: loaded kernel modules (names folded) and RDMA links."""

from __future__ import annotations

from pyinfra.api import FactBase


def fold_module(name: str) -> str:
    """The kernel's canonical module name: ``nvme-rdma`` and ``nvme_rdma`` are the same module."""
    return name.strip().replace("-", "_")


class LoadedModules(FactBase[dict[str, str]]):
    """
    Kernel modules that are loaded or built in, names folded (``-`` -> ``_``).

    .. code:: python

        {"nvme_rdma": "loaded", "nvme_core": "builtin"}
    """

    default = dict

    def command(self) -> str:
        return (
            "sed 's/ .*//; s/^/loaded /' /proc/modules 2>/dev/null; "
            "sed -n 's|.*/||; s|\\.ko.*$||; s|^|builtin |p' /lib/modules/$(uname -r)/modules.builtin 2>/dev/null; "
            "true"
        )

    def process(self, output: list[str]) -> dict[str, str]:
        modules: dict[str, str] = {}
        for line in output:
            kind, _, name = line.strip().partition(" ")
            if kind in ("loaded", "builtin") and name:
                modules.setdefault(fold_module(name), kind)
        return modules


class RdmaLinks(FactBase[dict[str, str | None]]):
    """
    RDMA devices and the network device each sits on (``parent`` for soft-RoCE, else the GID table's netdev).

    .. code:: python

        {"rxe_eth1": "eth1", "mlx5_0": "ens1f0np0"}
    """

    default = dict

    def command(self) -> str:
        return (
            'for d in /sys/class/infiniband/*; do [ -d "$d" ] || continue; '
            'n=$(cat "$d/parent" 2>/dev/null); '
            'if [ -z "$n" ]; then for f in "$d"/ports/*/gid_attrs/ndevs/*; do '
            'n=$(cat "$f" 2>/dev/null) && [ -n "$n" ] && break; done; fi; '
            'echo "${d##*/} ${n:--}"; done; true'
        )

    def process(self, output: list[str]) -> dict[str, str | None]:
        links: dict[str, str | None] = {}
        for line in output:
            parts = line.split()
            if len(parts) == 2:
                links[parts[0]] = None if parts[1] == "-" else parts[1]
        return links
