"""`kvpod map`: writes SVG, PNG or DOT by the suffix, colours from a report, and fails clearly (exit 2, no
traceback) when Graphviz's dot is missing."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.podmap import FILL
from tests.conftest import LAB, REFERENCE
from tests.unit.test_podmap import JUNIT, up_report

runner = CliRunner()
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz; CI has it)"
)


@needs_dot
def test_writes_svg_of_the_reference_pod_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["map"])
    assert result.exit_code == 0, result.output
    assert "24 nodes, 24 drives, 1 switch" in result.stdout
    svg = (tmp_path / "pod-map.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert all(f">gpu{i:02d}<" in svg for i in range(1, 25))


@needs_dot
def test_writes_png(tmp_path):
    out = tmp_path / "lab.png"
    result = runner.invoke(app, ["map", str(LAB), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dot_output_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on the PATH
    out = tmp_path / "pod.dot"
    result = runner.invoke(app, ["map", str(REFERENCE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("// kvpod map of pod data24-pod")
    assert "1 engine :8000" in out.read_text()


def test_the_map_shows_each_nodes_engines(tmp_path):
    out = tmp_path / "lab.dot"
    result = runner.invoke(app, ["map", str(LAB), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("2 engines :8000, :8001") == 2  # gpus: 8 at TP 4, on each lab node


def test_missing_dot_is_a_clear_error_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["map", str(LAB), "-o", str(tmp_path / "lab.svg")])
    assert result.exit_code == 2
    assert "dot is not installed" in result.stderr and "apt-get install graphviz" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert not (tmp_path / "lab.svg").exists()


def test_unknown_picture_format_exits_1(tmp_path):
    result = runner.invoke(app, ["map", str(LAB), "-o", str(tmp_path / "lab.pdf")])
    assert result.exit_code == 1
    assert "use .svg, .png" in result.stderr


@pytest.mark.parametrize("kind", ["up", "verify"])
def test_report_colours_the_map(tmp_path, kind):
    plan = build_plan(load_spec(LAB))
    report = tmp_path / ("up.json" if kind == "up" else "verify.xml")
    report.write_text(up_report(plan, {"node2": "failed"}) if kind == "up" else JUNIT)
    out = tmp_path / "lab.dot"
    result = runner.invoke(app, ["map", str(LAB), "-o", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    source = out.read_text()
    assert FILL["failed"] in source and FILL["ok"] in source
    assert f"status from kvpod {kind}" in source


def test_unreadable_report_exits_1(tmp_path):
    missing = runner.invoke(app, ["map", str(LAB), "-o", str(tmp_path / "m.dot"), "--report", str(tmp_path / "no")])
    assert missing.exit_code == 1 and "--report" in missing.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    result = runner.invoke(app, ["map", str(LAB), "-o", str(tmp_path / "m.dot"), "--report", str(junk)])
    assert result.exit_code == 1 and "neither" in result.stderr


def test_report_naming_other_hosts_warns(tmp_path):
    plan = build_plan(load_spec(LAB))
    report = tmp_path / "up.json"
    report.write_text(up_report(plan, {}, extra=("gpu77",)))
    result = runner.invoke(app, ["map", str(LAB), "-o", str(tmp_path / "m.dot"), "--report", str(report)])
    assert result.exit_code == 0
    assert "gpu77" in result.stderr
