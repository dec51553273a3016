"""Fuzzing `kvpod validate`: whatever the file holds, it ends with exit 0 or 1, never a traceback or a hang.

Every line of an error is ``field.path: message`` (``FILE: message`` for a file that is not a readable
YAML mapping), followed by the ``spec invalid: N problems`` summary. Inputs: arbitrary YAML documents
(from generated data and from raw text and bytes), mutations of every shipped spec (wrong types, huge and
non-finite numbers, unicode, deep nesting, shared values written as anchors and aliases, duplicated or
cut lines), every field of the shipped specs with hostile values, and a corpus of hostile documents
(alias bombs, deep nesting, huge integers, bad encodings). Hypothesis runs derandomized and without an
example database, so every run tries the same inputs.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.plan import build_plan
from tests.conftest import LAB, REFERENCE, ROOT, SHIPPED_SPECS

SPECS = sorted({*SHIPPED_SPECS, *ROOT.glob("inventories/**/pod.yaml"), *ROOT.glob("examples/**/*.yaml")})
SPEC_TEXTS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in SPECS}
SPEC_DICTS = {name: yaml.safe_load(text) for name, text in SPEC_TEXTS.items()}

SECONDS_PER_RUN = 5.0
FUZZ = settings(
    max_examples=40,
    deadline=None,  # wall time is asserted per run (SECONDS_PER_RUN): a slow input fails, it is not flaky
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# A field path: dotted keys, each with optional [index], [name] or ['quoted key'] parts.
_BRACKET = r"\[(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\]'\"]+)\]"
_SEGMENT = rf"(?:[A-Za-z0-9_-]+(?:{_BRACKET})*|(?:{_BRACKET})+)"
FIELD_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
# The path is read as a path (a quoted key may itself hold ": "), then ": " and the message.
PROBLEM_LINE = re.compile(rf"(?P<path>{FIELD_PATH.pattern}): (?P<message>\S.*)")
SUMMARY = re.compile(r"spec invalid: (\d+) problems?")

runner = CliRunner()


def check_problem_line(line: str, file: str | None = None) -> None:
    if file is not None and line.startswith(f"{file}: "):
        assert line[len(file) + 2 :].strip(), f"no message: {line!r}"
        return
    assert PROBLEM_LINE.fullmatch(line), f"not 'field.path: message': {line!r}"


def validate(content: str | bytes) -> tuple[int, list[str]]:
    """`kvpod validate` on a file holding ``content``: check the contract, return (exit code, problem lines)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pod.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        start = time.monotonic()
        result = runner.invoke(app, ["validate", str(path)])
        elapsed = time.monotonic() - start
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    assert elapsed < SECONDS_PER_RUN, f"validate took {elapsed:.1f} s"
    if result.exit_code == 0:
        assert result.stdout.startswith("valid: pod "), result.stdout
        return 0, []
    lines = result.stderr.splitlines()
    assert lines, "exit 1 without a message"
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary, lines[-1]
    problems = lines[:-1]
    assert len(problems) == int(summary.group(1)), result.stderr
    for line in problems:
        check_problem_line(line, str(path))
    return 1, [line.replace(str(path), "FILE") for line in problems]


# --- strategies ------------------------------------------------------------------------------------------

unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    unicode_text,
    st.binary(max_size=16),
    st.dates(),
)
HOSTILE_STRINGS = [
    "",
    " ",
    "x\ny",
    "\x00",
    "\u2028",
    "\u202egpu01",
    "ĝpu01",
    "a" * 300,
    "1e999",
    "10.0.0.300",
    "1.2.3",
    "::",
    "{x}",
    "{n.real}",
    "{0}",
    "{",
    "{n:>999999999}",
    "{slot:>999999999}",
    ":smile: [red]x[/red]",
    "nqn.2024-01.com.example:" + "é" * 200,
]
HOSTILE_NUMBERS = [
    -1,
    0,
    10**30,
    -(10**30),
    2**63,
    2**64 + 1,
    10**4000,
    1.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    1e308,
    -0.0,
    5e-324,
]
WRONG_TYPES = [None, True, [], {}, [[]], {"": None}, {1: 2, "a": 3}, "x"]
SPECIAL = HOSTILE_STRINGS + HOSTILE_NUMBERS + WRONG_TYPES
values = st.recursive(
    scalars | st.sampled_from(SPECIAL),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode_text | st.integers(), inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf] if depth % 2 else {"x": leaf}
    return leaf


