"""A role's steps, each declared once with the facts it reads: the deploy runs them, the snapshot's reads are
derived from them.

A :class:`Step` is one call (a pyinfra operation, or a function that calls one) with its arguments, the reads it
compares against and what it may change (:class:`Effect`). The builders below pair the common operations with
their reads, so a role cannot add a step without its read. A role builds its steps from the plan alone::

    def steps(plan) -> Steps:
        return [rendered_step(..., dest=UNIT, keep="unit"), reload_step(when=after("unit")), service_step(...)]

    def reads(plan) -> Reads:
        return reads_of(steps(plan))          # what the runner reads in one command before the deploy

    @deploy("role")
    def role() -> None:
        run_steps(steps(host_data().node))

A :class:`BundledFile` (built with :mod:`deploy.operations.bundle_steps`' ``bundled_file``,
``bundled_directory``, or ``roles._common.rendered_step``) is a file written by one bundle
(:mod:`deploy.operations.bundle`) with all the others: a role's bundle goes before its first file, a node's bundle
first (``roles.node``); each file's own change is kept under its key as a step's result is.

Run time stays run time: an argument ``after("unit")`` becomes, when its step is called,
:func:`deploy.operations.changed` over the results of the earlier steps keyed ``"unit"`` (pyinfra evaluates it
lazily in a real run, as before); a :class:`Choice` is a branch decided on the host when the deploy runs (from
facts it declares too), and both of its branches' reads are part of the role's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyinfra.operations import files, server

from deploy.facts.kernel import LoadedModules
from deploy.facts.snapshot import NamespaceReads, Read
from deploy.names import modules_load_path
from deploy.operations import bundle, changed, kernel, paths
from deploy.operations import units as units_ops
from deploy.operations.reads import (
    absent_file_reads,
    apt_package_reads,
    directory_reads,
    file_reads,
    sysctl_reads,
    unique,
    unit_reads,
)

AnyRead = Read | NamespaceReads


@dataclass(frozen=True)
class Effect:
    """What a step may change on the host: ``kind`` is ``path``, ``unit``, ``module``, ``sysctl``, ``link``,
    ``subsystem``, ``device`` or ``package``; ``name`` the thing itself."""

    kind: str
    name: str


@dataclass(frozen=True)
class After:
    """An argument resolved when its step runs: did any earlier step keyed one of ``keys`` change something.
    ``reloading``: for a ``daemon-reload``, which leaves out files of a bundle already followed by one."""

    keys: tuple[str, ...]
    reloading: bool = False


def after(*keys: str) -> After:
    """``changed(...)`` of the earlier steps keyed ``keys`` (steps not run, e.g. of a branch not taken, count not)."""
    return After(keys)


@dataclass(frozen=True)
class Step:
    """One call of a role: ``call(**kwargs)``, comparing against ``reads``; its result is kept under ``keep``."""

    call: Callable[..., Any]
    kwargs: dict[str, Any]
    reads: tuple[AnyRead, ...]
    keep: str | None = None
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class Choice:
    """Steps chosen on the host when the deploy runs: ``then`` when ``decide()`` (which reads ``reads``) is true,
    else ``otherwise``. Without ``prefetch``, the branches' reads are left out of the snapshot: for a branch
    that only a host far from the plan takes (a unit of an old release still installed), which reads live."""

    decide: Callable[[], bool]
    reads: tuple[AnyRead, ...]
    then: tuple[Step | Choice, ...]
    otherwise: tuple[Step | Choice, ...] = ()
    prefetch: bool = True


@dataclass(frozen=True)
class BundledFile:
    """A file (``content`` None: a directory kvpod manages) written by the bundle of its role or node
    (:mod:`deploy.operations.bundle`), not by a step of its own; its result, kept under ``keep``, is its own
    change. ``when``: wanted only when it answers true on the host (it reads ``reads`` too)."""

    name: str
    path: str
    content: Callable[[], bytes] | None
    mode: str = "644"
    user: str = "root"
    group: str = "root"
    keep: str | None = None
    reads: tuple[AnyRead, ...] = ()
    effects: tuple[Effect, ...] = ()
    when: Callable[[], bool] | None = None
    differs: Callable[[], bool] | None = None

    def entry(self) -> bundle.Entry:
        return bundle.Entry(self.path, self.content, self.mode, self.user, self.group, self.when, self.differs)


Steps = Sequence[Step | Choice | BundledFile]
Results = dict[str, list]  # step key -> the results of the steps run under it, in order
BUNDLED = "bundled files"  # results key: [{path: its change}] of the bundle run so far
RELOADED = "bundle reloaded"  # results key: [True] when a daemon-reload followed the bundle's unit files


def step(
    call: Callable[..., Any],
    reads: Iterable[AnyRead],
    *,
    keep: str | None = None,
    effects: Iterable[Effect] = (),
    **kwargs: Any,
) -> Step:
    """A step calling ``call(**kwargs)`` that reads ``reads`` (an empty list when it reads nothing)."""
    return Step(call, kwargs, tuple(reads), keep, tuple(effects))


def choice(
    decide: Callable[[], bool], reads: Iterable[AnyRead], then: Steps, otherwise: Steps = (), prefetch: bool = True
) -> Choice:
    return Choice(decide, tuple(reads), tuple(then), tuple(otherwise), prefetch)


def run_steps(steps: Steps, results: Results | None = None) -> Results:
    """Call each step in order (a choice's branch decided now); returns the results by key (``results`` extended:
    pass results of another role's steps that ``after`` placeholders name)."""
    results = {} if results is None else results
    for s in steps:
        if isinstance(s, Choice):
            run_steps(s.then if s.decide() else s.otherwise, results)
            continue
        if isinstance(s, BundledFile):
            done = results.setdefault(BUNDLED, [{}])[0]
            if s.path not in done:  # not in the bundle run before: a bundle of its own
                run_steps([bundle_step([s])], results)
            if s.keep is not None:
                results.setdefault(s.keep, []).append(done[s.path])
            continue
        out = s.call(**{name: _resolved(value, results) for name, value in s.kwargs.items()})
        if isinstance(out, bundle.Written):
            results.setdefault(BUNDLED, [{}])[0].update({p: out.change(p) for p in out.paths_of})
        if s.keep is not None:
            results.setdefault(s.keep, []).append(out)
    return results


def _resolved(value: Any, results: Results) -> Any:
    if isinstance(value, dict) and any(isinstance(v, After) for v in value.values()):  # a predicate per unit
        return {k: _resolved(v, results) for k, v in value.items()}
    if isinstance(value, After):
        found = [r for key in value.keys for r in results.get(key, [])]
        if value.reloading and results.get(RELOADED):
            found = [r for r in found if not isinstance(r, bundle.FileChange)]
        return changed(*found)
    return value


def _flat(steps: Steps, prefetched: bool = False) -> Iterable[Step | Choice | BundledFile]:
    for s in steps:
        yield s
        if isinstance(s, Choice) and (s.prefetch or not prefetched):
            yield from _flat(s.then, prefetched)
            yield from _flat(s.otherwise, prefetched)


def reads_of(steps: Steps) -> list[AnyRead]:
    """The snapshot's reads of ``steps``: every read of every step, in both branches of every choice (not those
    of a choice without ``prefetch``), without repeats, in order."""
    return unique([r for s in _flat(steps, prefetched=True) for r in s.reads])


def effects_of(steps: Steps) -> list[Effect]:
    """Everything ``steps`` may change, without repeats, in order."""
    return list(dict.fromkeys(e for s in _flat(steps) if not isinstance(s, Choice) for e in s.effects))


def _write_bundle(files: list[BundledFile], **kwargs: Any) -> bundle.Written:
    written = bundle.Written(paths_of=tuple(f.path for f in files), labels={f.path: f.name for f in files})
    written.meta = bundle.files_written(entries=[f.entry() for f in files], written=written, **kwargs)
    return bundle.remember(written)


BUNDLE_KEY = "bundle"


def bundle_step(files: Sequence[BundledFile], name: str = "kvpod files") -> Step:
    """One bundle writing ``files`` (one upload, one command; nothing when they all match), each file's change
    kept for the steps after it (kept as :data:`BUNDLE_KEY` too); reads what ``files.put`` reads of each."""
    files = list(files)
    return Step(
        _write_bundle,
        {"name": name, "files": files},
        tuple(unique([r for f in files for r in f.reads] + directory_reads(bundle.ROOT_HOME))),
        BUNDLE_KEY,
        tuple(dict.fromkeys(e for f in files for e in f.effects)),
    )


# -- builders: an operation with its reads ------------------------------------------------------------------


def path_effect(p: str) -> Effect:
    return Effect("path", p)


def put_step(name: str, src: str, dest: str, mode: str | None = None, keep: str | None = None) -> Step:
    """``files.put`` of a local file to ``dest``."""
    return step(
        files.put, file_reads(dest), keep=keep, effects=[path_effect(dest)], name=name, src=src, dest=dest, mode=mode
    )


def absent_file_step(name: str, dest: str, keep: str | None = None) -> Step:
    """``dest`` removed (``files.file(present=False)``)."""
    return step(
        files.file, absent_file_reads(dest), keep=keep, effects=[path_effect(dest)], name=name, path=dest, present=False
    )


def directory_step(name: str, dest: str, keep: str | None = None, **options: Any) -> Step:
    """:func:`deploy.operations.paths.directory` (``user``, ``group``, ``mode``, ``present`` as ``files.directory``
    takes them)."""
    return step(
        paths.directory, directory_reads(dest), keep=keep, effects=[path_effect(dest)], name=name, path=dest, **options
    )


def directories_step(name: str, dests: list[str], user: str, group: str, mode: str) -> Step:
    """:func:`deploy.operations.paths.directories`: directories of one owner and mode, the missing ones made by one
    command."""
    return step(
        paths.directories,
        [r for d in dests for r in directory_reads(d)],
        effects=[path_effect(d) for d in dests],
        name=name,
        paths=dests,
        user=user,
        group=group,
        mode=mode,
    )


def services_step(name: str, units: list[str], **options: Any) -> Step:
    """:func:`deploy.operations.units.services` of ``units`` (``restart_when``: per unit, an :func:`after`)."""
    return step(
        units_ops.services,
        [r for u in units for r in unit_reads(u)],
        effects=[Effect("unit", u) for u in units],
        name=name,
        units=units,
        **options,
    )


def service_step(name: str, unit: str, keep: str | None = None, **options: Any) -> Step:
    """:func:`deploy.operations.units.service` of ``unit``."""
    return step(
        units_ops.service, unit_reads(unit), keep=keep, effects=[Effect("unit", unit)], name=name, unit=unit, **options
    )


def reload_step(when: After, name: str = "systemd daemon-reload") -> Step:
    """``systemctl daemon-reload`` when an earlier step changed (reads nothing); the bundled files of a bundle
    already followed by a reload count not."""
    reloading = After(when.keys, reloading=True)
    return step(units_ops.daemon_reload, [], effects=[Effect("unit", "*")], name=name, when=reloading)


def command_step(name: str, command: str, when: After) -> Step:
    """``command`` when an earlier step changed (reads nothing)."""
    return step(units_ops.run, [], name=name, command=command, when=when)


def sysctls_step(name: str, values: dict[str, str]) -> Step:
    """:func:`deploy.operations.kernel.sysctls`: the keys that differ set in one command."""
    effects = [Effect("sysctl", k) for k in values]
    return step(kernel.sysctls, sysctl_reads(list(values)), effects=effects, name=name, values=values)


def packages_step(name: str, packages: list[str]) -> Step:
    """Debian packages present (``server.packages``)."""
    effects = [Effect("package", p) for p in packages]
    return step(server.packages, apt_package_reads(), effects=effects, name=name, packages=packages, present=True)


def modules_step(name: str, modules: list[str]) -> Step:
    """Kernel modules loaded now (at boot: :func:`modules_file`)."""
    return step(
        kernel.modules,
        [Read.of(LoadedModules)],
        effects=[Effect("module", m) for m in modules],
        name=name,
        names=modules,
    )


def persisted_modules_step(name: str, modules: list[str], persist_as: str) -> Step:
    """Kernel modules loaded now and at boot (``modules-load.d/<persist_as>``, written by the same operation): for
    a role that writes its files itself, not through a bundle."""
    persisted = modules_load_path(persist_as)
    return step(
        kernel.modules,
        [Read.of(LoadedModules), *file_reads(persisted)],
        effects=[*(Effect("module", m) for m in modules), path_effect(persisted)],
        name=name,
        names=modules,
        persist_as=persist_as,
    )
