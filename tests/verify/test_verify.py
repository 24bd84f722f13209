"""End-to-end verifier tests on the interpreter (CPU): correct candidates pass, planted bugs are caught."""

from __future__ import annotations

import json

import pytest
import torch
from candidates import (
    ELEMENTWISE_CAND,
    ELEMENTWISE_REF,
    ELEMENTWISE_SIG,
    RMSNORM_CAND,
    RMSNORM_REF,
    RMSNORM_SIG,
    ROWSUM_CAND,
    ROWSUM_REF,
    ROWSUM_SIG,
    bug,
)

from p2t_core.verify import aot_compile_module, verify

pytestmark = pytest.mark.timeout(120)

ONE = dict(backend="interpret", dtypes=("float32",), shapes=[{"M": 5, "N": 37}], noncontiguous=False, seed=3)


def _one_failure(report, needle: str):
    assert not report.passed, report.render()
    msgs = [c.message for c in report.failures] + [report.error or ""]
    assert any(needle in m for m in msgs), report.render()


def test_elementwise_passes_all_dtypes_shapes_layouts():
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", seed=11)
    assert r.passed, r.render()
    assert {c.dtype for c in r.cases} == {"float32", "float16", "bfloat16"}
    assert {c.layout for c in r.cases} == {"contiguous", "strided", "transposed"}
    sizes = [c.bindings for c in r.cases]
    assert any(0 in b.values() for b in sizes) and any(set(b.values()) == {1} for b in sizes)
    assert any(b["N"] >= 1000 for b in sizes)
    assert all(c.status == "pass" for c in r.cases)
    json.dumps(r.to_dict())
    assert "PASSED" in r.render()


def test_rowsum_reduction_passes():
    r = verify(ROWSUM_REF, ROWSUM_CAND, ROWSUM_SIG, backend="interpret", seed=5)
    assert r.passed, r.render()


def test_module_with_eps_and_weight_passes():
    r = verify(RMSNORM_REF, RMSNORM_CAND, RMSNORM_SIG, backend="interpret", seed=7)
    assert r.passed, r.render()


def test_module_weight_is_overwritten():
    # A candidate that ignores the weight passes only if the weight were still ones: it must fail.
    cand = RMSNORM_CAND.replace("y = y.to(OUT.dtype.element_ty).to(tl.float32) * w.to(tl.float32)",
                                "y = y.to(OUT.dtype.element_ty).to(tl.float32)")
    r = verify(RMSNORM_REF, cand, RMSNORM_SIG, backend="interpret", dtypes=("float32",),
               shapes=[{"M": 3, "D": 33}], seed=1)
    _one_failure(r, "wrong values")


def test_missing_store_mask_is_a_write_outside_the_output():
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs, out.to(OUT.dtype.element_ty))")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "write outside the output")


def test_wrong_result_off_by_a_constant():
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs, (out + 1e-3).to(OUT.dtype.element_ty), mask=mask)")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "wrong values")


def test_nan_produced():
    cand = bug(ELEMENTWISE_CAND, STORE="out = tl.where(offs == 3, float('nan'), out)\n"
                                       "tl.store(OUT + offs, out.to(OUT.dtype.element_ty), mask=mask)")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "NaN where the reference has none")


def test_output_element_never_written():
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs, out.to(OUT.dtype.element_ty), mask=offs < n_elements - 1)")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "never written")


def test_hang_is_a_timeout():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="while True:\n    pass")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **{**ONE, "seed": 4}, timeout_s=2)
    _one_failure(r, "timeout after 2 s")


def test_segfault_is_a_crash():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="import ctypes\nctypes.string_at(0)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE)
    _one_failure(r, "worker crashed (signal 11)")
    assert "at candidate line 22" in r.cases[0].message, r.render()


def test_crash_in_one_case_leaves_the_others_to_a_fresh_worker():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="if x.shape[0] == 1:\n    import ctypes\n    ctypes.string_at(0)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",),
               shapes=[{"M": 1, "N": 5}, {"M": 3, "N": 5}], noncontiguous=False, seed=0)
    assert [c.status for c in r.cases] == ["fail", "pass"], r.render()
    assert "signal 11" in r.cases[0].message


def test_exception_in_one_case_is_that_case_only():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="if x.shape[0] == 1:\n    raise ValueError('boom')")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",),
               shapes=[{"M": 1, "N": 5}, {"M": 3, "N": 5}], noncontiguous=False, seed=0)
    assert [c.status for c in r.cases] == ["fail", "pass"], r.render()
    assert "ValueError: boom" in r.cases[0].message and "candidate line" in r.cases[0].message


def test_huge_allocation_hits_the_memory_limit():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="big = torch.empty(2**33, dtype=torch.uint8)\nbig.fill_(1)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE, memory_limit_mb=1024)
    _one_failure(r, "out of memory")


