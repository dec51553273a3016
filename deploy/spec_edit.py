"""Minimal, comment-preserving edits of a spec file (ruamel.yaml round trip), so the file stays the truth."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def set_node_namespaces(text: str, assignments: dict[str, tuple[str, int]]) -> str:
    """Return ``text`` with each named node's ``namespace`` set to ``{enclosure, drive}``.

    Explicit node lists get ``namespace`` on the node's entry; generated nodes get it under
    ``nodes.overrides.<name>``. Everything else (comments, order, layout) is left as it was.
    """
    y = _yaml()
    doc = y.load(text)
    nodes = doc["nodes"]
    for name, (enclosure, drive) in assignments.items():
        ns = CommentedMap([("enclosure", enclosure), ("drive", drive)])
        ns.fa.set_flow_style()
        if isinstance(nodes, list):
            entry = next((n for n in nodes if n.get("name") == name), None)
            if entry is None:
                raise KeyError(name)
            entry["namespace"] = ns
        else:
            overrides = nodes.get("overrides")
            if overrides is None:
                overrides = CommentedMap()
                nodes["overrides"] = overrides
            entry = overrides.get(name)
            if entry is None:
                entry = CommentedMap()
                overrides[name] = entry
            entry["namespace"] = ns
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a crash leaves either the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
