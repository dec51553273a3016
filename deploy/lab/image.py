"""The VM image: Debian bookworm built with mmdebstrap once, cached under ``images/<key>/``.

The cache key hashes everything the image is made from (suite, mirror, package list, the files the
lab writes into it, the SSH public key, a recipe version), so a changed recipe builds a new image and
an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from . import guestfiles
from .errors import LabError
from .progress import QUIET, Progress

IMAGE_RECIPE_VERSION = 1
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOTFS_SIZE = "8G"  # sparse: the target keeps file-backed namespaces on its root fs

GUEST_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "dbus",
    "openssh-server",
    "nvme-cli",
    "fio",  # kvpod bench: the lab VMs have no package index to install it from
    "rdma-core",
    "ibverbs-providers",
    "e2fsprogs",
    "iproute2",
    "python3",
    "python3-venv",  # vllm.install makes a virtual environment (ensurepip)
    "procps",
    "iputils-ping",
    "curl",
    "sudo",
    "util-linux",
    "netbase",
)

MANIFEST = "image.json"


@dataclass(frozen=True)
class ImageRecipe:
    """What an image is made from."""

    packages: tuple[str, ...] = GUEST_PACKAGES
    suite: str = SUITE
    mirror: str = MIRROR
    version: int = IMAGE_RECIPE_VERSION


@dataclass(frozen=True)
class ImageInfo:
    """A built image: its cache key and the files a VM boots from."""

    key: str
    directory: Path
    rootfs: Path
    kernel: Path
    initrd: Path
    kernel_release: str


def image_cache_key(recipe: ImageRecipe, authorized_key: str) -> str:
    """A short hash of everything the image is built from (pure)."""
    material = {
        "version": recipe.version,
        "suite": recipe.suite,
        "mirror": recipe.mirror,
        "packages": sorted(set(recipe.packages)),
        "files": guestfiles.guest_files(authorized_key),
        "masked": guestfiles.MASKED_UNITS,
        "enabled": guestfiles.ENABLED_UNITS,
        "removed": guestfiles.REMOVED_FILES,
        "initramfs": guestfiles.initramfs_hook(),
        "rootfs_size": ROOTFS_SIZE,
    }
    blob = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def mmdebstrap_argv(recipe: ImageRecipe, rootfs: Path) -> list[str]:
    """The mmdebstrap command that builds the root filesystem tree (pure)."""
    return [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        "--format=directory",
        f"--include={','.join(recipe.packages)}",
        f"--essential-hook={guestfiles.initramfs_hook()}",
        recipe.suite,
        str(rootfs),
        recipe.mirror,
    ]


def _run(argv: list[str], what: str, timeout: float = 1800) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise LabError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def load_image(directory: Path) -> ImageInfo | None:
    """The image in ``directory`` if it was completely built, else None."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
        info = ImageInfo(
            key=data["key"],
            directory=directory,
            rootfs=directory / data["rootfs"],
            kernel=directory / data["kernel"],
            initrd=directory / data["initrd"],
            kernel_release=data["kernel_release"],
        )
    except (OSError, ValueError, KeyError):
        return None
    if all(p.is_file() for p in (info.rootfs, info.kernel, info.initrd)):
        return info
    return None


def _customize(root: Path, authorized_key: str) -> None:
    """Write the lab's guest files, enable and mask units, remove per-machine identity files."""
    for relative, (content, mode) in guestfiles.guest_files(authorized_key).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()  # never write through a link that points outside the tree
        path.write_text(content)
        path.chmod(mode)
    (root / "root/.ssh").chmod(0o700)
    for relative in guestfiles.REMOVED_FILES:
        (root / relative).unlink(missing_ok=True)
    _run(["chroot", str(root), "systemctl", "enable", *guestfiles.ENABLED_UNITS], "enabling guest units")
    _run(["chroot", str(root), "systemctl", "mask", *guestfiles.MASKED_UNITS], "masking guest units")
    _run(["chroot", str(root), "passwd", "--delete", "root"], "clearing the root password")


def _kernel_files(root: Path) -> tuple[Path, Path, str]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise LabError(f"expected one kernel in the image's /boot, found {[k.name for k in kernels]}")
    release = kernels[0].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise LabError(f"the image has kernel {release} but no initrd for it")
    return kernels[0], initrd, release


def build_image(
    directory: Path,
    recipe: ImageRecipe,
    authorized_key: str,
    progress: Progress = QUIET,
) -> ImageInfo:
    """Build the image into ``directory`` (which must not exist yet) and return it."""
    key = directory.name
    work = directory.with_name(f".build-{key}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "tree"
    work.mkdir(parents=True)
    try:
        with progress.step("image: debian root filesystem", f"building the Debian {recipe.suite} root fs"):
            _run(mmdebstrap_argv(recipe, tree), "mmdebstrap")
        with progress.step("image: customize"):
            _customize(tree, authorized_key)
            kernel, initrd, release = _kernel_files(tree)
            shutil.copy2(kernel, work / "vmlinuz")
            shutil.copy2(initrd, work / "initrd.img")
        with progress.step("image: root disk", "writing the root disk image"):
            rootfs = work / "rootfs.img"
            _run(["truncate", "-s", ROOTFS_SIZE, str(rootfs)], "truncate")
            _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(tree), str(rootfs)], "mkfs.ext4 -d")
        shutil.rmtree(tree)
        manifest = {
            "key": key,
            "rootfs": "rootfs.img",
            "kernel": "vmlinuz",
            "initrd": "initrd.img",
            "kernel_release": release,
            "recipe": asdict(recipe),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        work.rename(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = load_image(directory)
    if info is None:
        raise LabError(f"the image built in {directory} is incomplete")
    return info


def ensure_image(
    images_dir: Path, authorized_key: str, recipe: ImageRecipe | None = None, progress: Progress = QUIET
) -> ImageInfo:
    """The cached image for this recipe and key, built first if there is none."""
    recipe = recipe or ImageRecipe()
    key = image_cache_key(recipe, authorized_key)
    directory = images_dir / key
    cached = load_image(directory)
    if cached is not None:
        return cached
    info = build_image(directory, recipe, authorized_key, progress)
    prune_images(images_dir, keep=key)
    return info


def prune_images(images_dir: Path, keep: str) -> list[Path]:
    """Remove cached images other than ``keep``, and builds left behind by processes that died."""
    removed = []
    for entry in images_dir.iterdir() if images_dir.is_dir() else []:
        if entry.name == keep or not entry.is_dir():
            continue
        if entry.name.startswith(".build-"):
            pid = entry.name.rpartition("-")[2]
            if pid.isdigit() and Path(f"/proc/{pid}").exists():
                continue
        elif load_image(entry) is None:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
