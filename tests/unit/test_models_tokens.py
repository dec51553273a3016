"""Models and tokens: ``vllm.model`` a hub id or a local path; the Hugging Face token read from a file on the
operator's machine, written to the nodes 0640 root:<vLLM group> in its own env file and never shown in a plan,
diff, report or log; the weights cache (``HF_HOME``) and offline mode, each with its rules."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
import yaml
from pyinfra.api.deploy import add_deploy
from typer.testing import CliRunner

from benchmarks.kvpod_sim import connected_node, fresh_node
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run, fake_state
from deploy.cli import app
from deploy.engine import HostResult
from deploy.engine.describe import describe_host
from deploy.engine.log import pyinfra_log
from deploy.lab.paths import FAKE_TOKEN_PREFIX, ensure_fake_token
from deploy.loader import load_spec
from deploy.names import VLLM_HF_ENV_FILE
from deploy.plan import NodePlan, build_plan
from deploy.secrets import display
from roles.node import node
from roles.vllm import vllm
from tests.conftest import LAB

TOKEN = "hf_kvpodTestTokenAbCdEf0123456789"
UNIT = "/etc/systemd/system/kvpod-vllm@0.service"


def token_file(tmp_path: Path, text: str = TOKEN, mode: int = 0o600, name: str = "hf-token") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def write_spec(tmp_path: Path, **vllm) -> Path:
    """The lab spec with these ``vllm`` settings (None removes one)."""
    data = yaml.safe_load(LAB.read_text())
    for key, value in vllm.items():
        if value is None:
            data["vllm"].pop(key, None)
        else:
            data["vllm"][key] = value
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def validate(spec: Path):
    return CliRunner().invoke(app, ["validate", str(spec)])


def refused(spec: Path, field: str, *words: str) -> str:
    """``kvpod validate`` exits 1 with a line for ``field`` holding ``words``; that line."""
    result = validate(spec)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if f"{field}: " in line]
    assert lines, result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def node_plan(spec: Path) -> NodePlan:
    return build_plan(load_spec(spec)).nodes[0]


# -- vllm.model ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["meta-llama/Llama-3.1-8B-Instruct", "gpt2", "Org_1/name.v2-final", "/srv/models/Llama-3.1-8B"]
)
def test_a_hub_id_or_an_absolute_path_is_a_model(tmp_path: Path, model: str) -> None:
    assert validate(write_spec(tmp_path, model=model)).exit_code == 0


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("org/na..me", ("'..' or '--'",)),
        ("org/-name", ("starts or ends with '.' or '-'",)),
        ("org/name-", ("starts or ends with '.' or '-'",)),
        ("org/my model", ("character ' '",)),
        ("org/name.git", ("'.git'",)),
        ("org/", ("an empty part",)),
        ("a/b/c", ("has 2 '/'",)),
        ("org/" + "n" * 97, ("97 characters in one part (at most 96)",)),
        ("org/nämé", ("character 'ä'",)),
        ("models/../etc", ("has 2 '/'",)),
        ("/srv/models/../etc", ("'..' component",)),
        ("/srv/models/", ("trailing '/'",)),
    ],
)
def test_a_model_that_is_neither_is_refused_naming_the_field(tmp_path: Path, model: str, words: tuple) -> None:
    refused(write_spec(tmp_path, model=model), "vllm.model", *words)


def test_a_local_model_on_the_kv_cache_mount_is_refused(tmp_path: Path) -> None:
    refused(write_spec(tmp_path, model="/mnt/kvcache/llama"), "vllm.model", "KV-cache mount /mnt/kvcache")


# -- the token file ------------------------------------------------------------------------------------------


def test_the_token_is_read_from_its_file_relative_to_the_spec(tmp_path: Path) -> None:
    token_file(tmp_path)
    plan = node_plan(write_spec(tmp_path, hf_token_file="hf-token"))
    assert plan.vllm.hf_env["HF_TOKEN"].reveal() == TOKEN
    assert plan.vllm.hf_env_file == VLLM_HF_ENV_FILE
    dumped = json.loads(build_plan(load_spec(tmp_path / "pod.yaml")).to_json())
    assert dumped["nodes"][0]["vllm"]["hf_env"] == {"HF_TOKEN": display(TOKEN)}
    assert TOKEN not in json.dumps(dumped)


@pytest.mark.parametrize("key", ["hf_token", "token"])
def test_an_inline_token_is_refused_pointing_at_the_file_field(tmp_path: Path, key: str) -> None:
    spec = write_spec(tmp_path, **{key: TOKEN})
    line = refused(spec, f"vllm.{key}", "did you mean hf_token_file", "chmod 600")
    result = validate(spec)
    assert TOKEN not in result.output, line


@pytest.mark.parametrize(("mode", "words"), [(0o644, ("has mode 0644", "0600 or 0400")), (0o640, ("has mode 0640",))])
def test_a_token_file_others_may_read_is_refused(tmp_path: Path, mode: int, words: tuple) -> None:
    spec = write_spec(tmp_path, hf_token_file=str(token_file(tmp_path, mode=mode)))
    refused(spec, "vllm.hf_token_file", *words)
    assert TOKEN not in validate(spec).output


def test_a_missing_linked_or_multi_line_token_file_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(token_file(tmp_path))
    two_lines = token_file(tmp_path, f"{TOKEN}\nsecond", name="two")
    for path, words in (
        (tmp_path / "absent", ("no such file",)),
        (link, ("not a regular file",)),
        (two_lines, ("one line of printable text",)),
    ):
        spec = write_spec(tmp_path, hf_token_file=str(path))
        refused(spec, "vllm.hf_token_file", *words)
        assert TOKEN not in validate(spec).output


def test_without_the_loader_a_token_path_is_no_token(tmp_path: Path) -> None:
    from deploy.spec import Vllm

    with pytest.raises(ValueError, match="the file was not read"):
        Vllm(hf_token_file=str(token_file(tmp_path)))


def test_plan_and_validate_never_print_the_token(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, hf_token_file=str(token_file(tmp_path)))
    for args in (["plan", str(spec)], ["plan", str(spec), "--json"], ["validate", str(spec)], ["size", str(spec)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert TOKEN not in result.output, args


# -- the weights cache and offline mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"weights_cache_dir": "/mnt/kvcache/hf"}, "vllm.weights_cache_dir", ("overlaps the KV-cache mount",)),
        ({"weights_cache_dir": "/usr/share/hf"}, "vllm.weights_cache_dir", ("system directory /usr", "/srv/hf")),
        ({"weights_cache_dir": "/var/cache/hf"}, "vllm.weights_cache_dir", ("system directory /var/cache",)),
        ({"weights_cache_dir": "/srv"}, "vllm.weights_cache_dir", ("holds other directories",)),
        ({"weights_cache_dir": "srv/hf"}, "vllm.weights_cache_dir", ("not an absolute path",)),
        ({"offline": True}, "vllm.offline", ("weights_cache_dir", "models--meta-llama--Llama-3.1-8B-Instruct")),
    ],
)
def test_cache_and_offline_rules(tmp_path: Path, spec: dict, field: str, words: tuple) -> None:
    refused(write_spec(tmp_path, **spec), field, *words)


def test_a_cache_holding_the_kv_cache_mount_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(LAB.read_text())
    data["kvcache"]["path"] = "/data/kv/cache"
    data["vllm"]["weights_cache_dir"] = "/data/kv"
    spec = tmp_path / "pod.yaml"
    spec.write_text(yaml.safe_dump(data))
    refused(spec, "vllm.weights_cache_dir", "/data/kv overlaps the KV-cache mount /data/kv/cache")


@pytest.mark.parametrize(
    "settings",
    [
        {"offline": True, "weights_cache_dir": "/srv/hf"},
        {"offline": True, "model": "/srv/models/Llama-3.1-8B-Instruct"},
        {"weights_cache_dir": "/var/lib/vllm/hf"},
    ],
)
def test_offline_with_staged_weights_is_valid(tmp_path: Path, settings: dict) -> None:
    assert validate(write_spec(tmp_path, **settings)).exit_code == 0


def test_the_hf_environment_of_the_plan(tmp_path: Path) -> None:
    v = node_plan(write_spec(tmp_path, offline=True, weights_cache_dir="/srv/hf", hf_token_file=None)).vllm
    assert v.hf_env == {"HF_HOME": "/srv/hf", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    assert (v.offline, v.weights_cache_dir, v.hf_env_file) == (True, "/srv/hf", VLLM_HF_ENV_FILE)
    bare = node_plan(write_spec(tmp_path, hf_token_file=None)).vllm
    assert (bare.hf_env, bare.hf_env_file) == ({}, None)


# -- on the node ---------------------------------------------------------------------------------------------


@pytest.fixture
def token_plan(tmp_path: Path) -> NodePlan:
    spec = write_spec(tmp_path, hf_token_file=str(token_file(tmp_path)), weights_cache_dir="/srv/hf", offline=True)
    return node_plan(spec)


def converged(plan: NodePlan) -> FakeRemote:
    remote = fresh_node(plan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote


def test_the_env_file_holds_the_token_0640_root_vllm_and_the_unit_loads_it(token_plan: NodePlan) -> None:
    remote = connected_node(token_plan)
    state, host = deploy_run(vllm, remote, {"kvpod_node": token_plan})
    assert host not in state.failed_hosts
    env = remote.uploads[VLLM_HF_ENV_FILE]
    assert f"HF_TOKEN={TOKEN}\n" in env and "HF_HOME=/srv/hf\n" in env
    assert "HF_HUB_OFFLINE=1\n" in env and "TRANSFORMERS_OFFLINE=1\n" in env
    f = remote.files[VLLM_HF_ENV_FILE]
    assert (f["mode"], f["user"], f["group"]) == (640, "root", "vllm")
    cache = remote.dirs["/srv/hf"]
    assert (cache.get("user"), cache.get("group"), cache.get("mode")) == ("vllm", "vllm", 750)
    unit = remote.uploads[UNIT]
    assert f"EnvironmentFile=/etc/kvpod/lmcache@0.env\nEnvironmentFile={VLLM_HF_ENV_FILE}\n" in unit
    assert changed_commands(deploy_plan(vllm, remote, {"kvpod_node": token_plan})) == [], "converged"


def test_a_new_token_restarts_vllm_and_a_removed_one_removes_the_file(token_plan: NodePlan, tmp_path: Path) -> None:
    remote = converged(token_plan)
    rotated = node_plan(
        write_spec(
            tmp_path,
            hf_token_file=str(token_file(tmp_path, TOKEN + "X", name="rotated")),
            weights_cache_dir="/srv/hf",
            offline=True,
        )
    )
    planned = changed_commands(deploy_plan(node, remote, {"kvpod_node": rotated}))
    assert [c[2] for c in planned if isinstance(c, list) and c[0] == "upload"] == [VLLM_HF_ENV_FILE]
    assert "systemctl restart kvpod-vllm@0.service" in planned and "systemctl daemon-reload" not in planned
    without = node_plan(write_spec(tmp_path, hf_token_file=None))
    deploy_run(node, remote, {"kvpod_node": without})
    assert VLLM_HF_ENV_FILE not in remote.files
    assert "EnvironmentFile=/etc/kvpod/lmcache@0.env\nExecStartPre" in remote.files[UNIT]["content"]
    assert remote.units["kvpod-vllm@0.service"]["restarts"] == 1
    assert changed_commands(deploy_plan(node, remote, {"kvpod_node": without})) == [], "converged"


# -- never in a diff, a report or a log ------------------------------------------------------------------------


def test_a_diff_of_the_env_file_redacts_the_old_and_new_token(token_plan: NodePlan) -> None:
    """The host's file holds an earlier token kvpod no longer knows; the new one is the plan's."""
    remote = connected_node(token_plan)
    state, host = fake_state(remote, {"kvpod_node": token_plan}, check_for_changes=True)
    old = "HF_TOKEN=hf_0ldT0kenNobodyKnowsAnyMore\nHF_HOME=/srv/old\n"

    def get_file(path, buffer, **_):
        buffer.write(old.encode())
        return True

    host.get_file = get_file
    remote.files[VLLM_HF_ENV_FILE] = {"content": old, "user": "root", "group": "vllm", "mode": 640}
    add_deploy(state, vllm, host=host)
    result = HostResult(host.name, "node")
    describe_host(state, host, result)
    diff = result.diffs[VLLM_HF_ENV_FILE]
    assert "-HF_HOME=/srv/old" in diff and "+HF_HOME=/srv/hf" in diff
    assert f"+HF_TOKEN={display(TOKEN)}" in diff and "-HF_TOKEN=<secret:" in diff
    for text in (diff, json.dumps(result.as_json()), "\n".join(result.changes)):
        assert TOKEN not in text and "hf_0ldT0kenNobodyKnowsAnyMore" not in text


def test_the_report_and_the_run_log_redact_the_token(token_plan: NodePlan, tmp_path: Path) -> None:
    result = HostResult("node1", "node", status="failed", stderr=[f"401 for token {TOKEN}"], note=TOKEN)
    assert TOKEN not in json.dumps(result.as_json()) and display(TOKEN) in json.dumps(result.as_json())
    with pyinfra_log(tmp_path):
        logging.getLogger("pyinfra").warning("HF_TOKEN=%s on %s", TOKEN, "node1")
    log = (tmp_path / "pyinfra.log").read_text()
    assert TOKEN not in log and display(TOKEN) in log


# -- the lab's fake token ------------------------------------------------------------------------------------


def test_the_lab_token_is_made_0600_once_and_clearly_fake(tmp_path: Path) -> None:
    path = ensure_fake_token(tmp_path / "lab" / "hf-token")
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and text.startswith(FAKE_TOKEN_PREFIX)
    assert ensure_fake_token(path).read_text() == text, "an existing token is kept"
    assert yaml.safe_load(LAB.read_text())["vllm"]["hf_token_file"] == "/var/tmp/kvpod-lab/hf-token"


# -- verify's rules ------------------------------------------------------------------------------------------


def test_verify_takes_0640_or_stricter_root_and_the_vllm_group_for_the_token_file() -> None:
    import sys

    from deploy.shipped import verify_suite_dir

    sys.path.insert(0, str(verify_suite_dir()))
    import verify_expect as ve

    for mode in ("640", "600", "440", "400"):
        assert ve.token_file_mode_ok((mode, "root", "vllm"), "vllm"), mode
    for found in (("644", "root", "vllm"), ("660", "root", "vllm"), ("640", "vllm", "vllm"), ("640", "root", "root")):
        assert not ve.token_file_mode_ok(found, "vllm"), found
    assert not ve.token_file_mode_ok(None, "vllm")
    assert ve.hub_cache_folder("meta-llama/Llama-3.1-8B-Instruct") == "models--meta-llama--Llama-3.1-8B-Instruct"


def test_verify_looks_for_the_offline_models_config(tmp_path: Path) -> None:
    import sys

    from deploy.shipped import verify_suite_dir

    sys.path.insert(0, str(verify_suite_dir()))
    import verify_expect as ve

    local = node_plan(write_spec(tmp_path, offline=True, model="/srv/models/Llama-3.1-8B"))
    hub = node_plan(write_spec(tmp_path, offline=True, weights_cache_dir="/srv/hf"))
    online = node_plan(write_spec(tmp_path, weights_cache_dir="/srv/hf"))
    assert ve.model_config_pattern(local) == "/srv/models/Llama-3.1-8B/config.json"
    assert (
        ve.model_config_pattern(hub) == "/srv/hf/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/*/config.json"
    )
    assert ve.model_config_pattern(online) is None and ve.offline_models(online) == []
    assert ve.node_reads(online, build_plan(load_spec(tmp_path / "pod.yaml"))).model_files == ()
    assert ve.weights_cache_dirs(online) == ["/srv/hf"] and ve.hf_env_files(online) == [VLLM_HF_ENV_FILE]
