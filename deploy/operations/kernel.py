"""Kernel operations: modules loaded now and at boot, kernel parameters, soft-RoCE links."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.util import try_int
from pyinfra.facts.server import Sysctl
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


def sysctl_value(value: str) -> int | str | list[int | str]:
    """``value`` as the ``Sysctl`` fact reports it (as ``server.sysctl`` compares): a list of words when several."""
    words = value.split()
    return [try_int(w) for w in words] if len(words) > 1 else try_int(value)


@operation()
def sysctls(values: dict[str, str]):
    """
    Kernel parameters set now: one ``sysctl`` command for every key whose value differs (each key compared as
    ``server.sysctl`` compares it).

    + values: ``{"net.core.rmem_max": "134217728", "net.ipv4.tcp_rmem": "4096 131072 134217728"}``
    """
    wrong = {k: v for k, v in values.items() if host.get_fact(Sysctl, keys=[k]).get(k) != sysctl_value(v)}
    if not wrong:
        host.noop(f"sysctls {', '.join(values)} are set")
        return
    yield StringCommand(
        "sysctl", *(StringCommand(QuoteString(k), "=", QuoteString(v), _separator="") for k, v in wrong.items())
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
