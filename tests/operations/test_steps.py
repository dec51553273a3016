"""The step model: reads are those of the steps (both branches of a choice, unless it is not prefetched), a
choice is decided when the steps run, ``after`` is resolved then from the results kept so far."""

from __future__ import annotations

from pyinfra.facts.files import File

from deploy.facts.snapshot import Read
from deploy.operations.steps import Effect, after, choice, effects_of, reads_of, run_steps, step


class Result:
    """An operation's result as :func:`deploy.operations.changed` sees it."""

    def __init__(self, changed: bool):
        self.changed = changed

    def is_complete(self) -> bool:
        return True

    def did_change(self) -> bool:
        return self.changed


def read(path: str) -> Read:
    return Read.of(File, path=path)


def test_reads_are_the_steps_reads_in_both_branches_once() -> None:
    steps = [
        step(print, [read("/a")], effects=[Effect("path", "/a")]),
        choice(
            lambda: True,
            [read("/c")],
            then=[step(print, [read("/a"), read("/t")])],
            otherwise=[step(print, [read("/o")])],
        ),
        choice(
            lambda: True,
            [read("/d")],
            then=[step(print, [read("/rare")], effects=[Effect("unit", "u")])],
            prefetch=False,
        ),
    ]
    assert reads_of(steps) == [read("/a"), read("/c"), read("/t"), read("/o"), read("/d")]
    assert effects_of(steps) == [Effect("path", "/a"), Effect("unit", "u")]


def test_choices_are_decided_and_after_resolved_when_the_steps_run() -> None:
    calls: list[tuple[str, bool]] = []
    decided: list[bool] = [False]

    def op(name: str, changes: bool = False, when=None) -> Result:
        calls.append((name, when() if when else False))
        return Result(changes)

    steps = [
        step(op, [], keep="files", name="file a", changes=False),
        choice(lambda: decided[0], [], then=[step(op, [], keep="files", name="file b", changes=True)]),
        step(op, [], name="reload", when=after("files", "never kept")),
    ]
    assert calls == [], "building steps calls nothing"
    run_steps(steps)
    assert calls == [("file a", False), ("reload", False)]
    calls.clear()
    decided[0] = True
    results = run_steps(steps, {"given": [Result(True)]})
    assert calls == [("file a", False), ("file b", False), ("reload", True)]
    assert [r.changed for r in results["files"]] == [False, True] and "given" in results
