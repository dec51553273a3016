"""The disk-tier cleaner each engine's unit runs before every start, rendered from its template and run for real
under /bin/sh against a directory tree in a temporary directory (a marker file stands in for the mount)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from benchmarks.kvpod_sim import connected_node
from benchmarks.pyinfra_fake import changed_commands, deploy_plan, deploy_run
from deploy.loader import load_spec
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec
from roles._common import render
from roles.vllm import CLEAN_SCRIPT, MOUNT_CHECK, clean_script_vars, vllm

# A directory counts as mounted when it holds this marker: the test's stand-in for `mountpoint -q`.
MARKER = ".mounted"
MARKER_CHECK = ["sh", "-c", f'test -f "$1/{MARKER}"', "mount-check"]


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    return build_plan(load_spec(lab_spec())).nodes[0]


def plan_at(lab: NodePlan, mount: Path) -> NodePlan:
    """The lab node's plan (two engines) with its KV-cache mount at ``mount``."""
    engines = [
        e.model_copy(
            update={
                "disk_dir": f"{mount}/lmcache/engine{e.index}",
                "lmcache": e.lmcache.model_copy(update={"local_disk": f"file://{mount}/lmcache/engine{e.index}/"}),
            }
        )
        for e in lab.engines
    ]
    return lab.model_copy(update={"mount": lab.mount.model_copy(update={"path": str(mount)}), "engines": engines})


def render_script(
    plan: NodePlan, path: Path, mount_check: list[str] = MARKER_CHECK, owner: str | None = None, root: str | None = None
) -> Path:
    variables = clean_script_vars(plan, mount_check=mount_check)
    if owner is not None:
        variables["owner"] = owner
    if root is not None:
        variables["root"] = root
    path.write_text(render("vllm", "kvpod-lmcache-clean.j2", **variables))
    path.chmod(0o755)
    return path


