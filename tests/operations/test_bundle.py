"""The file bundle: its archive extracted by GNU tar itself, where the archive waits, what it changes, what its
extraction stales."""

from __future__ import annotations

import grp
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl

from benchmarks.pyinfra_fake import FakeRemote, fake_state
from deploy.facts.bundle_command import EXTRACT_SCRIPT, STAGING_DIR, extract_command, extracted
from deploy.facts.effect_model import stales
from deploy.facts.effects import effect_of_command
from deploy.facts.kernel import LoadedModules
from deploy.facts.snapshot import Read
from deploy.operations.bundle import Entry, Written, archive, files_written

SECRET = b"HF_TOKEN=hf_secret\n"


def _entries(group: str = "root") -> list[Entry]:
    return [
        Entry("/etc/kvpod", None, "750", "root", group),
        Entry("/etc/kvpod/vllm-hf.env", lambda: SECRET, "640", "root", group),
        Entry("/usr/local/sbin/kvpod-x", lambda: b"#!/bin/sh\n", "755"),
    ]


def _archive(entries: list[Entry]) -> bytes:
    return archive([(e, None if e.is_dir else e.content()) for e in entries])  # type: ignore[misc]


def _extract_into(root: Path, archive_path: Path, members: list[str]) -> subprocess.CompletedProcess:
    """The extraction command as kvpod sends it, run by ``sh`` and GNU tar, its target ``/`` moved to ``root``."""
    assert EXTRACT_SCRIPT.count(" -C / ") == 1
    script = EXTRACT_SCRIPT.replace(" -C / ", f" -C {root} ")
    return subprocess.run(["sh", "-c", script, str(archive_path), *members], capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
def test_gnu_tar_extracts_the_members_with_their_modes_and_owners_and_removes_the_archive(tmp_path: Path) -> None:
    group = "daemon" if os.geteuid() == 0 else "root"
    root, staging = tmp_path / "root", tmp_path / "staging"
    root.mkdir()
    staging.mkdir(mode=0o700)
    (root / "etc/kvpod").mkdir(parents=True, mode=0o755)  # a directory already there takes the archive's mode
    (root / "etc/kvpod").chmod(0o755)
    tar = staging / "files.tar"
    tar.write_bytes(_archive(_entries(group)))
    done = _extract_into(root, tar, ["etc/kvpod", "etc/kvpod/vllm-hf.env", "usr/local/sbin/kvpod-x"])
    assert done.returncode == 0, done.stderr
    assert not tar.exists()
    env, script, etc = root / "etc/kvpod/vllm-hf.env", root / "usr/local/sbin/kvpod-x", root / "etc/kvpod"
    assert env.read_bytes() == SECRET and script.read_bytes() == b"#!/bin/sh\n"
    assert (etc.stat().st_mode & 0o7777, env.stat().st_mode & 0o7777, script.stat().st_mode & 0o7777) == (
        0o750,
        0o640,
        0o755,
    )
    assert not env.stat().st_mode & 0o007, "the secret is never world-readable"
    if os.geteuid() == 0:  # owners by name, as the archive records them
        gid = grp.getgrnam(group).gr_gid
        assert (env.stat().st_uid, env.stat().st_gid, etc.stat().st_gid, script.stat().st_gid) == (0, gid, gid, 0)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
def test_only_the_named_members_are_extracted_and_a_failure_is_reported_with_the_archive_removed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tar = tmp_path / "files.tar"
    tar.write_bytes(_archive(_entries()))
    assert _extract_into(root, tar, ["usr/local/sbin/kvpod-x"]).returncode == 0
    assert (root / "usr/local/sbin/kvpod-x").exists() and not (root / "etc").exists()
    tar.write_bytes(_archive(_entries()))
    assert _extract_into(root, tar, ["etc/kvpod"]).returncode == 0  # a directory named is that directory alone
    assert (root / "etc/kvpod").is_dir() and not (root / "etc/kvpod/vllm-hf.env").exists()
    tar.write_bytes(_archive(_entries()))
    assert _extract_into(root, tar, ["etc/missing"]).returncode != 0
    assert not tar.exists()


def test_the_archive_is_deterministic_and_records_names_modes_owners_and_no_time() -> None:
    data = _archive(_entries("vllm"))
    assert data == _archive(list(reversed(_entries("vllm"))))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [(m.name, oct(m.mode), m.uname, m.gname, m.mtime, m.isdir()) for m in tar.getmembers()]
    assert members == [
        ("etc/kvpod", "0o750", "root", "vllm", 0, True),
        ("etc/kvpod/vllm-hf.env", "0o640", "root", "vllm", 0, False),
        ("usr/local/sbin/kvpod-x", "0o755", "root", "root", 0, False),
    ]


def _commands(remote: FakeRemote, entries: list[Entry]) -> tuple[list, Written]:
    state, host = fake_state(remote)
    written = Written()
    with ctx_state.use(state), ctx_host.use(host):
        return list(files_written._inner(entries=entries, written=written)), written


def test_the_archive_waits_in_a_root_only_directory_never_in_the_temporary_one() -> None:
    commands, written = _commands(FakeRemote(), _entries())
    upload, extract = commands
    assert isinstance(upload, FileUploadCommand) and upload.dest.startswith("/root/.kvpod-files-")
    assert extracted(extract.get_raw_value()) == (upload.dest, ["/etc/kvpod", *(e.path for e in _entries()[1:])])
    assert written.paths == {e.path for e in _entries()}
    # root's home open to others: kvpod's own directory, made root-only first
    commands, _ = _commands(FakeRemote(dirs={"/root": {"mode": 755}}), _entries())
    made, upload, _ = commands
    assert made.get_raw_value() == f"install -d -m 700 -o root -g root {STAGING_DIR}"
    assert upload.dest.startswith(f"{STAGING_DIR}/") and not upload.dest.startswith("/tmp")


def test_nothing_runs_when_every_entry_matches_and_only_what_differs_is_sent() -> None:
    remote = FakeRemote(
        dirs={"/etc/kvpod": {"mode": 750}},
        files={
            "/etc/kvpod/vllm-hf.env": {"content": SECRET.decode(), "mode": 640},
            "/usr/local/sbin/kvpod-x": {"content": "#!/bin/sh\n", "mode": 755},
        },
    )
    commands, written = _commands(remote, _entries())
    assert commands == [] and written.paths == frozenset()
    remote.files["/usr/local/sbin/kvpod-x"]["content"] = "#!/bin/bash\n"
    remote.files["/etc/kvpod/vllm-hf.env"]["mode"] = 644
    commands, written = _commands(remote, _entries())
    fix, upload, extract = commands
    assert fix.get_raw_value() == "chmod 640 /etc/kvpod/vllm-hf.env"  # the secret is not sent again for its mode
    assert [path for path, _ in upload.src.members] == ["/usr/local/sbin/kvpod-x"]
    assert extract.get_raw_value().endswith(" usr/local/sbin/kvpod-x")
    assert written.paths == {"/usr/local/sbin/kvpod-x", "/etc/kvpod/vllm-hf.env"}


def test_the_fake_host_extracts_as_tar_does() -> None:
    remote = FakeRemote(groups=["root", "vllm"])
    commands, _ = _commands(remote, _entries("vllm"))
    upload, extract = commands
    remote.upload(upload.src.read().decode("utf-8", "surrogateescape"), upload.dest)
    assert remote.run(extract.get_raw_value())
    assert upload.dest not in remote.files
    assert remote.dirs["/etc/kvpod"] == {"user": "root", "group": "vllm", "mode": 750}
    env = remote.files["/etc/kvpod/vllm-hf.env"]
    assert (env["content"], env["mode"], env["user"], env["group"]) == (SECRET.decode(), 640, "root", "vllm")
    assert _commands(remote, _entries("vllm"))[0] == []


def test_its_extraction_stales_exactly_its_members_and_their_listings() -> None:
    command = extract_command(
        "/root/.kvpod-files-0123.tar", ["/etc/kvpod/vllm-hf.env", "/etc/systemd/system/a.service"]
    )
    effect = effect_of_command(command)
    assert not effect.everything
    stale = [
        Read.of(File, path="/etc/kvpod/vllm-hf.env"),
        Read.of(Sha1File, path="/etc/kvpod/vllm-hf.env"),
        Read.of(Directory, path="/etc/kvpod"),
        Read.of(File, path="/etc/systemd/system/a.service"),
        Read.of(File, path="/root/.kvpod-files-0123.tar"),
    ]
    kept = [
        Read.of(File, path="/etc/kvpod/lmcache@0.env"),
        Read.of(Sha1File, path="/usr/local/sbin/kvpod-x"),
        Read.of(Sysctl, keys=["net.core.rmem_max"]),
        Read.of(LoadedModules),
    ]
    assert [r.fact.__name__ for r in stale if not stales(effect, r.key)] == []
    assert [r.fact.__name__ for r in kept if stales(effect, r.key)] == []


@pytest.mark.parametrize(
    "command",
    [
        extract_command("/tmp/.kvpod-files-0123.tar", ["/etc/x"]),  # not a staging directory
        extract_command("/root/.kvpod-files-0123.tar", ["/etc/x"]) + " ; reboot",
        extract_command("/root/.kvpod-files-0123.tar", ["../etc/x"]),
        extract_command("/root/.kvpod-files-0123.tar", ["/etc/x"]).replace("tar -x", "tar -x -v"),
    ],
)
def test_any_other_command_is_not_taken_for_an_extraction(command: str) -> None:
    assert extracted(command) is None
    assert effect_of_command(command).everything


def test_the_bundle_command_is_the_one_the_operation_sends() -> None:
    commands, _ = _commands(FakeRemote(), _entries()[2:])
    upload, extract = commands
    assert isinstance(extract, StringCommand)
    assert extract.get_raw_value() == extract_command(upload.dest, ["/usr/local/sbin/kvpod-x"])


def test_a_local_file_is_streamed_not_read_whole(tmp_path: Path, monkeypatch) -> None:
    """A wheel (a local file) is checksummed and archived by streaming: never read into memory whole, its checksum
    made once per version of the file, and GNU tar gets it byte for byte."""
    from deploy.operations import bundle

    wheel = tmp_path / "big.whl"
    wheel.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, not text
    local = bundle.LocalFile(str(wheel))
    monkeypatch.setattr(bundle.LocalFile, "__call__", lambda self: pytest.fail("read whole"))
    monkeypatch.setattr(bundle, "SPOOL_BYTES", 1024)  # the archive goes to the local disk beyond this
    bundle._local_sha1.cache_clear()
    assert local.sha1() == local.sha1() == __import__("hashlib").sha1(wheel.read_bytes()).hexdigest()
    assert bundle._local_sha1.cache_info().misses == 1
    entry = Entry("/var/cache/kvpod/wheelhouse/big.whl", local, "644")
    out = bundle._archive_file([(entry, bundle._content(entry))])
    assert out._rolled  # spooled to disk, not held in memory
    with tarfile.open(fileobj=out) as tar:
        member = tar.getmember("var/cache/kvpod/wheelhouse/big.whl")
        assert member.mode == 0o644 and tar.extractfile(member).read() == wheel.read_bytes()  # type: ignore[union-attr]
