"""In-process unit tests of the verifier's parts (no worker): case generation, comparison rules, guard bands."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from p2t_core.signature import InitArg, ModuleTensor, ScalarParam, Signature, TensorParam
from p2t_core.verify.cases import MAX_ELEMS, build_cases, shape_cases
from p2t_core.verify.compare import compare_output
from p2t_core.verify.guard import GUARD, AllocationGuard, guarded_input
from p2t_core.verify.report import CaseResult, KernelResult, VerifyReport

MATMUL = Signature(unit="mm", kind="function", params=(TensorParam("a", ("M", "K")), TensorParam("b", ("K", "N"))))


def _numels(sig, b):
    return [math.prod(b[d] if isinstance(d, str) else d for d in t.dims) for t in sig.tensor_params]


@pytest.mark.parametrize("seed", range(20))
def test_shape_cases_cover_the_edges(seed):
    cases = shape_cases(MATMUL, seed)
    assert 4 <= len(cases) <= 6
    assert all(set(c) == {"M", "K", "N"} for c in cases)
    assert any(all(v == 1 for v in c.values()) for c in cases)  # size 1 for every variable
    assert any(0 in c.values() for c in cases)  # an empty case
    assert any(c["K"] >= 1000 for c in cases)  # past typical blocks, on a last dim
    assert all(max(_numels(MATMUL, c)) <= MAX_ELEMS for c in cases)
    assert any(v % 2 == 1 and v > 1 for c in cases[:1] for v in c.values())  # small odd sizes
    assert shape_cases(MATMUL, seed) == cases  # deterministic for a seed


def test_min_sizes_are_respected_and_no_empty_case_below_them():
    sig = Signature(unit="f", kind="function", params=(TensorParam("x", ("M", "N")),), min_sizes={"M": 3, "N": 1})
    for seed in range(10):
        cases = shape_cases(sig, seed)
        assert all(c["M"] >= 3 and c["N"] >= 1 for c in cases)


def test_fixed_dims_and_no_size_vars():
    sig = Signature(unit="f", kind="function", params=(TensorParam("x", (4, 3)), ScalarParam("s", "int")))
    assert shape_cases(sig, 0) == [{}]
    cases = build_cases(sig, ("float32", "float16"), None, 0, noncontiguous=True)
    assert [(c.dtype, c.layout) for c in cases] == [("float32", "contiguous"), ("float32", "strided"),
                                                     ("float32", "transposed"), ("float16", "contiguous"),
                                                     ("float16", "strided"), ("float16", "transposed")]


def test_module_signature_size_vars_and_explicit_shapes():
    sig = Signature(unit="M", kind="module", params=(TensorParam("x", ("B", "D")),),
                    init_args=(InitArg("dim", "int", size_var="D"),), module_tensors=(ModuleTensor("w", ("D",)),))
    cases = build_cases(sig, ("float32",), [{"B": 2, "D": 3}], 1, noncontiguous=False)
    assert [c.bindings for c in cases] == [{"B": 2, "D": 3}]
    with pytest.raises(ValueError, match="lacks size variables"):
        build_cases(sig, ("float32",), [{"B": 2}], 1, noncontiguous=False)


def _cmp(cand, truth, eager=None, rtol=1e-5):
    return compare_output("output", cand, truth, eager, rtol)


def test_compare_fp32_tolerance_and_offsets():
    truth = torch.randn(100, dtype=torch.float64)
    assert _cmp(truth.float(), truth).ok
    v = _cmp(truth.float() + 1e-3, truth)
    assert not v.ok and "wrong values" in v.message
    assert v.max_abs == pytest.approx(1e-3, rel=1e-3)


def test_compare_eager_error_widens_the_tolerance():
    truth = torch.randn(1000, dtype=torch.float64) * 100
    eager = (truth.float() * (1 + 1e-4)).to(torch.float16)  # torch itself is this far off
    cand = (truth * (1 + 2e-2)).to(torch.float16)
    assert not _cmp(cand, truth, eager, rtol=1e-2).ok
    cand = (truth * (1 + 1.2e-2)).to(torch.float16)
    assert _cmp(cand, truth, (truth * (1 + 8e-3)).to(torch.float16), rtol=1e-2).ok


def test_compare_nan_and_inf_rules():
    truth = torch.tensor([1.0, float("nan"), float("inf"), -2.0], dtype=torch.float64)
    good = truth.float()
    assert _cmp(good, truth).ok
    v = _cmp(torch.tensor([float("nan"), float("nan"), float("inf"), -2.0]), truth)
    assert not v.ok and "NaN where the reference has none" in v.message
    v = _cmp(torch.tensor([1.0, 0.0, float("inf"), -2.0]), truth)
    assert not v.ok and "where the reference has NaN" in v.message
    v = _cmp(torch.tensor([1.0, float("nan"), float("-inf"), -2.0]), truth)
    assert not v.ok and "infinity mismatch" in v.message
    # fp16 overflow: the truth rounded to fp16 is inf, so inf is right.
    big = torch.tensor([70000.0, 1.0], dtype=torch.float64)
    assert _cmp(big.to(torch.float16), big, big.to(torch.float16), rtol=1e-2).ok


def test_compare_shape_dtype_and_ints():
    truth = torch.randn(3, 4, dtype=torch.float64)
    assert "wrong shape" in _cmp(torch.zeros(4, 3), truth).message
    assert "wrong dtype float16, expected float32" in _cmp(truth.half(), truth, truth.float()).message
    idx = torch.tensor([0, 2, 1])
    assert _cmp(idx.clone(), idx, idx).ok
    assert not _cmp(torch.tensor([0, 2, 2]), idx, idx).ok
    assert _cmp(torch.empty(0, 5), torch.empty(0, 5, dtype=torch.float64)).ok


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool])
def test_allocation_guard_poisons_and_detects_out_of_bounds(dtype):
    guard = AllocationGuard()
    with guard.active():
        t = torch.empty((3, 5), dtype=dtype)
        z = torch.zeros(7, dtype=dtype)
        f = torch.full((2,), 1, dtype=dtype)
        e = torch.empty_like(t.t())  # keeps the transposed strides, like torch does
    assert torch.empty is guard._originals["empty"]
    assert len(guard.allocations) == 4
    g = guard.owner(t)
    assert g is not None and g.poisoned_count(t) == 15 and g.guards_intact()
    assert bool((z == 0).all()) and guard.owner(z).poisoned_count(z) == 0
    assert bool((f == 1).all())
    assert e.stride() == torch.empty_like(t.t()).stride()
    t.view(-1)[:14] = 1
    assert g.poisoned_count(t) == 1
    g.buffer[GUARD + 15] = 0  # one element past the end
    assert not g.guards_intact()


def test_guarded_inputs_layouts_and_snapshots():
    value = torch.randn(4, 6)
    for layout, contiguous in (("contiguous", True), ("strided", False), ("transposed", False)):
        g = guarded_input(value, layout, "cpu")
        assert torch.equal(g.view, value) and g.view.is_contiguous() == contiguous
        assert g.unchanged()
        assert torch.isnan(g.buffer[:GUARD]).all()
        g.view[0, 0] += 1
        assert not g.unchanged()


def test_report_render_and_dict():
    r = VerifyReport(passed=False, backend="interpret", seed=3,
                     cases=[CaseResult(0, {"M": 3}, "float32", "contiguous", "pass", 1e-7, 1e-6, 1e-5),
                            CaseResult(1, {"M": 0}, "float16", "strided", "fail", message="write outside the output")],
                     kernels=[KernelResult("_k_0_kernel", {"X": "*fp32", "B": "constexpr"}, {"B": 64}, ok=True,
                                           shared=0, registers=12)])
    text = r.render()
    assert "write outside the output" in text and "FAILED" in text and "B=64" in text and "seed 3" in text
    assert r.to_dict()["cases"][1]["status"] == "fail"


def test_cuda_backend_without_a_gpu_is_a_clean_failure():
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    from p2t_core.verify import verify

    r = verify("def f(x):\n    return x\n", "def f(x):\n    return x\n",
               Signature(unit="f", kind="function", params=(TensorParam("x", ("N",)),)), backend="cuda", seed=0)
    assert not r.passed and "no CUDA device" in r.error
    with pytest.raises(ValueError, match="unknown backend"):
        verify("", "", MATMUL, backend="tpu")


_dim = st.one_of(st.sampled_from(["A", "B", "C"]), st.integers(1, 8))


@settings(max_examples=60, deadline=None)
@given(dims=st.lists(st.lists(_dim, min_size=0, max_size=4), min_size=1, max_size=3),
       mins=st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(0, 6)), seed=st.integers(0, 2**31 - 1))
def test_shape_cases_invariants(dims, mins, seed):
    sig = Signature(unit="f", kind="function",
                    params=tuple(TensorParam(f"t{i}", tuple(d)) for i, d in enumerate(dims)), min_sizes=mins)
    cases = shape_cases(sig, seed)
    assert cases == shape_cases(sig, seed)
    assert len({tuple(sorted(c.items())) for c in cases}) == len(cases)
    for c in cases:
        assert set(c) == set(sig.size_vars)
        assert all(c[v] >= mins.get(v, 0) for v in c)
        smallest = {v: max(mins.get(v, 0), 1) for v in c}
        if max(_numels(sig, smallest), default=0) <= MAX_ELEMS // 8:
            assert max(_numels(sig, c), default=0) <= MAX_ELEMS
    if any(mins.get(v, 0) == 0 for v in sig.size_vars):
        assert any(0 in c.values() for c in cases)
