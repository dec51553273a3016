"""The lab's wheelhouse: wheels of the vLLM stand-in and of an LMCache stand-in, built on this machine.

Lab VMs have no package index, so the lab pod installs vLLM and LMCache the way an air-gapped pod does:
from a wheelhouse that kvpod pushes (``vllm.install.wheelhouse``). Neither wheel is the real package:

- ``vllm`` (version ``0.0.0+standin``) installs the stand-in script as ``bin/vllm``;
- ``lmcache`` (version ``<pinned>+standin``) provides the module vLLM's ``LMCacheConnectorV1`` imports,
  ``lmcache.integration.vllm.vllm_v1_adapter``, empty, so kvpod's verify can check that the unit's
  interpreter imports it.

Wheels are zip files with a ``.dist-info`` directory (PEP 427); nothing is needed to build them.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import zipfile
from pathlib import Path

from .standin import standin_path

VLLM_STANDIN_VERSION = "0.0.0+standin"
ADAPTER = "lmcache/integration/vllm/vllm_v1_adapter.py"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(dest: Path, project: str, version: str, files: dict[str, bytes]) -> Path:
    """Write ``<project>-<version>-py3-none-any.whl`` holding ``files`` (archive path -> bytes)."""
    dist = f"{project}-{version}.dist-info"
    meta = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
        "Summary: kvpod lab stand-in, not the real package\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kvpod-lab\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    entries = {**files, **meta}
    record = [_record_line(name, data) for name, data in entries.items()] + [f"{dist}/RECORD,,"]
    path = dest / f"{project}-{version}-py3-none-any.whl"
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in sorted(entries.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | (0o755 if "/scripts/" in name else 0o644)) << 16
            whl.writestr(info, data)
        whl.writestr(zipfile.ZipInfo(f"{dist}/RECORD", date_time=(2024, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    tmp.replace(path)
    return path


def build_standin_wheelhouse(dest: Path, lmcache_version: str) -> list[Path]:
    """The lab's wheelhouse in ``dest`` (made afresh; identical bytes for identical inputs)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    script = standin_path().read_text().split("\n", 1)[1]
    vllm = build_wheel(
        dest,
        "vllm",
        VLLM_STANDIN_VERSION,
        {f"vllm-{VLLM_STANDIN_VERSION}.data/scripts/vllm": ("#!python\n" + script).encode()},
    )
    package = {
        "lmcache/__init__.py": f'__version__ = "{lmcache_version}+standin"\n'.encode(),
        "lmcache/integration/__init__.py": b"",
        "lmcache/integration/vllm/__init__.py": b"",
        ADAPTER: b'"""Stand-in: the module LMCacheConnectorV1 imports (the kvpod lab has no GPU)."""\n',
    }
    lmcache = build_wheel(dest, "lmcache", f"{lmcache_version}+standin", package)
    return [vllm, lmcache]
