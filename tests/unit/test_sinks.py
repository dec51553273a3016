"""Every file kvpod renders, read back by the program that receives it (see :mod:`tests.sinks`).

- The shipped specs: every unit passes ``systemd-analyze verify``, every script ``bash -n``, ``dash -n`` and
  ``shellcheck -s sh``, the env file reads back the plan's values, the ssh_config gives ``ssh -G`` exactly the
  plan's options; no template emits a value that no encoder produced.
- The encoders alone, with hostile text: ``sh`` gets the word back, systemd's rules the argv, ``ssh -G`` the
  option, systemd's EnvironmentFile rules the value; what a destination cannot carry is refused.
- Hostile values in every host-facing string field of the spec (hypothesis, derandomized): each is refused by
  validation with ``field.path: message``, refused by an encoder (no file written), or every file rendered from
  it reads back, in its receiving program, exactly the intended value with no extra line, key or command.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy import encode
from deploy.encode import Encoded, EncodeError, RawValueError
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.operations.storage import mount_unit_name
from deploy.plan import Plan, build_plan
from deploy.verify_runner import ssh_config_text
from roles.lmcache import env_lines
from roles.vllm import exec_start_argv, hf_env_lines
from tests import sinks
from tests.conftest import LAB, SHIPPED_SPECS

pytestmark = pytest.mark.skipif(
    not (sinks.SYSTEMD_ANALYZE and sinks.SHELLCHECK and sinks.SSH), reason="needs systemd-analyze, shellcheck, ssh"
)

HOSTILE = [
    "a\nb",
    "a\rb",
    "new\nExecStartPre=+/bin/touch /tmp/kvpod-owned",
    "$(touch /tmp/kvpod-owned)",
    "`id`",
    "'; touch /tmp/kvpod-owned; '",
    '"quoted" \\ back\\slash',
    "100%h %n %%",
    "$HOME ${HOME} $$",
    "a;b ; c",
    "../..",
    "tab\there",
    "trailing\\",
    "  spaced  ",
    "unicode ✓ \u2028 \u00e9",
    "#not a comment",
    "=leading",
    ";",
    "",
]


def plan_of(spec: Path) -> Plan:
    return build_plan(spec_from_dict(yaml.safe_load(spec.read_text())))


def servers(plan: Plan) -> list[list]:
    by_name: dict[str, list] = {}
    for t in plan.targets:
        if t.kind == "linux-nvmet":
            key = f"{t.ssh.host}:{t.ssh.port}" if t.ssh else t.name
            by_name.setdefault(key, []).append(t)
    return list(by_name.values())


def all_files(plan: Plan) -> dict[str, dict[str, str]]:
    """host -> {path: text}: the first two nodes (the lab's first node also with netplan) and every target."""
    out = {n.name: sinks.node_files(n) for n in plan.nodes[:2]}
    out[f"{plan.nodes[0].name}-netplan"] = sinks.node_files(plan.nodes[0], netplan=True)
    for targets in servers(plan):
        out[f"target-{targets[0].name}"] = sinks.target_files(targets)
    return out


@pytest.fixture(scope="module")
def shipped() -> dict[str, tuple[Plan, dict[str, dict[str, str]]]]:
    return {spec.parent.name: (plan := plan_of(spec), all_files(plan)) for spec in SHIPPED_SPECS}


# -- the shipped specs -----------------------------------------------------------------------------------------


def test_every_unit_of_every_shipped_spec_passes_systemd_analyze_verify(shipped, tmp_path: Path) -> None:
    checked = 0
    for spec, (_, hosts) in shipped.items():
        for host, files in hosts.items():
            units = {p.rsplit("/", 1)[-1]: t for p, t in files.items() if p.endswith(sinks.UNIT_SUFFIXES)}
            assert units, f"{spec}/{host} has no unit"
            result = sinks.systemd_verify(units, tmp_path / spec / host)
            assert result.returncode == 0 and not result.stdout + result.stderr, (spec, host, result.stderr)
            checked += len(units)
    assert checked >= 20


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The verify harness can fail: an unknown setting and a relative executable are reported."""
    unit = "[Service]\nExecStart=vllm serve\nBogus=1\n"
    result = sinks.systemd_verify({"broken.service": unit}, tmp_path)
    assert "Bogus" in result.stderr or "vllm" in result.stderr


def test_every_script_of_every_shipped_spec_passes_sh_bash_and_shellcheck(shipped, tmp_path: Path) -> None:
    scripts = {
        text: f"{spec}/{host}{path}"
        for spec, (_, hosts) in shipped.items()
        for host, files in hosts.items()
        for path, text in files.items()
        if text.startswith("#!/bin/sh")
    }
    names = {where.rsplit("/", 1)[-1] for where in scripts.values()}
    assert len(names) == 4 and "kvpod-dcb" in names, "connect, lossless RoCE, cleaner and restore scripts"
    for i, (text, where) in enumerate(scripts.items()):
        script = tmp_path / f"{i}.sh"
        script.write_text(text)
        assert sinks.shell_checks(script) == [], where


def test_the_script_checks_catch_an_unquoted_value(tmp_path: Path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/sh\nNQN=$1\nmkdir /sys/kernel/config/nvmet/subsystems/$NQN\n")
    assert any("SC2086" in problem for problem in sinks.shell_checks(script))


def test_the_vllm_unit_and_env_file_read_back_the_plan(shipped) -> None:
    for spec, (plan, hosts) in shipped.items():
        for n in plan.nodes[:2]:
            files = hosts[n.name]
            for e in n.engines:
                unit = files[f"/etc/systemd/system/{e.unit}"]
                argv = sinks.exec_argv(sinks.raw_unit_value(unit, "Service", "ExecStart"))
                assert argv == exec_start_argv(n, e), spec
                assert argv[argv.index("--port") + 1] == str(e.port)
                assert sinks.unit_value(unit, "Service", "User") == n.vllm.user
                assert (
                    sinks.unit_value(unit, "Service", "Environment") == f"CUDA_VISIBLE_DEVICES={e.cuda_visible_devices}"
                )
                env_files = [v for _, key, v in sinks.unit_settings(unit) if key == "EnvironmentFile"]
                assert env_files == [e.lmcache.env_file, *([n.vllm.hf_env_file] if n.vllm.hf_env_file else [])], spec
                if n.vllm.hf_env_file:
                    assert sinks.env_file_values(files[n.vllm.hf_env_file]) == hf_env_lines(n), spec
                assert sinks.env_file_values(files[e.lmcache.env_file]) == env_lines(e.lmcache), spec
            assert not any(p.endswith("/kvpod-vllm.service") for p in files), "no unit of the single-engine layout"
    assert any(n.vllm.hf_env_file for plan, _ in shipped.values() for n in plan.nodes), "the lab spec has a token"


def test_the_hugging_face_env_file_reads_back_through_systemd(tmp_path: Path) -> None:
    """Every Hugging Face setting arrives as itself: the token (any printable text), the cache, offline mode; the
    unit with both environment files passes systemd-analyze verify."""
    from deploy.encode import render
    from deploy.shipped import templates_dir

    token = 'hf_a"b\\c$d`e f#g;h'
    env = {"HF_TOKEN": token, "HF_HOME": "/srv/hf", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    text = render(templates_dir() / "vllm" / "vllm-hf.env.j2", env=env)
    assert sinks.env_file_values(text) == env
    plan = plan_of(LAB).nodes[0]
    files = sinks.node_files(plan)
    unit = files[f"/etc/systemd/system/{plan.engines[0].unit}"]
    result = sinks.systemd_verify({plan.engines[0].unit: unit}, tmp_path)
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr
    loaded = [v for section, key, v in sinks.unit_settings(unit) if (section, key) == ("Service", "EnvironmentFile")]
    assert loaded == [plan.engines[0].lmcache.env_file, plan.vllm.hf_env_file]


def test_the_netplan_file_is_yaml_dumped_from_the_plan(shipped) -> None:
    for spec, (plan, hosts) in shipped.items():
        n = plan.nodes[0]
        (text,) = [t for p, t in hosts[f"{n.name}-netplan"].items() if p.startswith("/etc/netplan/")]
        assert "&" not in text and "*" not in text, "no YAML anchors or aliases"
        fab = n.fabric
        vlan = yaml.safe_load(text)["network"]["vlans"][fab.vlan_interface]
        assert vlan["link"] == fab.interface and vlan["id"] == fab.vlan and vlan["mtu"] == fab.mtu, spec
        assert vlan["addresses"] == [f"{fab.address}/{fab.prefix_length}"]
        routes = fab.routes if fab.gateway else []
        assert vlan.get("routes", []) == [{"to": r, "via": fab.gateway} for r in routes]


def test_the_ssh_config_gives_ssh_exactly_the_plans_options(shipped, tmp_path: Path) -> None:
    for spec, (plan, _) in shipped.items():
        config = tmp_path / f"{spec}.ssh_config"
        config.write_text(ssh_config_text(plan, control_dir=tmp_path))
        for n in plan.nodes[:3]:
            assert_ssh_options(config, n.name, n.ssh)


def tokens(path: str) -> str:
    """How ``ssh -G`` prints a file option: ssh keeps ``%`` tokens (``%%`` is one ``%``) until it opens the file."""
    return path.replace("%", "%%")


def assert_ssh_options(config: Path, name: str, ssh) -> None:
    got = sinks.ssh_options(config, name)
    assert got["user"] == [ssh.user]
    assert got["hostname"] == [ssh.host]
    assert got["port"] == [str(ssh.port)]
    wanted = {"yes": "true", "no": "false"}.get(ssh.strict_host_key_checking, ssh.strict_host_key_checking)
    assert got["stricthostkeychecking"] == [wanted]
    if ssh.key:
        assert got["identityfile"] == [tokens(ssh.key)]
    if ssh.known_hosts_file:  # ssh -G shows known-hosts files after its own %-token and ~ expansion
        assert got["userknownhostsfile"] == [os.path.expanduser(ssh.known_hosts_file)]
    assert "proxycommand" not in got and "localcommand" not in got and "remotecommand" not in got


def test_a_template_that_emits_a_raw_value_fails_to_render(tmp_path: Path) -> None:
    (tmp_path / "raw.j2").write_text("Description={{ model }}\n")
    with pytest.raises(RawValueError, match="raw str"):
        encode.render(tmp_path / "raw.j2", model="m")
    (tmp_path / "ok.j2").write_text("Description={{ model | unit }} {{ n }}\n")
    assert encode.render(tmp_path / "ok.j2", model="50%", n=3) == "Description=50%% 3\n"


def test_no_role_renders_around_the_encoding_environment() -> None:
    """pyinfra's own ``files.template`` (no encoders, raw values allowed) is never used; templates render only
    through :func:`deploy.encode.render`."""
    from tests.conftest import ROOT

    for source in [*ROOT.glob("roles/**/*.py"), *ROOT.glob("deploy/**/*.py")]:
        if source.name == "encode.py":
            continue
        text = source.read_text()
        assert "files.template(" not in text and "get_template(" not in text, source


def test_every_template_refuses_raw_values() -> None:
    """Every ``{{ }}`` slot of every template goes through an encoder filter, or is one of the integer settings
    (the render of the shipped specs above fails on any raw string either way)."""
    from deploy.shipped import templates_dir

    for template in sorted(templates_dir().rglob("*.j2")):
        source = template.read_text()
        for line in source.splitlines():
            if "{{" in line:
                for expr in line.split("{{")[1:]:
                    inner = expr.split("}}")[0]
                    assert "|" in inner or inner.strip() in {
                        "wait_seconds",
                        "mtu",
                        "vlan",
                        "timeout",
                        "s.nsid",
                        "s.file_size",
                        "p.port_id",
                    }, (template.name, inner)


# -- the encoders on their own ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [v for v in HOSTILE if "\0" not in v])
def test_a_shell_word_reaches_sh_as_exactly_one_word(value: str) -> None:
    word = encode.shell_word(value)
    out = subprocess.run(["sh", "-c", f"printf '%s\\0' {word}"], capture_output=True, check=True, timeout=10)
    assert out.stdout.decode() == value + "\0"


def test_plain_values_keep_their_bytes() -> None:
    assert encode.shell_word("/mnt/kvcache") == "/mnt/kvcache"
    assert encode.shell_word("nqn.2024-01.io.kvpod.lab:target-drive01") == "nqn.2024-01.io.kvpod.lab:target-drive01"
    assert encode.unit_argv(["/usr/local/bin/vllm", "serve", "m/x", "--port", "8000"]) == (
        "/usr/local/bin/vllm serve m/x --port 8000"
    )
    assert encode.env_value("file:///mnt/kvcache/lmcache/") == "file:///mnt/kvcache/lmcache/"
    assert encode.ssh_value("/var/tmp/kvpod-lab/id_ed25519", tokens=True) == "/var/tmp/kvpod-lab/id_ed25519"


@pytest.mark.parametrize("value", [v for v in HOSTILE if v])
def test_a_unit_argv_word_reaches_systemd_as_exactly_one_word(value: str) -> None:
    argv = ["/usr/bin/vllm", value, "--port", "8000"]
    line = encode.unit_argv(argv)
    assert "\n" not in line and "\r" not in line
    (setting,) = sinks.unit_settings(f"[Service]\nExecStart={line}\n")
    assert sinks.exec_argv(setting[2]) == argv


def test_a_unit_argv_with_a_hostile_word_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    argv = ["/usr/bin/vllm", *[v for v in HOSTILE if v]]
    unit = f"[Service]\nExecStart={encode.unit_argv(argv)}\n"
    result = sinks.systemd_verify({"hostile.service": unit}, tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert len(sinks.unit_settings(unit)) == 1


def test_unit_argv_refuses_what_systemd_cannot_carry() -> None:
    for argv in (["vllm", "serve"], ["/usr/bin/../bin/vllm"], ["/usr/bin/vllm", "a\0b"], []):
        with pytest.raises(EncodeError):
            encode.unit_argv(argv)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_unit_value_is_one_line_or_refused(value: str) -> None:
    try:
        text = encode.unit_value(value)
    except EncodeError:
        assert any(c in value for c in "\n\r\t") or value != value.strip() or value.endswith("\\") or not value
        return
    unit = f"[Unit]\nDescription={text}\n"
    assert sinks.unit_value(unit, "Unit", "Description") == value


@pytest.mark.parametrize("value", HOSTILE)
def test_an_env_value_reads_back_exactly(value: str) -> None:
    text = f"# header\nA=1\nKEY={encode.env_value(value)}\nB=2\n"
    assert sinks.env_file_values(text) == {"A": "1", "KEY": value, "B": "2"}


def test_env_keys_and_control_characters_are_refused() -> None:
    for bad in ("1KEY", "A-B", "A B", "A\nB=1", ""):
        with pytest.raises(EncodeError):
            encode.env_key(bad)
    with pytest.raises(EncodeError):
        encode.env_value("bell\x07")


@pytest.mark.parametrize("value", HOSTILE)
def test_an_ssh_value_reaches_ssh_exactly_or_is_refused(value: str, tmp_path: Path) -> None:
    try:
        user = encode.ssh_value(value)
        key = encode.ssh_value(f"/keys/{value}", tokens=True)
    except EncodeError:
        assert any(c in value for c in "\n\r\t") or not value or "${" in value
        return
    config = tmp_path / "ssh_config"
    config.write_text(f"Host h\n    HostName 127.0.0.1\n    Port 2\n    User {user}\n    IdentityFile {key}\n")
    got = sinks.ssh_options(config, "h")
    assert got["user"] == [value]
    assert got["identityfile"] == [tokens(f"/keys/{value}")]
    assert "proxycommand" not in got


def test_configfs_names_never_leave_their_parent() -> None:
    for bad in ("", ".", "..", "a/b", "../x", "a\nb", "a\0b"):
        with pytest.raises(EncodeError):
            encode.configfs_name(bad)
    assert encode.configfs_path("/sys/kernel/config/nvmet", "subsystems", "nqn.x:y") == (
        "/sys/kernel/config/nvmet/subsystems/nqn.x:y"
    )


def test_interface_names_and_comments() -> None:
    for bad in ("", "eth1\nName=*", "a" * 16, "eth:1", "et h", "a/b", ".."):
        with pytest.raises(EncodeError):
            encode.interface_name(bad)
    assert encode.interface_name("eth1.100") == "eth1.100"
    assert "\n" not in encode.comment("a\nb\rc")


@pytest.mark.skipif(not shutil.which("systemd-escape"), reason="needs systemd-escape")
@pytest.mark.parametrize(
    "path", ["/mnt/kvcache", "/srv/kv-cache", "/mnt/a b/\u00fc", "/mnt/.x/y", "/mnt//x/", "/mnt/%n$x"]
)
def test_the_mount_unit_name_is_systemd_escapes(path: str) -> None:
    escaped = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True, check=True).stdout
    assert mount_unit_name(path) == escaped.strip() + ".mount"
    assert encode.unit_name(mount_unit_name(path)) == mount_unit_name(path)


def test_encoded_text_is_distinct_from_plain_text() -> None:
    assert isinstance(encode.shell_word("x"), Encoded)
    assert not isinstance("x" + encode.shell_word("y"), Encoded)


# -- hostile spec values, end to end ----------------------------------------------------------------------------

LAB_DICT = yaml.safe_load(LAB.read_text())


def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


FIELDS: dict[str, tuple] = {
    "vllm.model": ("vllm", "model"),
    "vllm.install.venv": ("vllm", "install", "venv"),
    "vllm.user": ("vllm", "user"),
    "vllm.extra_args": ("vllm", "extra_args"),
    "kvcache.path": ("kvcache", "path"),
    "kvcache.mount_options": ("kvcache", "mount_options"),
    "kvcache.lmcache_extra": ("kvcache", "lmcache_extra"),
    "enclosures.nqn_prefix": ("enclosures", 0, "nqn_prefix"),
    "enclosures.device_path_pattern": ("enclosures", 0, "drives", "device_path_pattern"),
    "enclosures.portal_interface": ("enclosures", 0, "ioms", 0, "ports", 0, "interface"),
    "nodes.ssh_address": ("nodes", "generate", "ssh_address"),
    "nodes.ssh_user": ("nodes", "generate", "ssh_user"),
    "nodes.ssh_key": ("nodes", "generate", "ssh_key"),
    "nodes.ssh_known_hosts_file": ("nodes", "generate", "ssh_known_hosts_file"),
    "nodes.fabric_interface": ("nodes", "generate", "fabric_interface"),
}

HOSTILE_TEXT = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.sampled_from(list("ab/.-_:%$`'\"\\;\n\r\t\0 ()#{}\u2028é")), min_size=1, max_size=12),
)


def value_for(field: str, text: str):
    """The spec value of ``field`` carrying ``text`` (lists get it as one item, paths as a component)."""
    if field in ("vllm.extra_args",):
        return ["--served-model-name", text]
    if field == "kvcache.mount_options":
        return ["noatime", text]
    if field == "kvcache.lmcache_extra":
        return {"remote_url": text}
    if field == "enclosures.device_path_pattern":
        return f"/srv/nvmet/{text}{{slot}}.img"
    if field in ("kvcache.path", "vllm.install.venv", "nodes.ssh_key", "nodes.ssh_known_hosts_file"):
        return f"/srv/{text}"
    return text


def check_node(plan: Plan, files: dict[str, str], tmp: Path) -> None:
    n = plan.nodes[0]
    assert unit_layout(files) == unit_layout(BENIGN_NODE), "a unit gained or lost a setting"
    for path, text in files.items():
        for _, key, value in sinks.unit_settings(text) if path.endswith(sinks.UNIT_SUFFIXES) else []:
            sinks.exec_argv(value) if key.startswith("Exec") else sinks.expand_specifiers(value)
    for e in n.engines:
        unit = files[f"/etc/systemd/system/{e.unit}"]
        assert sinks.exec_argv(sinks.raw_unit_value(unit, "Service", "ExecStart")) == exec_start_argv(n, e)
        assert sinks.unit_value(unit, "Unit", "Description") == f"kvpod vLLM engine {e.index} serving {n.vllm.model}"
        assert sinks.unit_value(unit, "Service", "User") == n.vllm.user
    mount = next(t for p, t in files.items() if p.endswith(".mount"))
    assert sinks.unit_value(mount, "Mount", "Where") == n.mount.path
    assert sinks.unit_value(mount, "Mount", "Options").split(",")[: len(n.mount.options)] == n.mount.options
    assert sinks.env_file_values(files[n.lmcache.env_file]) == env_lines(n.lmcache)

    connect = sinks.run_script(files["/usr/local/sbin/kvpod-nvme-connect"], tmp / "connect")
    nvme = [c for c in connect if c[0] == "nvme"]
    assert [c[c.index("--nqn") + 1] for c in nvme] == [n.namespace.subsystem_nqn] * len(n.namespace.portals)
    assert all(c[c.index("dev") + 1] == n.fabric.vlan_interface for c in connect if c[0] == "ip")
    clean = sinks.run_script(files["/usr/local/sbin/kvpod-lmcache-clean"], tmp / "clean", args=("engine0",))
    assert ["mountpoint", "-q", n.mount.path] in clean
    assert ["cd", "-P", "--", n.lmcache_root] in clean and ["cd", "-P", "--", "./engine0"] in clean
    assert ["chmod", "750", "."] in clean


def check_target(plan: Plan, files: dict[str, str], tmp: Path) -> None:
    script = files["/usr/local/sbin/kvpod-nvmet-restore"]
    calls = sinks.run_script(script, tmp / "restore", sandbox_var="C")
    subsystems = [s for t in plan.targets for s in t.subsystems]
    created = sorted(p.name for p in (tmp / "restore" / "sandbox" / "subsystems").iterdir())
    assert created == sorted(s.nqn for s in subsystems)
    for s in subsystems:
        device = tmp / "restore" / "sandbox" / "subsystems" / s.nqn / "namespaces" / str(s.nsid) / "device_path"
        assert device.read_text() == s.device_path
    truncated = [c[-1] for c in calls if c[0] == "truncate"]
    assert truncated == [s.device_path for s in subsystems]
    portals = [p for t in plan.targets for p in t.portals]
    probed = [c[c.index("dev") + 1] for c in calls if c[0] == "ip"]
    assert set(probed) == {p.vlan_interface for p in portals}


def unit_layout(files: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """unit file (a mount unit as ``*.mount``) -> its ``(section, key)`` sequence."""
    return {
        ("*.mount" if path.endswith(".mount") else path): [(s, k) for s, k, _ in sinks.unit_settings(text)]
        for path, text in files.items()
        if path.endswith(sinks.UNIT_SUFFIXES)
    }


BENIGN_NODE = sinks.node_files(build_plan(spec_from_dict(copy.deepcopy(LAB_DICT))).nodes[0])


TARGET_FIELDS = {"enclosures.nqn_prefix", "enclosures.device_path_pattern", "enclosures.portal_interface"}
SSH_FIELDS = {"nodes.ssh_address", "nodes.ssh_user", "nodes.ssh_key", "nodes.ssh_known_hosts_file"}


@settings(max_examples=30, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=HOSTILE_TEXT)
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_hostile_value_is_refused_or_arrives_exactly(field: str, text: str, tmp_path_factory) -> None:
    data = copy.deepcopy(LAB_DICT)
    _set(data, FIELDS[field], value_for(field, text))
    try:
        plan = build_plan(spec_from_dict(data))
    except SpecError as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
        return
    tmp = tmp_path_factory.mktemp("hostile")
    try:
        if field in SSH_FIELDS:
            config = tmp / "ssh_config"
            config.write_text(ssh_config_text(plan))
        elif field in TARGET_FIELDS:
            target = sinks.target_files(servers(plan)[0])
        else:
            node = sinks.node_files(plan.nodes[0])
    except EncodeError as exc:  # validation must refuse what no destination can carry, before any host
        pytest.fail(f"{field}: kvpod validate accepted {text!r}, which an encoder then refused: {exc}")
    if field in SSH_FIELDS:
        assert_ssh_options(config, plan.nodes[0].name, plan.nodes[0].ssh)
    elif field in TARGET_FIELDS:
        check_target(plan, target, tmp)
    else:
        check_node(plan, node, tmp)
