"""Secrets: told apart at load, carried redacted through spec and plan, revealed only in the host's files (0640
root:<vLLM group>), and never printed in a plan, diff, report or log."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from pyinfra.api.deploy import add_deploy
from typer.testing import CliRunner

from benchmarks.kvpod_sim import connected_node
from benchmarks.pyinfra_fake import changed_commands, deploy_plan, deploy_run, fake_state
from deploy.cli import app
from deploy.engine import HostResult
from deploy.engine.describe import describe_host
from deploy.engine.log import pyinfra_log
from deploy.errors import SpecError
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.secrets import Secret, display, is_secret_key, redact_assignments
from deploy.shipped import lab_spec
from roles.lmcache import lmcache

PASSWORD = "hunter2-Zq9"
URL = f"redis://kvuser:{PASSWORD}@cache.example:6379"
TOKEN = "hf_SeCrEtToKeN0123456789"


def lab_spec_with(tmp_path: Path, extra: dict) -> Path:
    data = yaml.safe_load(Path(lab_spec()).read_text())
    data.setdefault("kvcache", {})["lmcache_extra"] = extra
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def secret_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "remote-url.secret"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


# -- which values are secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["password", "hf_token", "api_key", "s3_secret", "aws_credentials", "db_passwd"])
def test_credential_key_names_are_secrets(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["remote_serde", "min_retrieve_tokens", "enable_scheduler_bypass_lookup"])
def test_ordinary_settings_are_not(name: str) -> None:
    assert not is_secret_key(name)


def test_a_url_with_a_password_is_a_secret_and_the_plan_never_shows_it(tmp_path: Path) -> None:
    spec = load_spec(lab_spec_with(tmp_path, {"remote_url": URL}))
    value = spec.kvcache.lmcache_extra["remote_url"]
    assert isinstance(value, Secret) and value.reveal() == URL
    assert PASSWORD not in repr(spec) and PASSWORD not in str(value)
    plan = build_plan(spec)
    dumped = plan.to_json()
    assert PASSWORD not in dumped
    for engine in json.loads(dumped)["nodes"][0]["engines"]:
        assert engine["lmcache"]["extra"]["remote_url"] == display(URL)


def test_kvpod_plan_never_prints_the_secret(tmp_path: Path) -> None:
    spec = lab_spec_with(tmp_path, {"remote_url": URL})
    for args in (["plan", str(spec), "--json"], ["plan", str(spec)], ["validate", str(spec)]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output


def test_a_url_without_a_password_stays_plain(tmp_path: Path) -> None:
    spec = load_spec(lab_spec_with(tmp_path, {"remote_url": "lm://cache.example:65432"}))
    assert spec.kvcache.lmcache_extra["remote_url"] == "lm://cache.example:65432"


# -- from a file on the operator's machine ---------------------------------------------------------------------


def test_a_secret_from_a_file_is_read_at_load(tmp_path: Path) -> None:
    path = secret_file(tmp_path, URL)
    spec = load_spec(lab_spec_with(tmp_path, {"remote_url": {"from_file": path.name}}))  # relative to the spec
    value = spec.kvcache.lmcache_extra["remote_url"]
    assert isinstance(value, Secret) and value.reveal() == URL
    plan = build_plan(spec)
    assert plan.nodes[0].lmcache.config_mode == "env", "a file reference is not a nested value"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_secret_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, URL, mode)
    spec = lab_spec_with(tmp_path, {"remote_url": {"from_file": str(path)}})
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert str(err.value.problems[0]).startswith("kvcache.lmcache_extra.remote_url.from_file: ")
    assert f"has mode {mode:04o}" in str(err.value)
    result = cli("validate", str(spec))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert PASSWORD not in result.output


def test_a_secret_file_with_a_line_break_inside_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"{URL}\nExecStartPre=+/bin/sh")
    with pytest.raises(SpecError) as err:
        load_spec(lab_spec_with(tmp_path, {"remote_url": {"from_file": str(path)}}))
    message = str(err.value)
    assert message.startswith("kvcache.lmcache_extra.remote_url.from_file: ") and "one line" in message
    assert PASSWORD not in message


def test_a_missing_or_linked_secret_file_is_refused(tmp_path: Path) -> None:
    real = secret_file(tmp_path, URL)
    link = tmp_path / "link.secret"
    link.symlink_to(real)
    for ref, message in ((str(tmp_path / "absent"), "no such file"), (str(link), "not a regular file")):
        with pytest.raises(SpecError, match=message):
            load_spec(lab_spec_with(tmp_path, {"remote_url": {"from_file": ref}}))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file another owner")
def test_a_secret_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path, URL)
    os.chown(path, 65534, 65534)
    with pytest.raises(SpecError, match="not by the user running kvpod"):
        load_spec(lab_spec_with(tmp_path, {"remote_url": {"from_file": str(path)}}))


# -- on the host: revealed, 0640 root:<vLLM group> -------------------------------------------------------------


@pytest.fixture
def secret_plan(tmp_path: Path):
    return build_plan(load_spec(lab_spec_with(tmp_path, {"remote_url": URL}))).nodes[0]


@pytest.fixture
def secret_yaml_plan(tmp_path: Path):
    extra = {"remote_url": {"from_file": str(secret_file(tmp_path, URL))}, "extra_config": {"use_odirect": True}}
    return build_plan(load_spec(lab_spec_with(tmp_path, extra))).nodes[0]


@pytest.mark.parametrize("fixture", ["secret_plan", "secret_yaml_plan"])
def test_the_host_file_holds_the_secret_0640_root_vllm_and_converges(fixture: str, request) -> None:
    plan = request.getfixturevalue(fixture)
    remote = connected_node(plan)
    state, host = deploy_run(lmcache, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts
    written = plan.lmcache.config_file if plan.lmcache.config_mode == "yaml" else plan.lmcache.env_file
    assert URL in remote.uploads[written], "the rendered host file holds the secret itself"
    for path in {plan.lmcache.env_file, written}:
        f = remote.files[path]
        assert (f["mode"], f["user"], f["group"]) == (640, "root", "vllm"), path
    assert changed_commands(deploy_plan(lmcache, remote, {"kvpod_node": plan})) == [], "converged: no change"


def test_a_file_at_0644_is_brought_to_0640_without_a_new_upload(secret_plan) -> None:
    remote = connected_node(secret_plan)
    deploy_run(lmcache, remote, {"kvpod_node": secret_plan})
    remote.files[secret_plan.lmcache.env_file].update(mode=644, group="root")
    commands = changed_commands(deploy_plan(lmcache, remote, {"kvpod_node": secret_plan}))
    assert not [c for c in commands if isinstance(c, list) and c[0] == "upload"]
    assert any("chmod 640" in c for c in commands if isinstance(c, str))


# -- never in a diff, a report or a log ------------------------------------------------------------------------


def test_a_diff_of_a_secret_bearing_file_shows_it_redacted(secret_plan) -> None:
    """The old file on the host holds an earlier password kvpod no longer knows; the new one the current."""
    remote = connected_node(secret_plan)
    state, host = fake_state(remote, {"kvpod_node": secret_plan}, check_for_changes=True)
    old = "LMCACHE_REMOTE_URL=redis://kvuser:0ld-Passw0rd@cache.example:6379\nLMCACHE_CHUNK_SIZE=128\n"

    def get_file(path, buffer, **_):
        buffer.write(old.encode())
        return True

    host.get_file = get_file
    add_deploy(state, lmcache, host=host)
    result = HostResult(host.name, "node")
    describe_host(state, host, result)
    diff = result.diffs[secret_plan.lmcache.env_file]
    assert "LMCACHE_REMOTE_URL=<secret:" in diff and "-LMCACHE_CHUNK_SIZE=128" in diff
    report = json.dumps(result.as_json())
    for text in (diff, report):
        assert PASSWORD not in text and "0ld-Passw0rd" not in text


def test_the_report_redacts_a_secret_in_stderr(secret_plan) -> None:
    result = HostResult("node1", "node", status="failed", stderr=[f"cannot reach {URL}"], note=f"at {URL}")
    text = json.dumps(result.as_json())
    assert PASSWORD not in text and display(URL) in text


def test_the_run_log_redacts_secrets(secret_plan, tmp_path: Path) -> None:
    with pyinfra_log(tmp_path):
        logging.getLogger("pyinfra").warning("uploading %s to %s", URL, "node1")
    log = (tmp_path / "pyinfra.log").read_text()
    assert PASSWORD not in log and display(URL) in log


def test_assignment_lines_are_redacted_by_name_and_form() -> None:
    text = f"+HF_TOKEN={TOKEN}\n remote_url: {URL}\n-PYTHONHASHSEED=0\n"
    out = redact_assignments(text)
    assert TOKEN not in out and PASSWORD not in out and "-PYTHONHASHSEED=0" in out


def test_verify_compares_a_secret_by_its_digest_and_never_prints_what_it_found() -> None:
    """The verify suite gets the plan as JSON (a secret as its digest): the host's value is compared by digest."""
    import sys

    from deploy.shipped import verify_suite_dir

    sys.path.insert(0, str(verify_suite_dir()))
    import verify_expect as ve

    assert ve.same_value(display(URL), URL)
    assert not ve.same_value(display(URL), URL.replace(PASSWORD, "other"))
    with pytest.raises(AssertionError) as failed:
        ve.fail("LMCACHE_REMOTE_URL in /etc/kvpod/lmcache.env", display(URL), "redis://kvuser:wrong-Pass1@x")
    assert "wrong-Pass1" not in str(failed.value) and display(URL) in str(failed.value)
