"""Kernel operations: modules loaded now and at boot, soft-RoCE links."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import files

from deploy.facts.kernel import LoadedModules, RdmaLinks, fold_module
from deploy.names import modules_load_path
from deploy.operations import refuse


def modules_load_file(names: list[str]) -> str:
    """Content of a ``modules-load.d`` file for ``names`` (folded, in the given order)."""
    lines = ["# kvpod: kernel modules loaded at boot (systemd-modules-load)"]
    lines += [fold_module(n) for n in names]
    return "\n".join(lines) + "\n"


@operation()
def modules(names: list[str], persist_as: str | None = None):
    """
    Load kernel modules now (names compare with ``-``/``_`` folded) and, with ``persist_as``, at boot via
    ``/etc/modules-load.d/<persist_as>.conf``.

    + names: module names, e.g. ``["nvme_fabrics", "nvme-rdma"]``
    + persist_as: basename of the modules-load.d file; None: load now only
    """
    loaded = host.get_fact(LoadedModules)
    missing = [fold_module(n) for n in names if fold_module(n) not in loaded]
    if missing:
        yield StringCommand("modprobe", "-a", *(QuoteString(m) for m in missing))
    else:
        host.noop(f"modules {', '.join(fold_module(n) for n in names)} are loaded")
    if persist_as:
        yield from files.put._inner(
            src=StringIO(modules_load_file(names)),
            dest=modules_load_path(persist_as),
        )


@operation()
def rxe_link(netdev: str, rdma_dev: str | None = None):
    """
    A soft-RoCE (rxe) RDMA device on ``netdev``, only when ``netdev`` has no RDMA device yet (a rerun of
    ``rdma link add`` fails with "File exists"). Needs the ``rdma_rxe`` module.

    + netdev: the network device (the fabric NIC; its VLAN interfaces are served too)
    + rdma_dev: name of the new RDMA device (default ``rxe_<netdev>``)
    """
    rdma_dev = rdma_dev or f"rxe_{netdev}"
    links = host.get_fact(RdmaLinks)
    on_netdev = [dev for dev, nd in links.items() if nd == netdev]
    if on_netdev:
        host.noop(f"{netdev} has RDMA device {on_netdev[0]}")
        return
    if rdma_dev in links:
        yield from refuse(f"RDMA device {rdma_dev} exists on {links[rdma_dev]}, not on {netdev}")
        return
    yield StringCommand("rdma", "link", "add", QuoteString(rdma_dev), "type", "rxe", "netdev", QuoteString(netdev))