def like(current: Any) -> st.SearchStrategy:
    """Hostile values of the current value's own type (a string for a string, a number for a number)."""
    if isinstance(current, str):
        return st.sampled_from(HOSTILE_STRINGS) | unicode_text | st.sampled_from(HOSTILE_STRINGS).map(current.__add__)
    if isinstance(current, bool):
        return st.sampled_from([None, 2, "yes", "true"])
    if isinstance(current, int | float):
        return st.sampled_from(HOSTILE_NUMBERS) | st.integers() | st.floats()
    return st.sampled_from(WRONG_TYPES)


nasty = st.one_of(
    st.sampled_from(SPECIAL),
    values,
    st.builds(nested, st.integers(min_value=10, max_value=120), scalars),
)


def all_paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path of a parsed document (not the root)."""
    out: list[tuple] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(all_paths(value, (*prefix, key)))
    return out


def get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


@st.composite
def mutated_spec(draw) -> str:
    """A shipped spec with one to three structural mutations, written back as YAML."""
    data = copy.deepcopy(SPEC_DICTS[draw(st.sampled_from(sorted(SPEC_DICTS)))])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = all_paths(data)
        path = draw(st.sampled_from(paths))
        parent = get(data, path[:-1])
        kind = draw(st.sampled_from(["same-type", "same-type", "replace", "delete", "unknown-key", "alias", "wrap"]))
        if kind == "same-type":
            parent[path[-1]] = draw(like(parent[path[-1]]))
        elif kind == "replace":
            parent[path[-1]] = draw(nasty)
        elif kind == "delete":
            del parent[path[-1]]
        elif kind == "unknown-key" and isinstance(parent, dict):
            parent[draw(unicode_text | st.integers() | st.none())] = draw(nasty)
        elif kind == "alias":
            # the same object in two places: yaml.dump writes an anchor and an alias
            others = [p for p in paths if p != path[: len(p)]]  # not an ancestor: no cycle here
            parent[path[-1]] = get(data, draw(st.sampled_from(others)))
        elif kind == "wrap":
            parent[path[-1]] = nested(draw(st.integers(min_value=1, max_value=60)), parent[path[-1]])
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)


yaml_text = st.text(
    st.sampled_from([*"abcnpod01:-[]{},&*!|>'\"#%@`?. \t\n\\", "é", "あ", "\x00", "\ufeff", "\x85"]),
    max_size=80,
)


@st.composite
def edited_spec_text(draw) -> str:
    """A shipped spec edited as text: lines duplicated (duplicate keys), deleted, re-indented, or cut short."""
    lines = SPEC_TEXTS[draw(st.sampled_from(sorted(SPEC_TEXTS)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["duplicate", "delete", "indent", "dedent", "insert", "cut"]))
        if kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        elif kind == "dedent":
            lines[i] = lines[i].lstrip(" ")
        elif kind == "insert":
            lines.insert(i, draw(yaml_text) + "\n")
        elif kind == "cut":
            lines[i] = lines[i][: draw(st.integers(min_value=0, max_value=len(lines[i])))]
    return "".join(lines)


FREE_FORM = ("lmcache_extra", "overrides")  # mappings whose keys are LMCache settings or node names, not fields
REQUIRED = [("pod",), ("pod", "name"), ("enclosures",), ("nodes",)]


def model_path(path: tuple) -> bool:
    """Whether ``path`` lies in the spec's own models (not inside a free-form mapping)."""
    return not any(key in FREE_FORM for key in path)


def scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