def run(script: Path, engine: str = "engine0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(script), engine], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A mounted KV-cache filesystem with a used disk tier of engine 0 holding links out of it, a used one of
    engine 1, files of the single-engine layout and of a retired engine 2 in the root, and files outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    mount = tmp_path / "mnt"
    root = mount / "lmcache"
    disk = root / "engine0"
    (disk / "sub").mkdir(parents=True)
    (root / "engine1").mkdir()
    (root / "engine1" / "chunk-9.pt").write_bytes(b"\0" * 4096)
    (root / "engine2").mkdir()
    (root / "engine2" / "chunk-8.pt").write_bytes(b"\0" * 4096)
    (root / "old-chunk.pt").write_bytes(b"\0" * 4096)
    (root / "engine0-lookalike").symlink_to(outside, target_is_directory=True)
    (mount / MARKER).write_text("")
    (mount / "precious.txt").write_text("precious")
    (disk / "chunk-1.pt").write_bytes(b"\0" * 4096)
    (disk / "sub" / "chunk-2.pt").write_bytes(b"\0" * 4096)
    (disk / ".hidden").write_text("x")
    (disk / "dir-link").symlink_to(outside, target_is_directory=True)
    (disk / "file-link").symlink_to(outside / "keep.txt")
    return {"tmp": tmp_path, "outside": outside, "mount": mount, "disk": disk, "root": root}


def owner_of_this_process() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def test_it_empties_the_disk_tier_and_nothing_else(lab: NodePlan, tree: dict[str, Path]) -> None:
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    result = run(script)
    assert result.returncode == 0, result.stderr
    assert tree["disk"].is_dir() and not tree["disk"].is_symlink()
    assert list(tree["disk"].iterdir()) == []
    assert stat.S_IMODE(tree["disk"].stat().st_mode) == 0o750
    # the links were removed, not followed: what they pointed at is intact
    assert (tree["outside"] / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["keep.txt"]
    assert (tree["mount"] / "precious.txt").read_text() == "precious"
    assert "emptied" in result.stdout
    # the root keeps only the planned engines' directories; engine 1's files are its own engine's to clean
    assert sorted(p.name for p in tree["root"].iterdir()) == ["engine0", "engine1"]
    assert (tree["root"] / "engine1" / "chunk-9.pt").exists()
    assert run(script).returncode == 0, "an empty tier is cleaned again without complaint"


def test_an_engine_cleans_only_its_own_directory(lab: NodePlan, tree: dict[str, Path]) -> None:
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    result = run(script, "engine1")
    assert result.returncode == 0, result.stderr
    assert list((tree["root"] / "engine1").iterdir()) == []
    assert (tree["disk"] / "chunk-1.pt").exists(), "engine 0's tier is engine 0's"


@pytest.mark.parametrize("name", ["engine2", "", "..", "engine0/../engine1", "sub"])
def test_an_engine_that_is_not_planned_is_refused(lab: NodePlan, tree: dict[str, Path], name: str) -> None:
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    result = run(script, name)
    assert result.returncode == 1 and "is not planned on this node" in result.stderr
    assert (tree["disk"] / "chunk-1.pt").exists() and (tree["root"] / "old-chunk.pt").exists()


def test_it_refuses_when_the_mount_is_absent(lab: NodePlan, tree: dict[str, Path]) -> None:
    (tree["mount"] / MARKER).unlink()
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    result = run(script)
    assert result.returncode == 1
    assert f"{tree['mount']} is not mounted; refusing to clean" in result.stderr
    assert (tree["disk"] / "chunk-1.pt").exists() and (tree["disk"] / "sub" / "chunk-2.pt").exists()


def test_it_refuses_a_disk_tier_that_is_a_link(lab: NodePlan, tree: dict[str, Path]) -> None:
    shutil.rmtree(tree["disk"])
    tree["disk"].symlink_to(tree["outside"], target_is_directory=True)
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    result = run(script)
    assert result.returncode == 1 and "is a symbolic link" in result.stderr
    assert (tree["outside"] / "keep.txt").read_text() == "keep"


def swap_shim(bin_dir: Path, command: str, disk: Path, outside: Path) -> None:
    """``command`` on PATH that, run inside the engine's disk-tier directory, first swaps that directory for a link
    to ``outside``, then runs the real one: the race of a link swapped in after the cleaner's checks, made
    deterministic."""
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / command
    shim.write_text(
        "#!/bin/sh\n"
        f"if [ ! -L '{disk}' ] && [ \"$(pwd -P)\" = '{disk}' ]; then mv '{disk}' '{disk}.moved' && "
        f"ln -s '{outside}' '{disk}'; fi\n"
        f'exec {shutil.which(command)} "$@"\n'
    )
    shim.chmod(0o755)


@pytest.mark.parametrize("command", ["find", "chown"])
def test_a_link_swapped_in_after_the_checks_is_not_followed(lab: NodePlan, tree: dict[str, Path], command: str) -> None:
    outside = tree["outside"]
    outside.chmod(0o755)
    swap_shim(tree["tmp"] / "bin", command, tree["disk"], outside)
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    env = {**os.environ, "PATH": f"{tree['tmp'] / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(["/bin/sh", str(script), "engine0"], capture_output=True, text=True, timeout=30, env=env)
    assert tree["disk"].is_symlink(), "the shim swapped the link in"
    # the link's target, outside the disk tier, is untouched: neither emptied nor chmod-ed
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    # what was cleaned and chmod-ed is the directory the cleaner checked (moved aside by the swap)
    moved = tree["root"] / "engine0.moved"
    assert result.returncode == 0, result.stderr
    assert list(moved.iterdir()) == [] and stat.S_IMODE(moved.stat().st_mode) == 0o750


def test_the_script_never_names_the_directory_after_entering_it(lab: NodePlan, tmp_path: Path) -> None:
    text = render_script(lab, tmp_path / "clean").read_text()
    after = text[text.index('cd -P -- "./$NAME"') :]
    for line in after.splitlines()[1:]:
        if line.startswith(("find", "chown", "chmod")):
            assert '"$DIR"' not in line and line.rstrip().endswith(("-delete", ".")), line


@pytest.mark.parametrize(("directory", "before"), [("disk", "WANT=$WANT_ROOT"), ("root", "WANT_ROOT=$(")])
def test_a_link_swapped_in_before_entering_is_refused(
    lab: NodePlan, tree: dict[str, Path], directory: str, before: str
) -> None:
    """The link appears after the ``-L`` check, before ``cd -P`` (of the engine's directory, or of the root):
    ``pwd -P`` shows where the shell went."""
    plan = plan_at(lab, tree["mount"])
    variables = clean_script_vars(plan, mount_check=MARKER_CHECK) | {"owner": owner_of_this_process()}
    text = render("vllm", "kvpod-lmcache-clean.j2", **variables)
    swapped = tree[directory]
    swap = f"mv '{swapped}' '{swapped}.moved' && ln -s '{tree['outside']}' '{swapped}'\n"
    assert before in text
    text = text.replace(before, swap + before, 1)
    script = tree["tmp"] / "clean"
    script.write_text(text)
    result = run(script)
    assert result.returncode == 1 and "a link was swapped in" in result.stderr
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["keep.txt"]


def test_it_creates_a_missing_disk_tier(lab: NodePlan, tree: dict[str, Path]) -> None:
    shutil.rmtree(tree["disk"])
    script = render_script(plan_at(lab, tree["mount"]), tree["tmp"] / "clean", owner=owner_of_this_process())
    assert run(script).returncode == 0
    assert tree["disk"].is_dir() and stat.S_IMODE(tree["disk"].stat().st_mode) == 0o750


def test_it_refuses_a_disk_tier_outside_the_mount(lab: NodePlan, tree: dict[str, Path]) -> None:
    plan = plan_at(lab, tree["mount"])
    script = render_script(
        plan, tree["tmp"] / "clean", owner=owner_of_this_process(), root=f"{tree['mount']}/../outside"
    )
    result = run(script)
    assert result.returncode == 1 and "is not a plain path" in result.stderr
    assert (tree["outside"] / "keep.txt").read_text() == "keep"


def test_it_refuses_a_plain_disk_tier_path_on_another_filesystem(lab: NodePlan, tree: dict[str, Path]) -> None:
    """A disk tier named by a plain path that is not below the mount (another filesystem) is never emptied."""
    (tree["outside"] / MARKER).write_text("")  # mounted too: only the path decides
    plan = plan_at(lab, tree["mount"])
    result = run(render_script(plan, tree["tmp"] / "clean", owner=owner_of_this_process(), root=str(tree["outside"])))
    assert result.returncode == 1 and "is not inside" in result.stderr
    assert (tree["outside"] / "keep.txt").read_text() == "keep"


@pytest.mark.skipif(shutil.which("mountpoint") is None, reason="util-linux's mountpoint is not installed")
def test_the_real_mount_check_refuses_a_plain_directory(lab: NodePlan, tree: dict[str, Path]) -> None:
    script = render_script(
        plan_at(lab, tree["mount"]), tree["tmp"] / "clean", mount_check=MOUNT_CHECK, owner=owner_of_this_process()
    )
    result = run(script)
    assert result.returncode == 1 and "is not mounted" in result.stderr
    assert (tree["disk"] / "chunk-1.pt").exists()


def test_the_node_gets_the_script_and_the_unit_runs_it_as_root(lab: NodePlan) -> None:
    assert clean_script_vars(lab) == {
        "mount_path": "/mnt/kvcache",
        "root": "/mnt/kvcache/lmcache",
        "engines": ["engine0", "engine1"],
        "owner": "vllm:vllm",
        "mount_check": ["mountpoint", "-q"],
    }
    commands = changed_commands(deploy_plan(vllm, connected_node(lab), {"kvpod_node": lab}))
    uploads = {c[2]: c[1] for c in commands if isinstance(c, list) and c[0] == "upload"}
    script = uploads[CLEAN_SCRIPT]
    assert script.startswith("#!/bin/sh\n")
    assert 'mountpoint -q "$MOUNT" || fail' in script
    assert "find . -xdev -mindepth 1 -delete" in script
    assert "rm " not in script
    remote = connected_node(lab)
    deploy_run(vllm, remote, {"kvpod_node": lab})
    assert remote.files[CLEAN_SCRIPT]["mode"] == 755  # extracted from the bundle with its mode
    for engine in lab.engines:
        unit = uploads[f"/etc/systemd/system/kvpod-vllm@{engine.index}.service"]
        assert f"ExecStartPre=+{CLEAN_SCRIPT} engine{engine.index}\nExecStart=" in unit
