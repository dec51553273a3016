"""The curated mutation set (python3 -m tests.mutation) stays in step with the code it mutates."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT
from tests.mutation.mutations import MUTATIONS
from tests.mutation.runner import apply, first_failure, select


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_mutation_applies_exactly_once_and_stays_valid(mutation):
    text = (ROOT / mutation.file).read_text()
    mutated = apply(mutation, text)
    assert mutated is not None, f"{mutation.id}: snippet found {text.count(mutation.old)} times in {mutation.file}"
    assert mutated != text
    if mutation.file.endswith(".py"):
        ast.parse(mutated)  # a syntax error would be caught by any test: not a mutation worth having


def test_mutation_set_is_large_unique_and_points_at_existing_tests():
    ids = [m.id for m in MUTATIONS]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    for m in MUTATIONS:
        assert m.bug and m.tests, m.id
        paths = [a.split("::")[0] for i, a in enumerate(m.tests) if not a.startswith("-") and m.tests[i - 1] != "-k"]
        assert paths and all((ROOT / p).is_file() for p in paths), (m.id, m.tests)


def test_runner_reads_the_first_failure_and_refuses_unknown_ids():
    output = "x\nFAILED tests/unit/test_a.py::test_b[1] - AssertionError\nERROR tests/c.py::d\n"
    assert first_failure(output) == "tests/unit/test_a.py::test_b[1]"
    assert first_failure("ERROR collecting tests/x.py") == "collection error"
    with pytest.raises(SystemExit, match="unknown mutation"):
        select(["no-such-mutation"])
    assert [m.id for m in select([MUTATIONS[0].id])] == [MUTATIONS[0].id]
