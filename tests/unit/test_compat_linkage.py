"""The linkage judgement on small synthetic extensions: libraries found or missing, torch and CUDA runtime
symbols exported or not, and what is not torch's left alone."""

from __future__ import annotations

from deploy.compat.gather import summary, wheels_to_check
from deploy.compat.linkage import MISSING, SYSTEM, Extension, Libraries, Symbol, base_name, judge, owner

CHECK_FAIL = Symbol("_ZN3c106detail14torchCheckFailEPKcS2_jS2_", "c10::detail::torchCheckFail(char const*, ...)")
EMPTY_CACHE = Symbol("_ZN2at4cuda10emptyCacheEv", "at::cuda::emptyCache()")
MALLOC = Symbol("cudaMalloc@libcudart.so.13", "cudaMalloc")
PRINTF = Symbol("printf@GLIBC_2.2.5", "printf")
PY_NONE = Symbol("_Py_NoneStruct", "_Py_NoneStruct")
TORCH_LIBS = {"libc10.so": "torch", "libtorch_cpu.so": "torch"}


def ext(needed: list[str], undefined: list[Symbol]) -> Extension:
    return Extension("lmcache/c_ops.so", needed, undefined)


def test_every_library_found_and_every_symbol_exported_links() -> None:
    libs = Libraries(
        {**TORCH_LIBS, "libcudart.so.13": "nvidia-cuda-runtime"},
        {
            "libc10.so": frozenset({CHECK_FAIL.name}),
            "libtorch_cpu.so": frozenset({EMPTY_CACHE.name}),
            "libcudart.so.13": frozenset({"cudaMalloc"}),
        },
    )
    e = ext(["libc10.so", "libtorch_cpu.so", "libcudart.so.13", "libc.so.6"], [CHECK_FAIL, EMPTY_CACHE, MALLOC, PRINTF])
    result = judge([e], libs)
    assert result["verdict"] == "works"
    (one,) = result["extensions"]
    assert one["needed"] == {
        "libc10.so": "torch",
        "libtorch_cpu.so": "torch",
        "libcudart.so.13": "nvidia-cuda-runtime",
        "libc.so.6": SYSTEM,
    }
    assert one["symbols_checked"] == {"torch": 2, "cudart": 1}
    assert one["missing_symbols"] == {"count": 0, "first": []}


def test_a_cuda_runtime_the_resolution_does_not_bring_is_missing_with_its_symbols() -> None:
    libs = Libraries({**TORCH_LIBS, "libcudart.so.12": "nvidia-cuda-runtime-cu12"}, {"libc10.so": frozenset()})
    result = judge([ext(["libc10.so", "libcudart.so.13"], [MALLOC])], libs)
    (one,) = result["extensions"]
    assert one["needed"]["libcudart.so.13"] == MISSING
    assert one["missing_libraries"] == ["libcudart.so.13"]
    assert one["missing_symbols"] == {"count": 1, "first": ["cudaMalloc"]}
    assert result["verdict"] == "broken"


def test_a_torch_symbol_the_resolved_torch_does_not_export_breaks_the_pair() -> None:
    libs = Libraries(TORCH_LIBS, {"libc10.so": frozenset({CHECK_FAIL.name}), "libtorch_cpu.so": frozenset()})
    result = judge([ext(["libc10.so", "libtorch_cpu.so"], [CHECK_FAIL, EMPTY_CACHE])], libs)
    (one,) = result["extensions"]
    assert one["missing_libraries"] == []
    assert one["missing_symbols"] == {"count": 1, "first": ["at::cuda::emptyCache()"]}
    assert one["verdict"] == "broken"


def test_a_symbol_exported_only_by_a_library_the_extension_does_not_need_is_missing() -> None:
    libs = Libraries(TORCH_LIBS, {"libc10.so": frozenset(), "libtorch_cpu.so": frozenset({CHECK_FAIL.name})})
    result = judge([ext(["libc10.so"], [CHECK_FAIL])], libs)
    assert result["extensions"][0]["missing_symbols"]["count"] == 1


