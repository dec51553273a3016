"""The compatibility table: every row backed by its evidence, a default pair proven to link, and ``kvpod
validate`` refusing a broken pair, warning on an unknown one and accepting the lab's stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy.cli import app
from deploy.compat import EVIDENCE_DIR, STATUSES, default_pair, evidence_name, lookup, pairs, working
from deploy.compat.__main__ import markdown
from deploy.compat.gather import CUDA_RUNTIME_PREFIX, summary
from deploy.lmcache_keys import DEFAULT_VERSION
from deploy.spec import VllmInstall
from tests.conftest import LAB, REFERENCE, ROOT, SHIPPED_SPECS

ROWS = sorted(pairs().values(), key=lambda p: (p.vllm, p.lmcache))


def evidence(row) -> dict:
    return json.loads((EVIDENCE_DIR / row.evidence).read_text())


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.vllm}+{r.lmcache}")
def test_every_row_agrees_with_its_evidence(row) -> None:
    assert row.status in STATUSES
    assert row.evidence == evidence_name(row.vllm, row.lmcache)
    ev = evidence(row)
    assert (ev["vllm"], ev["lmcache"]) == (row.vllm, row.lmcache)
    assert ev["verdict"] == row.status
    assert ev["resolution"].get("torch", "-") == row.torch
    cuda = next((v for k, v in ev["resolution"].items() if k.startswith(CUDA_RUNTIME_PREFIX)), "-")
    assert cuda == row.cuda
    assert row.reason.strip() and "\n" not in row.reason
    if row.status == "works":
        assert ev["extensions"] and all(e["verdict"] == "links" for e in ev["extensions"])
    else:
        assert ev.get("resolution_error") or any(e["verdict"] == "broken" for e in ev["extensions"])


def test_every_evidence_file_has_a_row() -> None:
    assert sorted(p.name for p in EVIDENCE_DIR.glob("*.json")) == sorted(r.evidence for r in ROWS)


def test_the_default_pair_is_a_working_row_whose_evidence_shows_nothing_missing() -> None:
    vllm, lmcache = default_pair()
    row = lookup(vllm, lmcache)
    assert row is not None and row.status == "works"
    ev = evidence(row)
    assert ev["resolution"]["vllm"] == vllm and ev["resolution"]["lmcache"] == lmcache
    assert any(e["symbols_checked"]["torch"] > 0 for e in ev["extensions"])  # the check had something to check
    for ext in ev["extensions"]:
        assert ext["missing_libraries"] == [] and ext["missing_symbols"]["count"] == 0
        assert "MISSING" not in ext["needed"].values()
    assert summary(ev) == "works: every extension links"


def test_the_default_pair_is_what_a_spec_installs_and_the_lmcache_keys_are_checked_against() -> None:
    vllm, lmcache = default_pair()
    assert VllmInstall.model_fields["vllm_version"].default == vllm
    assert lmcache == DEFAULT_VERSION


def test_the_broken_pair_of_the_shipped_lmcache_records_what_is_missing() -> None:
    row = lookup("0.11.0", "0.5.6")
    assert row is not None and row.status == "broken"
    (cuda_ops,) = [e for e in evidence(row)["extensions"] if "cuda_ops" in e["path"]]
    assert cuda_ops["missing_libraries"] == ["libcudart.so.13"]
    assert any(s.startswith("c10::") for s in cuda_ops["missing_symbols"]["first"])


# -- kvpod validate ------------------------------------------------------------------------------------------


def spec_file(tmp_path: Path, install: dict | None, lmcache: str | None = None) -> Path:
    data = yaml.safe_load(REFERENCE.read_text())
    data["vllm"].pop("executable", None)
    if install is None:
        data["vllm"].pop("install", None)
    else:
        data["vllm"]["install"] = install
    if lmcache is not None:
        data.setdefault("kvcache", {})["lmcache_version"] = lmcache
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def validate(path: Path):
    return CliRunner().invoke(app, ["validate", str(path)])


def test_validate_refuses_a_broken_pair_naming_the_field_and_the_working_pairs(tmp_path: Path) -> None:
    result = validate(spec_file(tmp_path, {"vllm_version": "0.11.0"}))
    assert result.exit_code == 1, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("vllm.install.vllm_version:"))
    assert "vLLM 0.11.0 with LMCache 0.5.6 (kvcache.lmcache_version) is known broken" in line
    assert "libcudart.so.13" in line
    for row in working():
        assert f"vllm {row.vllm} with lmcache {row.lmcache}" in line


def test_validate_refuses_a_broken_pair_whatever_the_wheelhouse_holds(tmp_path: Path) -> None:
    result = validate(spec_file(tmp_path, {"vllm_version": "0.11.0", "wheelhouse": str(tmp_path)}))
    assert result.exit_code == 1
    assert "vllm.install.vllm_version: vLLM 0.11.0 with LMCache 0.5.6" in result.stderr


def test_validate_warns_on_an_unknown_pair_and_accepts_it(tmp_path: Path) -> None:
    vllm, lmcache = default_pair()
    result = validate(spec_file(tmp_path, {"vllm_version": "0.10.2", "lmcache_version": lmcache}))
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    warning = next(x for x in result.stderr.splitlines() if x.startswith("warning:"))
    assert "vllm.install.vllm_version: vLLM 0.10.2 with LMCache" in warning
    assert "(vllm.install.lmcache_version) is not in the compatibility table" in warning
    assert f"vllm {vllm} with lmcache {lmcache}" in warning


def test_validate_accepts_the_default_pair_without_a_word(tmp_path: Path) -> None:
    result = validate(spec_file(tmp_path, {}))  # vllm_version defaults to the proven pair
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_validate_accepts_the_labs_stand_in_without_a_warning() -> None:
    result = validate(LAB)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_a_stand_in_version_without_a_wheelhouse_is_unknown(tmp_path: Path) -> None:
    result = validate(spec_file(tmp_path, {"vllm_version": "0.0.0"}))
    assert result.exit_code == 0
    assert "warning: vllm.install.vllm_version: vLLM 0.0.0" in result.stderr


def test_validate_says_nothing_of_pairs_when_kvpod_installs_nothing(tmp_path: Path) -> None:
    result = validate(spec_file(tmp_path, None))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_specs_pin_no_broken_or_unknown_pair(spec: Path) -> None:
    result = validate(spec)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_the_readme_shows_the_table_as_it_is() -> None:
    assert markdown() in (ROOT / "README.md").read_text(), "regenerate the README's table: python3 -m deploy.compat"
