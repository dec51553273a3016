"""Whether a compiled extension links against the libraries a pip resolution brings (a pure judgement).

The inputs are what ``readelf -d`` and ``nm -D`` show of the extension and of the wheels' libraries; the
judgement is the dynamic loader's: every ``DT_NEEDED`` library must be found (in a resolved wheel, or a
library every Linux system has), and every undefined symbol of torch (``c10::``, ``at::``, ``torch::``,
``caffe2::``) or of the CUDA runtime (``cuda*``) must be exported by the libraries that provide them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MISSING = "MISSING"
SYSTEM = "system"
# Libraries of the C runtime and compiler every Linux node has (glibc, libstdc++, libgcc); never in a wheel.
SYSTEM_LIBRARIES = re.compile(
    r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so(\.\d+)*$"
)
TORCH_NAMESPACES = ("c10::", "at::", "torch::", "caffe2::")
# Prefixes a demangler puts before a C++ entity's name: what is left names the entity's namespace.
_DEMANGLED_PREFIXES = (
    "typeinfo for ",
    "typeinfo name for ",
    "vtable for ",
    "VTT for ",
    "guard variable for ",
    "construction vtable for ",
    "non-virtual thunk to ",
    "virtual thunk to ",
)
SHOWN_SYMBOLS = 20


@dataclass(frozen=True)
class Symbol:
    """An undefined dynamic symbol of an extension: its mangled name and its demangled form."""

    name: str
    demangled: str


@dataclass(frozen=True)
class Extension:
    """What an extension asks of the loader: the libraries it needs and the symbols it imports."""

    path: str
    needed: list[str]
    undefined: list[Symbol]


@dataclass(frozen=True)
class Libraries:
    """What the resolved wheels provide: each library file's package, and the symbols each library exports."""

    provider: dict[str, str]  # soname (file name) -> package that ships it
    exports: dict[str, frozenset[str]] = field(default_factory=dict)  # soname -> exported symbol names


def base_name(symbol: str) -> str:
    """A symbol's name without its version (``cudaMalloc@libcudart.so.12`` -> ``cudaMalloc``)."""
    return symbol.split("@", 1)[0]


def owner(symbol: Symbol) -> str | None:
    """``torch`` or ``cudart`` when the symbol is one of theirs, else None (libc, libstdc++, Python...)."""
    text = symbol.demangled
    for prefix in _DEMANGLED_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    # A return type may precede a template function's name: `void c10::foo<int>(...)`.
    head = text.split("(", 1)[0].split("<", 1)[0].rsplit(" ", 1)[-1]
    if head.startswith(TORCH_NAMESPACES):
        return "torch"
    name = base_name(symbol.name)
    if name.startswith(("cuda", "__cuda")):
        return "cudart"
    return None


def provider_of(library: str, libs: Libraries) -> str:
    """The package providing ``library``, ``system`` for a library every Linux system has, or MISSING."""
    if library in libs.provider:
        return libs.provider[library]
    if SYSTEM_LIBRARIES.match(library):
        return SYSTEM
    return MISSING


def judge_extension(ext: Extension, libs: Libraries) -> dict:
    """The linkage verdict of one extension: needed libraries with their provider, missing symbols, verdict.

    A torch or CUDA-runtime symbol is missing when no provided library among those the extension needs exports
    it (a library that is itself missing exports nothing).
    """
    needed = {lib: provider_of(lib, libs) for lib in ext.needed}
    missing_libs = sorted(lib for lib, who in needed.items() if who == MISSING)
    checked = {"torch": 0, "cudart": 0}
    missing: list[Symbol] = []
    available: set[str] = set()
    for lib, who in needed.items():
        if who not in (MISSING, SYSTEM):
            available |= libs.exports.get(lib, frozenset())
    for sym in ext.undefined:
        kind = owner(sym)
        if kind is None:
            continue
        checked[kind] += 1
        if base_name(sym.name) not in available:
            missing.append(sym)
    missing.sort(key=lambda s: s.demangled)
    return {
        "path": ext.path,
        "needed": needed,
        "missing_libraries": missing_libs,
        "symbols_checked": checked,
        "missing_symbols": {
            "count": len(missing),
            "first": [s.demangled for s in missing[:SHOWN_SYMBOLS]],
        },
        "verdict": "links" if not missing_libs and not missing else "broken",
    }


def judge(extensions: list[Extension], libs: Libraries) -> dict:
    """Every extension's verdict, and the pair's: ``works`` when each extension links, else ``broken``."""
    results = [judge_extension(ext, libs) for ext in sorted(extensions, key=lambda e: e.path)]
    ok = bool(results) and all(r["verdict"] == "links" for r in results)
    return {"extensions": results, "verdict": "works" if ok else "broken"}
