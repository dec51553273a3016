"""Read a pod spec file: YAML (with line/column on syntax errors) → validated :class:`PodSpec`."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import yaml
from pydantic import ValidationError

from deploy.errors import Problem, SpecError
from deploy.pydantic_errors import problems_from_validation
from deploy.secrets import FROM_FILE, SecretFile, SecretFileError, is_file_reference, read_secret_file
from deploy.spec import PodSpec
from deploy.spec_types import check_local_path, control_problem

# A pod spec nests about eight levels and holds a few thousand values; these bounds are far above any spec
# and far below what would exhaust the interpreter's stack or the machine's memory.
MAX_DEPTH = 50
MAX_VALUES = 100_000
MAX_SCALAR_CHARS = 10_000_000


class _SpecLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (YAML silently keeps the last one), nesting deeper
    than MAX_DEPTH, and scalars that cannot be read (``!!int x``, an integer of 5000 digits, month 13)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"values nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            tag = node.tag.rsplit(":", 1)[-1]
            value = node.value if isinstance(node.value, str) else ""
            shown = repr(value) if len(value) <= 40 else f"{value[:30]!r}... ({len(value)} characters)"
            why = f": {str(exc)[:120]}" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {shown} as {tag}{why}", node.start_mark
            ) from None


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue  # "<<: *defaults": explicit keys override merged ones, as YAML defines
        key = loader.construct_object(key_node, deep=deep)
        mark = key_node.start_mark
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, f"a {type(key).__name__} cannot be a mapping key", mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
MERGE_TAG = "tag:yaml.org,2002:merge"


def _expanded_size(root: yaml.Node) -> tuple[int, int, int]:
    """How many values and scalar characters the document holds, and how deep it nests, once every alias
    is expanded.

    An alias reuses its anchor's node, so a node reached twice counts twice; each node is measured once
    (memoized), so a billion-laughs document is measured in the time it takes to read it. Raises
    ComposerError when an alias sits inside the value it refers to (a cycle).
    """
    size: dict[int, tuple[int, int, int]] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key] = (1, len(node.value), 1)
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            open_nodes.discard(key)
            values = 1 + sum(size[id(c)][0] for c in children)
            chars = sum(size[id(c)][1] for c in children)
            depth = 1 + max((size[id(c)][2] for c in children), default=0)
            size[key] = (values, chars, depth)
            continue
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a value that contains it (a cycle)", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to a value that contains it (a cycle)", child.start_mark
                )
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


def _check_expansion(node: yaml.Node, source: str) -> None:
    values, chars, depth = _expanded_size(node)
    if values > MAX_VALUES:
        what = (
            f"holds {values} values once its aliases are expanded (at most {MAX_VALUES}; a pod spec has a few thousand)"
        )
    elif chars > MAX_SCALAR_CHARS:
        what = f"holds {chars} characters of text once its aliases are expanded (at most {MAX_SCALAR_CHARS})"
    elif depth > MAX_DEPTH:
        what = f"nests values {depth} levels deep once its aliases are expanded (at most {MAX_DEPTH})"
    else:
        return
    raise SpecError([Problem(source, f"the document {what}")])


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def parse_yaml(text: str, source: str = "spec") -> dict:
    """Parse YAML text into a mapping; syntax errors become a Problem with line and column.

    A document whose aliases expand it beyond MAX_VALUES values, MAX_SCALAR_CHARS characters (a "billion
    laughs") or MAX_DEPTH levels is refused before it is built.
    """
    loader = None
    try:
        loader = _SpecLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "unreadable"
        raise SpecError([Problem(source, f"YAML syntax error at {where}: {what}")]) from None
    except yaml.reader.ReaderError as exc:
        where = _where(text, exc.position)
        raise SpecError(
            [Problem(source, f"YAML syntax error at {where}: character #x{exc.character:04x}: {exc.reason}")]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(source, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise SpecError([Problem(source, "the spec must be a YAML mapping with keys pod, enclosures, nodes, ...")])
    return data


# Where a spec may name a secret file (``{from_file: PATH}``): the mappings whose values may be secrets.
SECRET_FIELDS = (("kvcache", "lmcache_extra"),)
# Fields that are the path of a secret file themselves, and the keys an inline secret would be given under.
SECRET_FILE_FIELDS = (("vllm", "hf_token_file"),)
INLINE_SECRET_KEYS = {("vllm", "hf_token"): "hf_token_file", ("vllm", "token"): "hf_token_file"}


def read_secret_files(data: dict, base: Path | None = None) -> dict:
    """``data`` with each ``{from_file: PATH}`` value of :data:`SECRET_FIELDS` replaced by the secret the file
    holds (a path relative to ``base``, the spec's directory); a file that cannot be used is a field error."""
    problems: list[Problem] = []
    for section, field in SECRET_FIELDS:
        values = data.get(section, {}).get(field) if isinstance(data.get(section), dict) else None
        if not isinstance(values, dict) or not any(is_file_reference(v) for v in values.values()):
            continue
        resolved = dict(values)
        for key, value in values.items():
            if is_file_reference(value):
                try:
                    resolved[key] = read_secret_file(value[FROM_FILE], base)
                except SecretFileError as exc:
                    problems.append(Problem(f"{section}.{field}.{key}.{FROM_FILE}", str(exc)))
        data = {**data, section: {**data[section], field: resolved}}
    data = _read_secret_file_fields(data, base, problems)
    if problems:
        raise SpecError(problems)
    return data


def _read_secret_file_fields(data: dict, base: Path | None, problems: list[Problem]) -> dict:
    """``data`` with each path of :data:`SECRET_FILE_FIELDS` handed over as a :class:`SecretFile` (the path and the
    secret read from it); an inline secret (:data:`INLINE_SECRET_KEYS`) is a problem, its value never shown."""
    for (section, key), field in INLINE_SECRET_KEYS.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            problems.append(
                Problem(
                    f"{section}.{key}",
                    f"a secret is never written in the spec (every copy of the spec would hold it): did you mean "
                    f"{field}? Put the token in a file only you can read (chmod 600 FILE) and give its path as "
                    f"{section}.{field}",
                )
            )
    for section, field in SECRET_FILE_FIELDS:
        values = data.get(section)
        path = values.get(field) if isinstance(values, dict) else None
        if not isinstance(path, str) or isinstance(path, SecretFile):
            continue
        try:
            check_local_path(path)
        except ValueError:
            continue  # the field's own type reports it
        if control_problem(path):
            continue
        try:
            secret = read_secret_file(path, base)
        except SecretFileError as exc:
            problems.append(Problem(f"{section}.{field}", str(exc)))
            continue
        data = {**data, section: {**values, field: SecretFile(path, secret)}}
    return data


def spec_from_dict(data: dict, base: Path | None = None) -> PodSpec:
    """Validate a parsed spec: secret files read, structure (pydantic), then the pod-wide rules (deploy.validate)."""
    from deploy.validate import check_pod

    data = read_secret_files(data, base)
    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, model=PodSpec)) from None
    problems = check_pod(spec)
    if problems:
        raise SpecError(problems)
    return spec


def load_spec_text(text: str, source: str = "spec", base: Path | None = None) -> PodSpec:
    return spec_from_dict(parse_yaml(text, source), base)


def load_spec(path: str | Path) -> PodSpec:
    """Load and fully validate a spec file; raises SpecError (never a traceback for user mistakes)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise SpecError([Problem(str(p), f"not UTF-8 text: byte #x{byte:02x} at offset {exc.start}")]) from None
    except FileNotFoundError:
        raise SpecError([Problem(str(p), "file not found")]) from None
    except OSError as exc:
        raise SpecError([Problem(str(p), f"cannot read: {exc.strerror}")]) from None
    return load_spec_text(text, str(p), p.resolve().parent)
