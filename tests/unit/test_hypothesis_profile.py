"""Every property test is derandomized: CI tries the same inputs on every run."""

from __future__ import annotations

import importlib
import inspect

from hypothesis import settings

from tests.conftest import ROOT

SKIPPED = ("tests/lab/standin/", "tests/mutation/")


def property_tests() -> dict[str, object]:
    """Every @given test function of the fast and lab test modules, by its test id."""
    found = {}
    for path in sorted(ROOT.glob("tests/**/test_*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(SKIPPED) or "given" not in path.read_text():
            continue
        module = importlib.import_module(rel.removesuffix(".py").replace("/", "."))
        for name, obj in inspect.getmembers(module):
            members = inspect.getmembers(obj, inspect.isfunction) if inspect.isclass(obj) else []
            for test_id, fn in [(name, obj), *((f"{name}.{m}", f) for m, f in members)]:
                if getattr(fn, "is_hypothesis_test", False):
                    found[f"{rel}::{test_id}"] = fn
    return found


def test_the_kvpod_profile_is_loaded_and_derandomized():
    assert settings.default.derandomize is True
    assert settings.default.database is None


def test_every_property_test_is_derandomized():
    tests = property_tests()
    assert len(tests) >= 9, sorted(tests)  # the fuzz, plan, schema and map properties at least
    random = sorted(name for name, fn in tests.items() if not fn._hypothesis_internal_use_settings.derandomize)
    assert random == [], f"not derandomized: {random}"
