"""Gather the evidence for one vLLM and LMCache pair from the wheels themselves (slow; downloads ~1 GB).

    python3 -m deploy.compat.gather --vllm 0.11.0 --lmcache 0.5.6

1. ``pip install --dry-run --report`` resolves ``vllm==X lmcache==Y`` for CPython 3.12 on Linux x86_64 (binary
   wheels only), as a node's ``pip install`` would: the torch and CUDA runtime versions come from there.
2. ``pip download --no-deps`` fetches only the LMCache wheel, the torch wheel and the CUDA runtime wheel(s) of
   that resolution, into a cache (``--cache``; a rerun downloads nothing).
3. The ELF files of LMCache's compiled extensions are read (``readelf -d``, ``nm -D``, ``c++filt``) and judged
   against the libraries those wheels ship (deploy.compat.linkage).

The evidence is written as ``evidence/vllm-X_lmcache-Y.json`` beside the table; add or update the pair's row
in ``table.toml`` with the verdict it prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from deploy.compat import EVIDENCE_DIR, evidence_name
from deploy.compat.elf import exported, read_extension
from deploy.compat.linkage import Libraries, judge

CACHE = Path("/var/tmp/kvpod-compat-cache")
PYTHON_VERSION = "3.12"
# The manylinux tags a glibc 2.35 node (Ubuntu 22.04) accepts, newest first, as pip's own tag list orders them.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
CUDA_RUNTIME_PREFIX = "nvidia-cuda-runtime"


def _pip(*args: str) -> subprocess.CompletedProcess:
    # A machine-wide constraints file would bend the resolution away from what a node resolves.
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    target = ["--python-version", PYTHON_VERSION, "--only-binary=:all:"]
    for platform in PLATFORMS:
        target += ["--platform", platform]
    cmd = [sys.executable, "-m", "pip", *args, *target]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def resolve(vllm: str, lmcache: str, cache: Path) -> tuple[dict, str]:
    """pip's installation report for the pair ({} and pip's last error line when it does not resolve)."""
    report = cache / f"report-vllm-{vllm}_lmcache-{lmcache}.json"
    done = _pip(
        "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
        f"vllm=={vllm}", f"lmcache=={lmcache}",
    )  # fmt: skip
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        return {}, (errors[-1] if errors else done.stderr.strip()[-300:])
    return json.loads(report.read_text()), ""


def wheels_to_check(report: dict) -> dict[str, tuple[str, str]]:
    """Package -> (version, wheel file name) of the wheels whose files the linkage is checked against."""
    out = {}
    for item in report["install"]:
        name = item["metadata"]["name"].lower()
        if name in ("lmcache", "torch") or name.startswith(CUDA_RUNTIME_PREFIX):
            out[name] = (item["metadata"]["version"], item["download_info"]["url"].rsplit("/", 1)[-1])
    return out


def download(name: str, version: str, filename: str, cache: Path) -> Path:
    """The wheel, from the cache or fetched by ``pip download --no-deps``."""
    wheels = cache / "wheels"
    path = wheels / filename
    if not path.exists():
        done = _pip("download", "--no-deps", "--quiet", "--dest", str(wheels), f"{name}=={version}")
        if done.returncode != 0 or not path.exists():
            raise SystemExit(f"pip download {name}=={version} failed: {done.stderr.strip()[-500:]}")
    return path


def unpack_libraries(wheel: Path, cache: Path) -> dict[str, Path]:
    """The shared libraries (``*.so``, ``*.so.N``) of a wheel by their path in it, unpacked once under the cache."""
    dest = cache / "unpacked" / wheel.stem
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".so") or ".so." in Path(n).name]
        for name in names:
            if not (dest / name).exists():
                zf.extract(name, dest)
    return {name: dest / name for name in names}


def gather(vllm: str, lmcache: str, cache: Path) -> dict:
    """The evidence for one pair (see the module's docstring)."""
    cache.mkdir(parents=True, exist_ok=True)
    evidence: dict = {
        "vllm": vllm,
        "lmcache": lmcache,
        "python": PYTHON_VERSION,
        "platform": PLATFORMS[0],
        "gathered": datetime.date.today().isoformat(),
    }
    report, error = resolve(vllm, lmcache, cache)
    if not report:
        return {**evidence, "resolution_error": error, "resolution": {}, "extensions": [], "verdict": "broken"}
    evidence["resolution"] = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower())
    }
    wanted = wheels_to_check(report)
    files = {name: unpack_libraries(download(name, v, f, cache), cache) for name, (v, f) in wanted.items()}
    evidence["wheels"] = sorted(f for _, f in wanted.values())
    provider = {path.name: name for name, paths in files.items() for path in paths.values()}
    paths = {path.name: path for paths in files.values() for path in paths.values()}
    # LMCache's own compiled modules; libraries a wheel bundles (``lmcache.libs/``) only provide.
    own = {label: path for label, path in files["lmcache"].items() if label.startswith("lmcache/")}
    extensions = [read_extension(path, label) for label, path in own.items()]
    wanted_libs = {lib for ext in extensions for lib in ext.needed if lib in provider}
    libs = Libraries(provider, {lib: exported(paths[lib]) for lib in sorted(wanted_libs)})
    return {**evidence, **judge(extensions, libs)}


def summary(evidence: dict) -> str:
    """One line: the verdict and what broke it."""
    if evidence.get("resolution_error"):
        return f"broken: does not resolve ({evidence['resolution_error']})"
    parts = []
    for ext in evidence["extensions"]:
        missing = ext["missing_libraries"]
        count = ext["missing_symbols"]["count"]
        if missing or count:
            parts.append(f"{ext['path']}: {', '.join(missing) or 'no library'} missing, {count} symbols missing")
    return f"{evidence['verdict']}: " + ("; ".join(parts) if parts else "every extension links")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.compat.gather", description=__doc__.split("\n")[0])
    parser.add_argument("--vllm", required=True, help="the vLLM version, e.g. 0.11.0")
    parser.add_argument("--lmcache", required=True, help="the LMCache version, e.g. 0.5.6")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where wheels are kept (default {CACHE})")
    parser.add_argument("--out", type=Path, default=EVIDENCE_DIR, help="where the evidence is written")
    args = parser.parse_args(argv)
    start = time.monotonic()
    evidence = gather(args.vllm, args.lmcache, args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / evidence_name(args.vllm, args.lmcache)
    path.write_text(json.dumps(evidence, indent=1, sort_keys=True) + "\n")
    torch = evidence["resolution"].get("torch", "-")
    cuda = next((v for k, v in evidence["resolution"].items() if k.startswith(CUDA_RUNTIME_PREFIX)), "-")
    print(f"{path} ({time.monotonic() - start:.0f} s)")
    print(f"vllm {args.vllm}, lmcache {args.lmcache}, torch {torch}, cuda runtime {cuda}: {summary(evidence)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