@st.composite
def invalid_spec(draw) -> tuple[str, str]:
    """A shipped spec made invalid by construction, and the top-level key its problem must be reported under.

    An unknown key in a model mapping, a non-finite number in a numeric field, a mapping or list where a
    scalar belongs, or a required field deleted: each one alone makes the spec invalid.
    """
    data = copy.deepcopy(SPEC_DICTS[draw(st.sampled_from(sorted(SPEC_DICTS)))])
    paths = [p for p in all_paths(data) if model_path(p)]
    kind = draw(st.sampled_from(["unknown-key", "non-finite", "wrong-type", "delete-required"]))
    if kind == "unknown-key":
        parent_path = draw(st.sampled_from([(), *[p for p in paths if isinstance(get(data, p), dict)]]))
        key = "zz" + draw(st.text("abcdefghij_", min_size=1, max_size=8))
        get(data, parent_path)[key] = draw(scalars)
        return yaml.safe_dump(data, sort_keys=False), str((*parent_path, key)[0])
    if kind == "non-finite":
        numeric = [p for p in paths if scalar(get(data, p)) and not isinstance(get(data, p), str)]
        path = draw(st.sampled_from(numeric))
        get(data, path[:-1])[path[-1]] = draw(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
    elif kind == "wrong-type":
        path = draw(st.sampled_from([p for p in paths if scalar(get(data, p))]))
        get(data, path[:-1])[path[-1]] = draw(st.sampled_from([[[]], {"zz": 1}, nested(3, "x")]))
    else:
        path = draw(st.sampled_from(REQUIRED))
        del get(data, path[:-1])[path[-1]]
    return yaml.safe_dump(data, sort_keys=False), str(path[0])


top_level_keys = st.sampled_from(["pod", "fabric", "switches", "enclosures", "nodes", "kvcache", "vllm"])


# --- properties ------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=40)
@given(st.dictionaries(top_level_keys | unicode_text, values, max_size=7))
@example({"pod": {": ": None}})  # a quoted key that holds ": " itself
def test_generated_documents(data):
    validate(yaml.safe_dump(data, allow_unicode=True))


@settings(FUZZ, max_examples=30)
@given(values)
def test_generated_non_mapping_documents(data):
    validate(yaml.safe_dump(data))


@FUZZ
@given(yaml_text)
def test_raw_yaml_text(text):
    validate(text)


@settings(FUZZ, max_examples=30)
@given(st.binary(max_size=200))
def test_raw_bytes(content):
    validate(content)


@settings(FUZZ, max_examples=100)
@given(mutated_spec())
def test_mutated_shipped_specs(text):
    validate(text)


@settings(FUZZ, max_examples=40)
@given(edited_spec_text())
def test_text_edited_shipped_specs(text):
    validate(text)


@settings(FUZZ, max_examples=40)
@given(invalid_spec())
def test_specs_invalid_by_construction_are_refused(case):
    """Never exit 0 for a spec known invalid: exit 1 with a problem reported at the field's own section."""
    text, section = case
    code, problems = validate(text)
    assert code == 1, "an invalid spec was accepted"
    assert any(line.startswith(section) for line in problems), (section, problems)


def test_every_shipped_spec_is_found_and_valid():
    assert {p.relative_to(ROOT).as_posix() for p in SPECS} >= {
        "inventories/reference/pod.yaml",
        "inventories/lab/pod.yaml",
        "examples/single-node/pod.yaml",
    }
    for text in SPEC_TEXTS.values():
        assert validate(text) == (0, [])


# --- every field of the shipped specs, each with hostile values of its own type and of others -----------


def field_cases() -> dict[str, tuple[str, tuple]]:
    """One case per field of the shipped specs (list indices folded), taken from the smallest spec with it."""
    cases: dict[str, tuple[str, tuple]] = {}
    for name in sorted(SPEC_TEXTS, key=lambda n: len(SPEC_TEXTS[n])):
        for path in all_paths(SPEC_DICTS[name]):
            field = ".".join("[]" if isinstance(k, int) else str(k) for k in path).replace(".[]", "[]")
            cases.setdefault(field, (name, path))
    return cases


FIELDS = field_cases()


def hostile_values(current: Any) -> list[Any]:
    if isinstance(current, str):
        own = HOSTILE_STRINGS + [current + s for s in ("{x}", "\n", " x")]
    elif isinstance(current, bool):
        own = ["yes", 2]
    elif isinstance(current, int | float):
        own = HOSTILE_NUMBERS
    else:
        own = [[current] * 300, nested(45, current)]
    return [*own, *WRONG_TYPES, nested(60, "x")]


def problems_in_process(data: dict) -> list[str]:
    """What `kvpod validate` does (load, validate, plan) without the CLI: the problem lines, or [] when valid."""
    try:
        build_plan(spec_from_dict(data))
    except SpecError as exc:
        lines = [str(p) for p in exc.problems]
        assert lines
        for line in lines:
            check_problem_line(line)
        return lines
    return []


def refused_by_construction(path: tuple, current: Any, value: Any) -> bool:
    """Whether a scalar field of the spec's models can only refuse ``value``: a non-finite number where a number
    belongs, a list or mapping where a scalar belongs."""
    if not model_path(path) or not scalar(current):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return not isinstance(current, str)
    return isinstance(value, list | dict)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_field_with_hostile_values(field):
    name, path = FIELDS[field]
    for value in [*hostile_values(get(SPEC_DICTS[name], path)), "<deleted>"]:
        data = copy.deepcopy(SPEC_DICTS[name])
        parent = get(data, path[:-1])
        if value == "<deleted>":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        start = time.monotonic()
        problems = problems_in_process(data)
        assert time.monotonic() - start < SECONDS_PER_RUN, (field, value)
        if refused_by_construction(path, get(SPEC_DICTS[name], path), value):
            assert any(p.startswith(str(path[0])) for p in problems), (field, value, problems)


def test_hostile_values_reach_the_field_they_are_given_to(reference_dict):
    """The sweep is not vacuous: a hostile value is reported at its own field."""
    reference_dict["kvcache"]["disk_budget_gib"] = float("inf")
    assert problems_in_process(reference_dict) == ["kvcache.disk_budget_gib: Input should be a finite number (got inf)"]


# --- a corpus of hostile documents -----------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
REFERENCE_TEXT = REFERENCE.read_text()
LAB_TEXT = LAB.read_text()

CORPUS: dict[str, tuple[str | bytes, str | None]] = {
    # name: (content, the one problem expected, or None when the spec is valid)
    "billion laughs under pod.name": (
        BILLION_LAUGHS + "pod: {name: *i}\n",
        "FILE: the document holds 926177117 values once its aliases are expanded (at most 100000; "
        "a pod spec has a few thousand)",
    ),
    "billion laughs in lmcache_extra": (
        REFERENCE_TEXT.replace(
            "  chunk_size: 256\n",
            "  chunk_size: 256\n  lmcache_extra:\n"
            + "".join("    " + line + "\n" for line in BILLION_LAUGHS.splitlines()),
        ),
        "FILE: the document holds ",
    ),
    "quadratic blowup": (
        "a: &a " + "x" * 200_000 + "\nvllm: {extra_args: [" + ", ".join(["*a"] * 500) + "]}\n",
        "characters of text once its aliases are expanded (at most 10000000)",
    ),
    "alias cycle": (
        "pod: &p {name: x, self: *p}\n",
        "FILE: YAML syntax error at line 1, column 6: an alias refers to a value that contains it (a cycle)",
    ),
    "deep flow nesting": (
        "pod: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "FILE: YAML syntax error at line 1, column 55: values nested deeper than 50 levels",
    ),
    "deep block nesting": (
        "pod:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
        "FILE: YAML syntax error at line 51, column 101: values nested deeper than 50 levels",
    ),
    "integer of 5000 digits": (
        REFERENCE_TEXT.replace("mtu: 9000", "mtu: 1" + "0" * 5000),
        "cannot read '100000000000000000000000000000'... (5001 characters) as int",
    ),
    "float beyond double": (
        REFERENCE_TEXT.replace("capacity_gb: 7680", "capacity_gb: 1.0e+99999"),
        "enclosures[0].drives.capacity_gb: Input should be a finite number (got inf)",
    ),
    "month 13": ("pod: {name: 2024-13-01}\n", "FILE: YAML syntax error at line 1, column 13: cannot read '2024-13-01'"),
    "python tag": (
        "pod: !!python/object/apply:os.system [echo]\n",
        "FILE: YAML syntax error at line 1, column 6: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    "list as key": ("{[a]: 1}\n", "FILE: YAML syntax error at line 1, column 2: a list cannot be a mapping key"),
    "mapping as key": (
        "? {a: 1}\n: 2\n",
        "FILE: YAML syntax error at line 1, column 3: a dict cannot be a mapping key",
    ),
    "duplicate top-level key": (
        REFERENCE_TEXT + "pod:\n  name: other\n",
        f"FILE: YAML syntax error at line {REFERENCE_TEXT.count(chr(10)) + 1}, column 1: duplicate key 'pod'",
    ),
    "duplicate nested key": (
        REFERENCE_TEXT.replace("  mtu: 9000\n", "  mtu: 9000\n  mtu: 1500\n"),
        "FILE: YAML syntax error at line "
        f"{REFERENCE_TEXT[: REFERENCE_TEXT.index('  mtu: 9000')].count(chr(10)) + 2}, column 3: duplicate key 'mtu'",
    ),
    "merge key": (LAB_TEXT.replace("    kind: linux-nvmet\n", "    <<: {kind: linux-nvmet}\n"), None),
    "anchor and alias": (
        LAB_TEXT.replace("interface: eth1, rdma", "interface: &nic eth1, rdma", 1).replace(
            "  fabric_interface: eth1\n", "  fabric_interface: *nic\n"
        ),
        None,
    ),
    "NUL character": ("pod:\n  name: a\x00b\n", "FILE: YAML syntax error at line 2, column 10: character #x0000"),
    "not UTF-8": (b"pod:\n  name: caf\xe9\n", "FILE: not UTF-8 text: byte #xe9 at offset 16"),
    "UTF-16": (REFERENCE_TEXT.encode("utf-16"), "FILE: not UTF-8 text: byte #xff at offset 0"),
    "UTF-8 byte order mark": ("\ufeff" + REFERENCE_TEXT, None),
    "tab indentation": (
        "pod:\n\tname: x\n",
        "FILE: YAML syntax error at line 2, column 1: while scanning for the next token, "
        "found character '\\t' that cannot start any token",
    ),
    "two documents": (
        REFERENCE_TEXT + "---\n" + REFERENCE_TEXT,
        f"FILE: YAML syntax error at line {REFERENCE_TEXT.count(chr(10)) + 1}, column 1: "
        "expected a single document in the stream, but found another document",
    ),
    "empty file": ("", "FILE: the spec must be a YAML mapping with keys pod, enclosures, nodes, ..."),
    "only a comment": ("# nothing\n", "FILE: the spec must be a YAML mapping with keys pod, enclosures, nodes, ..."),
    "a megabyte name": (
        REFERENCE_TEXT.replace("name: data24-pod", "name: " + "x" * 1_000_000),
        "pod.name: 'xxxx",
    ),
    "key with line breaks": (
        REFERENCE_TEXT.replace("  storage_vlan: 100\n", '  "storage\\nvlan\\u2028": 100\n'),
        "fabric['storage\\nvlan\\u2028']: unknown key 'storage\\nvlan\\u2028' (did you mean 'storage_vlan'?",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_document(case):
    content, expected = CORPUS[case]
    code, problems = validate(content)
    if expected is None:
        assert (code, problems) == (0, [])
    else:
        assert code == 1
        assert len(problems) == 1, problems
        assert problems[0].startswith(expected) or expected in problems[0], problems


def test_billion_laughs_stays_small_and_fast():
    tracemalloc.start()
    try:
        start = time.monotonic()
        code, problems = validate(BILLION_LAUGHS + "pod: {name: *i}\n")
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 1 and "values once its aliases are expanded" in problems[0]
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert elapsed < 2, f"{elapsed:.1f} s"