def test_modifying_an_input():
    cand = bug(ELEMENTWISE_CAND, PRELUDE="y.mul_(1.0001)")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "input modified: y")


def test_wrong_output_dtype():
    cand = bug(ELEMENTWISE_CAND, ALLOC="out = torch.empty((M, N), dtype=torch.float32, device=x.device)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **{**ONE, "dtypes": ("float16",)})
    _one_failure(r, "wrong dtype float32, expected float16")


def test_wrong_output_shape():
    cand = bug(ELEMENTWISE_CAND, RETURN="return out.reshape(-1)")
    _one_failure(verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE), "wrong shape (185,), expected (5, 37)")


def test_reference_raising_skips_the_case():
    ref = ROWSUM_REF + "\n\ndef rowsum_checked(x):\n    return x.sum(-1) + 0 * x.amax(-1)\n"
    cand = ROWSUM_CAND + "\n\ndef rowsum_checked(x):\n    return rowsum(x)\n"
    sig = type(ROWSUM_SIG)(unit="rowsum_checked", kind="function", params=ROWSUM_SIG.params)
    r = verify(ref, cand, sig, backend="interpret", dtypes=("float32",), shapes=[{"M": 3, "N": 0}, {"M": 3, "N": 9}],
               noncontiguous=False, seed=0)
    assert r.passed, r.render()
    assert [c.status for c in r.cases] == ["skip", "pass"]
    assert r.cases[0].message.startswith("reference raised")


def test_candidate_that_does_not_load():
    r = verify(ELEMENTWISE_REF, "import torch\nraise ImportError('nope')\n", ELEMENTWISE_SIG, **ONE)
    _one_failure(r, "candidate failed to load: ImportError: nope")


def test_worker_environment_is_clean(monkeypatch, tmp_path):
    monkeypatch.setenv("P2T_TEST_SECRET", "hunter2")
    check = ("import os\n"
             "assert 'P2T_TEST_SECRET' not in os.environ, 'secret leaked'\n"
             f"assert os.environ['HOME'] != {str(__import__('pathlib').Path.home())!r}, 'real HOME'\n"
             "assert os.environ.get('TRITON_INTERPRET') == '1'\n"
             "assert os.getcwd().startswith(os.path.dirname(os.environ['HOME'])), os.getcwd()")
    cand = bug(ELEMENTWISE_CAND, PRELUDE=check)
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, **ONE)
    assert r.passed, r.render()


def test_aot_compiles_for_sm90_and_reports_shared_memory():
    kernels = aot_compile_module(ELEMENTWISE_CAND, ELEMENTWISE_SIG, dtypes=("float32", "bfloat16"))
    assert kernels and all(k.ok for k in kernels), kernels
    assert {k.signature["X"] for k in kernels} == {"*fp32", "*bf16"}
    assert all(k.name == "_silu_axpy_0_kernel" and k.shared is not None for k in kernels)
    assert kernels[0].signature["BLOCK"] == "constexpr" and kernels[0].constexprs["BLOCK"] == 256
    # Specialized like the JIT: unit strides become constexpr 1, aligned pointers get tt.divisibility=16.
    assert kernels[0].constexprs["sxn"] == 1 and {"X", "Y", "OUT"} <= set(kernels[0].divisible)
    assert all(k.registers for k in kernels)  # read from the cubin's .nv.info


AUTOTUNED = '''
import torch
import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"BLOCK": 128}, num_warps=4), triton.Config({"BLOCK": 512}, num_warps=8)],
                 key=["n"])
@triton.jit
def _double_0_kernel(X, OUT, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(X + offs, mask=mask) * 2  #BODY
    tl.store(OUT + offs, y, mask=mask)


def double(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    if n:
        _double_0_kernel[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, out, n)
    return out
'''


def test_aot_records_every_autotune_config():
    from p2t_core.signature import Signature, TensorParam

    sig = Signature(unit="double", kind="function", params=(TensorParam("x", ("N",)),))
    r = verify("def double(x):\n    return x * 2\n", AUTOTUNED, sig, backend="aot", dtypes=("float32",),
               shapes=[{"N": 300}], seed=0)
    assert r.passed, r.render()
    assert sorted((k.constexprs["BLOCK"], k.num_warps) for k in r.kernels) == [(128, 4), (512, 8)]
    assert all(k.ok and k.shared is not None for k in r.kernels)
    assert "sm_90 compile: 2/2 ok" in r.render() and r.cases[0].status == "pass"
    # Under the interpreter the cases take the configs in turn, so a bug in the second config is caught.
    buggy = bug(AUTOTUNED, BODY="y = tl.load(X + offs, mask=mask) * 2 + (BLOCK == 512)")
    r = verify("def double(x):\n    return x * 2\n", buggy, sig,
               backend="interpret", dtypes=("float32",), shapes=[{"N": 300}, {"N": 301}], noncontiguous=False, seed=0)
    assert [c.status for c in r.cases] == ["pass", "fail"], r.render()


