"""Divisions that may be by zero on purpose are IEEE divisions on the GPU too.

Triton spells `x / y` of fp32 as `div.full.f32`, an approximation: on the H200 the std of one element (0 / 0 in
torch, NaN) came out a number, in the compiler's modules and in the LLM's copies of them. With the divisor an IEEE
division, it still did where the centred value is a product minus its mean: the GPU fuses that into one fma, whose
residue (the product's rounding error) / 0 is inf; so the sum of squares of one element is set to 0 as in torch.
The interpreter divides with numpy and never fuses, so only the emitted source and the PTX show the difference.
"""

from __future__ import annotations

import pytest
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from p2t_core.engine import compile_units
from p2t_core.llm.prompt import unit_signature
from p2t_core.verify import verify

STD = "import torch\n\ndef f(x):\n    return torch.std(x, 0) + x.var(-1, unbiased=False).sum()\n"


def test_the_corrected_variance_divides_as_ieee_and_the_biased_one_need_not():
    module = compile_units(STD, "u.py", unit="f").units[0].module_source
    lines = [line.strip() for line in module.splitlines()]
    # std's divisor max(N - 1, 0), in the kernel's one-tile and looped paths, of a sum of squares that is 0 for one
    # element; the biased var divides by N >= 1
    assert lines.count("v6 = tl.div_rn(v5, v3)") == 2 and lines.count("v5 = tl.where(v1 != 0, red5, 0.0)") == 2
    assert lines.count("v1 = s0 > 1.0") == 2 and "v2 = red4 / s0" in lines


@triton.jit
def _centred_product_kernel(X, Y, N, Z):
    xy = tl.load(X) * tl.load(Y)
    tl.store(Z, xy - xy / tl.load(N))


def test_a_centred_product_is_one_fma_on_the_gpu():
    """Why one element's sum of squares is forced to 0: x * y - mean compiles to fma(x, y, -mean) on sm_90."""
    src = ASTSource(_centred_product_kernel, signature={"X": "*fp32", "Y": "*fp32", "N": "*fp32", "Z": "*fp32"},
                    constexprs={})
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["ptx"]
    assert any(line.strip().startswith("fma.rn.f32") for line in ptx.splitlines())


@pytest.mark.timeout(120)
def test_one_row_gives_torchs_nan():
    module = compile_units(STD, "u.py", unit="f").units[0].module_source
    sig = unit_signature(STD, "f", "u.py")
    report = verify(STD, module, sig, backend="interpret", dtypes=("float32",), seed=0, noncontiguous=False,
                    shapes=[{d: 1 if i == 0 else 7 for i, d in enumerate(sig.size_vars)}])
    assert report.passed, report.render()


def _ptx_divisions(fn) -> list[str]:
    src = ASTSource(fn, signature={"X": "*fp32", "Y": "*fp32", "Z": "*fp32"}, constexprs={})
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["ptx"]
    return [line.split()[0] for line in ptx.splitlines() if line.strip().startswith("div.")]


@triton.jit
def _slash_kernel(X, Y, Z):
    tl.store(Z, tl.load(X) / tl.load(Y))


@triton.jit
def _div_rn_kernel(X, Y, Z):
    tl.store(Z, tl.div_rn(tl.load(X), tl.load(Y)))


def test_slash_is_the_approximate_division_and_div_rn_the_ieee_one():
    assert _ptx_divisions(_slash_kernel) == ["div.full.f32"]
    assert _ptx_divisions(_div_rn_kernel) == ["div.rn.f32"]