def test_libc_and_python_symbols_are_not_checked() -> None:
    result = judge([ext(["libc.so.6", "libstdc++.so.6"], [PRINTF, PY_NONE])], Libraries({}))
    assert result["extensions"][0]["symbols_checked"] == {"torch": 0, "cudart": 0}
    assert result["verdict"] == "works"


def test_an_unknown_library_is_missing_even_without_symbols() -> None:
    result = judge([ext(["libfoo.so.1"], [])], Libraries({}))
    assert result["extensions"][0]["needed"] == {"libfoo.so.1": MISSING}
    assert result["verdict"] == "broken"


def test_no_extension_is_no_proof() -> None:
    assert judge([], Libraries({}))["verdict"] == "broken"


def test_the_first_twenty_missing_symbols_are_shown_sorted_and_all_counted() -> None:
    symbols = [Symbol(f"_ZN3c103f{i:02d}Ev", f"c10::f{i:02d}()") for i in range(25, 0, -1)]
    result = judge([ext(["libc10.so"], symbols)], Libraries({"libc10.so": "torch"}, {"libc10.so": frozenset()}))
    missing = result["extensions"][0]["missing_symbols"]
    assert missing["count"] == 25
    assert missing["first"] == [f"c10::f{i:02d}()" for i in range(1, 21)]


def test_owner_reads_the_namespace_of_the_entity_not_of_its_arguments() -> None:
    assert owner(Symbol("x", "typeinfo for c10::Error")) == "torch"
    assert owner(Symbol("x", "vtable for torch::autograd::AutogradMeta")) == "torch"
    assert owner(Symbol("x", "long c10::detail::maybe_wrap_dim_slow<long>(long, long, bool)")) == "torch"
    assert owner(Symbol("x", "c10::Half* at::TensorBase::data_ptr<c10::Half>() const")) == "torch"
    assert owner(Symbol("x", "pybind11::detail::type_caster<at::Tensor, void>::load(pybind11::handle, bool)")) is None
    assert owner(Symbol("x", "std::vector<at::Tensor>::reserve(unsigned long)")) is None
    assert owner(Symbol("__cudaRegisterFatBinary@libcudart.so.13", "__cudaRegisterFatBinary")) == "cudart"
    assert owner(PRINTF) is None


def test_base_name_drops_the_version() -> None:
    assert base_name("cudaMalloc@libcudart.so.12") == "cudaMalloc"
    assert base_name("memcpy@@GLIBC_2.14") == "memcpy"
    assert base_name("_ZN3c105ErrorD2Ev") == "_ZN3c105ErrorD2Ev"


def report_item(name: str, version: str) -> dict:
    url = f"https://files.example/{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return {"metadata": {"name": name, "version": version}, "download_info": {"url": url}}


def test_only_lmcache_torch_and_the_cuda_runtime_wheels_are_fetched() -> None:
    report = {
        "install": [
            report_item("vllm", "0.32.0"),
            report_item("LMCache", "0.5.6"),
            report_item("torch", "2.13.0"),
            report_item("nvidia-cuda-runtime", "13.0.96"),
            report_item("nvidia-cublas", "13.1.0"),
            report_item("cupy-cuda13x", "14.2.0"),
        ]
    }
    assert wheels_to_check(report) == {
        "lmcache": ("0.5.6", "LMCache-0.5.6-py3-none-any.whl"),
        "torch": ("2.13.0", "torch-2.13.0-py3-none-any.whl"),
        "nvidia-cuda-runtime": ("13.0.96", "nvidia_cuda_runtime-13.0.96-py3-none-any.whl"),
    }


def test_the_summary_names_what_broke_a_pair() -> None:
    libs = Libraries({"libc10.so": "torch"}, {"libc10.so": frozenset()})
    evidence = judge([ext(["libc10.so", "libcudart.so.13"], [CHECK_FAIL])], libs)
    assert summary(evidence) == "broken: lmcache/c_ops.so: libcudart.so.13 missing, 1 symbols missing"
    assert summary({"resolution_error": "ERROR: No matching distribution"}).startswith("broken: does not resolve")