@pytest.mark.gpu
def test_cuda_backend_elementwise():
    assert torch.cuda.is_available()
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="cuda", seed=1)
    assert r.passed, r.render()


def test_missing_load_mask_reads_the_nan_guard_band():
    cand = ROWSUM_CAND.replace("x = tl.load(X + row * sxm + cols * sxn, mask=cols < N, other=0.0)",
                               "x = tl.load(X + row * sxm + cols * sxn)")
    r = verify(ROWSUM_REF, cand, ROWSUM_SIG, **ONE)
    _one_failure(r, "NaN where the reference has none")


TUPLE_REF = '''
import torch


def split_stats(x):
    return x.sum(-1), x * 2
'''

TUPLE_CAND = ROWSUM_CAND + '''

@triton.jit
def _split_stats_1_kernel(X, OUT, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask).to(tl.float32)  # no bf16 arithmetic in the interpreter
    tl.store(OUT + offs, (x * 2).to(OUT.dtype.element_ty), mask=mask)


def split_stats(x):
    xc = x.contiguous()
    twice = torch.empty_like(xc)
    n = xc.numel()
    if n:
        _split_stats_1_kernel[(triton.cdiv(n, 128),)](xc, twice, n, BLOCK=128)
    return rowsum(x), twice  #RETURN
'''


def test_tuple_outputs_compared_one_by_one():
    from p2t_core.signature import Signature, TensorParam

    sig = Signature(unit="split_stats", kind="function", params=(TensorParam("x", ("M", "N")),), n_outputs=2)
    kw = dict(backend="interpret", dtypes=("float32", "bfloat16"), shapes=[{"M": 3, "N": 37}, {"M": 0, "N": 5}],
              seed=1)
    r = verify(TUPLE_REF, TUPLE_CAND, sig, **kw)
    assert r.passed, r.render()
    r = verify(TUPLE_REF, bug(TUPLE_CAND, RETURN="return rowsum(x), twice + 1"), sig, **kw)
    _one_failure(r, "output 1: wrong values")


BOOL_CAND = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _positive_0_kernel(X, OUT, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(OUT + offs, x > 0, mask=mask)  #STORE


def positive(x):
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    if x.numel():
        _positive_0_kernel[(triton.cdiv(x.numel(), 64),)](x, out, x.numel(), BLOCK=64)
    return out
'''


def test_bool_outputs_exact_and_poisoned():
    from p2t_core.signature import Signature, TensorParam

    sig = Signature(unit="positive", kind="function", params=(TensorParam("x", ("N",)),))
    ref = "def positive(x):\n    return x > 0\n"
    kw = dict(backend="interpret", dtypes=("float16",), shapes=[{"N": 7}, {"N": 100}], seed=0)
    r = verify(ref, BOOL_CAND, sig, **kw)
    assert r.passed, r.render()
    r = verify(ref, bug(BOOL_CAND, STORE="tl.store(OUT + offs, x > 0, mask=mask & (offs != 3))"), sig, **kw)
    _one_failure(r, "1 of 7 elements never written")


def test_an_interpreter_broken_by_numpy_gives_a_setup_error_not_a_wrong_candidate(monkeypatch):
    from p2t_core.verify import interpreter_compat

    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 5))
    monkeypatch.setattr(interpreter_compat, "self_check", lambda: "TypeError: only 0-dimensional arrays")
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, **ONE)
    assert not r.passed and "fails its self-check" in r.error and "numpy<2.4" in r.error
    assert all(c.message.startswith("not run: ") for c in r.cases)


CEIL_OF_SIN = '''import math
import torch


def ceil_of_sin(x: torch.Tensor, u: torch.Tensor):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            s = math.ceil(math.sin(x[i, j]))
            out[i, j] = s / (1.0 + math.exp(-s)) + u[i, j]
    return out
'''


def test_a_loop_reference_is_held_to_what_float32_math_does_to_it():
    """`math` computes a loop reference's elements in float64: where float32 `sin` rounds to exactly -1.0, `ceil`
    steps to -1 in every float32 kernel and stays 0 in float64. The eager yardstick runs the loop with `math` rounded
    to the tested dtype, so the compiler's own kernel passes (it failed this seed before) and a wrong one does not."""
    from p2t_core.engine import compile_unit_source

    unit = compile_unit_source(CEIL_OF_SIN, "ceil_of_sin")
    one = dict(backend="interpret", dtypes=("float32",), shapes=[{"x_0": 64, "x_1": 1024}], noncontiguous=False,
               seed=0)
    report = verify(CEIL_OF_SIN, unit.module_source, unit.signature, **one)
    assert report.passed, report.render()
    wrong = unit.module_source.replace("tl.ceil(", "tl.floor(")
    assert wrong != unit.module_source
    _one_failure(verify(CEIL_OF_SIN, wrong, unit.signature, **one), "wrong values")
