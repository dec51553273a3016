"""The bundle side of a role's steps: files written by one bundle (:class:`deploy.operations.steps.BundledFile`)
and how a role or the node runs its steps around it.

:func:`bundled_file`, :func:`bundled_directory` (and ``roles._common.rendered_step``) declare a file with its
reads; :func:`with_bundle` puts a role's bundle before its first file; a node's bundle goes first (``roles.node``:
:func:`files_of` every role's files) and :func:`role_steps` runs each role after it, its files left out, the node's
kernel modules loaded by one ``modprobe`` (:func:`node_modules`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from deploy.names import modules_load_path
from deploy.operations import bundle, kernel
from deploy.operations.reads import directory_reads, file_reads, unique
from deploy.operations.steps import (
    AnyRead,
    BundledFile,
    Choice,
    Results,
    Step,
    Steps,
    _flat,
    bundle_step,
    path_effect,
)


def files_of(steps: Steps) -> list[BundledFile]:
    """The bundled files of ``steps`` (both branches of every choice: a file of a branch taken on some hosts only
    carries its ``when``), each path once, in order."""
    return list({s.path: s for s in _flat(steps) if isinstance(s, BundledFile)}.values())


def with_bundle(steps: Steps) -> list[Step | Choice | BundledFile]:
    """``steps`` with one bundle of all their files before the first step that holds one."""
    steps, files = list(steps), files_of(steps)
    if not files:
        return steps
    first = next(i for i, s in enumerate(steps) if files_of([s]))
    return [*steps[:first], bundle_step(files), *steps[first:]]


def modules_file(name: str, modules: list[str], persist_as: str) -> BundledFile:
    """Kernel modules loaded at boot: ``modules-load.d/<persist_as>.conf``, a bundled file."""
    text = kernel.modules_load_file(modules).encode()
    return bundled_file(name, modules_load_path(persist_as), lambda: text)


def bundled_file(
    name: str,
    dest: str,
    content: Callable[[], bytes],
    mode: str | None = None,
    user: str | None = None,
    group: str | None = None,
    keep: str | None = None,
    when: Callable[[], bool] | None = None,
    when_reads: Iterable[AnyRead] = (),
    differs: Callable[[], bool] | None = None,
    differs_reads: Iterable[AnyRead] = (),
) -> BundledFile:
    """``dest`` holds ``content()`` (made when the bundle runs), ``mode`` (default 644) and owner (default root),
    written by the bundle; reads what ``files.put`` reads of ``dest`` (with ``differs``: what it reads instead, its
    ``differs_reads``, and the file is written when it answers true)."""
    compared = list(differs_reads) if differs is not None else file_reads(dest)
    return BundledFile(
        name,
        dest,
        content,
        mode or "644",
        user or "root",
        group or "root",
        keep,
        tuple(unique([*compared, *when_reads])),
        (path_effect(dest),),
        when,
        differs,
    )


def bundled_directory(name: str, path: str, mode: str = "755", user: str = "root", group: str = "root") -> BundledFile:
    """The directory ``path`` (one kvpod manages) with ``mode`` and owner, written by the bundle."""
    return BundledFile(name, path, None, mode, user, group, None, tuple(directory_reads(path)), (path_effect(path),))


def local_file(src: str) -> bundle.LocalFile:
    """The local file ``src``, streamed into the bundle when it runs (never read whole into memory)."""
    return bundle.LocalFile(src)


@dataclass
class NodeModules:
    """Every kernel module of a node's roles, loaded by the node's first modules step in one ``modprobe``."""

    names: list[str]
    loaded: bool = False  # by the first modules step of the node's roles


MODULES = "node modules"  # results key: [NodeModules] of the node


def node_modules(steps: Steps) -> NodeModules:
    """The modules the modules steps of ``steps`` load, each once, in order."""
    names = [n for s in _flat(steps) if isinstance(s, Step) and s.call is kernel.modules for n in s.kwargs["names"]]
    return NodeModules(list(dict.fromkeys(names)))


def _fold_modules(steps: Steps, folded: NodeModules) -> list:
    """``steps`` with their first modules step loading every module of the node, their later ones left out (the
    node's one ``modprobe`` loaded those modules already)."""
    out = []
    for s in steps:
        if isinstance(s, Step) and s.call is kernel.modules:
            if folded.loaded:
                continue
            folded.loaded = True
            s = replace(s, kwargs={**s.kwargs, "name": "kernel modules of the node loaded now", "names": folded.names})
        out.append(s)
    return out


def role_steps(steps: Steps, results: Results | None = None) -> tuple[list, Results]:
    """``run_steps`` arguments of a role: its steps after its own bundle, or (``results`` of the node, whose bundle
    holds the role's files already) its steps alone, with a copy of the node's results, the node's modules loaded by
    the first modules step of them all."""
    if results is None:
        return with_bundle(steps), {}
    folded = results.get(MODULES)
    return (_fold_modules(steps, folded[0]) if folded else list(steps)), dict(results)
