"""Divisions that may be by zero on purpose are IEEE divisions on the GPU too.

Triton spells `x / y` of fp32 as `div.full.f32`, an approximation: on the H200 the std of one element (0 / 0 in
torch, NaN) came out a number, in the compiler's modules and in the LLM's copies of them. The interpreter divides
with numpy, so only the emitted source and the PTX show the difference.
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
    # std's divisor max(N - 1, 0), in the kernel's one-tile and looped paths; the biased var divides by N >= 1
    assert module.count("tl.div_rn(") == 2 and "tl.div_rn(red4, v2)" in module and "v2 = red4 / s0" in module


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
