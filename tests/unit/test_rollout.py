"""The rollout's pure parts: the engines of a node, ``--max-unavailable`` and its alias, the restart batches."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.errors import InputError, SpecError
from deploy.loader import load_spec, spec_from_dict
from deploy.plan import build_plan
from deploy.rollout import (
    Engine,
    Share,
    node_engines,
    parse_max_unavailable,
    restart_batches,
    rollout_share,
    served_model_name,
)
from tests.conftest import LAB, REFERENCE


def engines(node: str, count: int) -> list[Engine]:
    return [
        Engine(node, f"kvpod-vllm@{i}.service", f"http://127.0.0.1:{8000 + i}/health", "m", "x") for i in range(count)
    ]


def shape(batches) -> list[list[tuple[str, int]]]:
    """Each batch as (node, engines restarted) pairs."""
    return [[(node, len(group)) for node, group in batch] for batch in batches]


def test_the_engines_of_a_node_are_its_plans_engines() -> None:
    node = build_plan(load_spec(LAB)).nodes[0]  # the lab: 8 GPUs at TP 4, two engines
    assert node_engines(node) == [
        Engine(
            "node1",
            f"kvpod-vllm@{i}.service",
            f"http://127.0.0.1:{8000 + i}/health",
            f"http://127.0.0.1:{8000 + i}/v1/models",
            "meta-llama/Llama-3.1-8B-Instruct",
        )
        for i in (0, 1)
    ]
    assert node_engines(node)[1].label == "node1/kvpod-vllm@1.service"


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ([], "org/m"),
        (["--served-model-name", "chat"], "chat"),
        (["--served-model-name=chat"], "chat"),
        (["--served_model_name", "chat"], "chat"),
        (["--served-model-name", "a", "b"], "a"),
        (["--served-model-name", "a", "--enable-prefix-caching", "--served-model-name", "b"], "b"),
        (["--enable-prefix-caching"], "org/m"),
        (["--served-model-name"], "org/m"),
    ],
)
def test_the_model_waited_for_is_the_name_vllm_serves(extra: list[str], name: str) -> None:
    assert served_model_name("org/m", extra) == name


def test_the_plan_carries_the_health_timeout_and_the_spec_bounds_it() -> None:
    plan = build_plan(load_spec(REFERENCE))
    assert {n.vllm.health_timeout_s for n in plan.nodes} == {1800}
    data = yaml.safe_load(LAB.read_text())
    data["vllm"]["health_timeout_s"] = 30
    assert build_plan(spec_from_dict(data)).nodes[0].vllm.health_timeout_s == 30
    for bad in (0, 9, 86401):
        data["vllm"]["health_timeout_s"] = bad
        with pytest.raises(SpecError, match="health_timeout_s"):
            spec_from_dict(data)


@pytest.mark.parametrize(
    ("text", "total", "limit"),
    [("1", 24, 1), ("4", 24, 4), ("25%", 24, 6), ("10%", 3, 1), ("100%", 5, 5), ("50%", 48, 24), (" 2 ", 9, 2)],
)
def test_max_unavailable_is_a_count_or_a_share_of_the_pods_engines(text: str, total: int, limit: int) -> None:
    assert parse_max_unavailable(text).of(total) == limit


@pytest.mark.parametrize("text", ["0", "-1", "abc", "0%", "150%", "1.5", "", "%", "nan%"])
def test_bad_max_unavailable_names_the_option_and_what_is_valid(text: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_max_unavailable(text, "--batch")
    assert str(exc.value).startswith(f"--batch {text!r}: expected a number of engines (at least 1")
    assert "at most 100" in str(exc.value)


def test_batch_is_another_name_for_max_unavailable() -> None:
    assert rollout_share(None, None) == "1"
    assert rollout_share("25%", None) == "25%"
    assert rollout_share(None, "3") == "3"
    assert rollout_share("3", "3") == "3"
    with pytest.raises(InputError, match="give one of them"):
        rollout_share("1", "2")
    with pytest.raises(InputError, match="--batch '0'"):
        rollout_share("1", "0")


def test_one_engine_per_node_restarts_max_unavailable_nodes_at_a_time() -> None:
    pending = [(f"n{i}", engines(f"n{i}", 1)) for i in range(5)]
    assert shape(restart_batches(pending, 1)) == [[(f"n{i}", 1)] for i in range(5)]
    assert shape(restart_batches(pending, 2)) == [[("n0", 1), ("n1", 1)], [("n2", 1), ("n3", 1)], [("n4", 1)]]
    assert shape(restart_batches(pending, 9)) == [[(f"n{i}", 1) for i in range(5)]]


def test_a_nodes_engines_stay_together_when_the_limit_allows() -> None:
    pending = [("a", engines("a", 2)), ("b", engines("b", 2)), ("c", engines("c", 2))]
    assert shape(restart_batches(pending, 3)) == [[("a", 2)], [("b", 2)], [("c", 2)]]
    assert shape(restart_batches(pending, 4)) == [[("a", 2), ("b", 2)], [("c", 2)]]


def test_a_node_with_more_engines_than_the_limit_is_split() -> None:
    pending = [("a", engines("a", 1)), ("b", engines("b", 5)), ("c", engines("c", 1))]
    batches = restart_batches(pending, 2)
    assert shape(batches) == [[("a", 1)], [("b", 2)], [("b", 2)], [("b", 1)], [("c", 1)]]
    assert [e.unit for _, group in batches[1] + batches[2] + batches[3] for e in group] == [
        e.unit for e in engines("b", 5)
    ]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=12), st.integers(1, 8))
def test_batches_respect_the_limit_and_restart_every_engine_once_in_order(counts: list[int], limit: int) -> None:
    pending = [(f"n{i}", engines(f"n{i}", c)) for i, c in enumerate(counts)]
    batches = restart_batches(pending, limit)
    assert all(0 < sum(len(g) for _, g in batch) <= limit for batch in batches)
    flat = [e for batch in batches for _, group in batch for e in group]
    assert flat == [e for _, group in pending for e in group]
    for node, group in pending:
        if 0 < len(group) <= limit:
            assert sum(1 for batch in batches for n, _ in batch if n == node) == 1, "kept together"


def test_share_of_an_empty_pod_is_still_one() -> None:
    assert Share(percent=10).of(0) == 1 and Share(count=3).of(0) == 3
