"""Read a pod spec file: YAML (with line/column on syntax errors) → validated :class:`PodSpec`."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from deploy.errors import Problem, SpecError
from deploy.pydantic_errors import problems_from_validation
from deploy.spec import PodSpec


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (YAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1}, column {mark.column + 1})", mark
            )
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str = "spec") -> dict:
    """Parse YAML text into a mapping; syntax errors become a Problem with line and column."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise SpecError([Problem(source, f"YAML syntax error at {where}: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(source, f"YAML error: {exc}")]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(source, "the spec must be a YAML mapping with keys pod, enclosures, nodes, ...")])
    return data


def spec_from_dict(data: dict) -> PodSpec:
    """Validate a parsed spec: structure (pydantic) then the pod-wide rules (deploy.validate)."""
    from deploy.validate import check_pod

    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, model=PodSpec)) from None
    problems = check_pod(spec)
    if problems:
        raise SpecError(problems)
    return spec


def load_spec_text(text: str, source: str = "spec") -> PodSpec:
    return spec_from_dict(parse_yaml(text, source))


def load_spec(path: str | Path) -> PodSpec:
    """Load and fully validate a spec file; raises SpecError (never a traceback for user mistakes)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SpecError([Problem(str(p), "file not found")]) from None
    except OSError as exc:
        raise SpecError([Problem(str(p), f"cannot read: {exc.strerror}")]) from None
    return load_spec_text(text, str(p))
