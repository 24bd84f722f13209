"""Every loop-style unit the compiler takes is translated to Triton and verified against its own Python loops.

The reference the verifier runs is the loop source itself (on the interpreter backend, small shapes: the loops
run element by element in Python), with the verifier's fresh random inputs, guard bands and poisoned outputs,
in-place `out` parameters included.
"""

import zlib
from dataclasses import replace

import pytest

from p2t_core.engine import compile_units
from p2t_core.signature import ScalarParam
from p2t_core.translate import bindings_from_shapes
from p2t_core.verify import verify

from .corpus import TWINS
from .test_graph_twins import TWIN_UNSUPPORTED

# Loops whose Python reference is only defined on part of the verifier's inputs (math.sqrt and math.log raise on
# the negative values a normal draw gives; torch returns NaN): verified on the domain, through the tensor twin's
# NaN-for-NaN semantics instead, which test_loops.py already checks equal to the loops on valid inputs.
DOMAIN_LIMITED = {"sqrt1d", "log1d"}

CASES = [t for t in TWINS if t[2] not in TWIN_UNSUPPORTED]


def tensor_shapes(shapes: dict) -> dict[str, tuple[int, ...]]:
    out = {}
    for k, v in shapes.items():
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "pos":
            v = v[1]
        if isinstance(v, (tuple, list)) and all(isinstance(d, int) for d in v):
            out[k] = tuple(v)
    return out


def with_case_scalars(sig, shapes: dict):
    """The case's scalar arguments as the signature's defaults, which the verifier passes: a loop bound such as
    `n` must agree with the tensors' sizes (`range(n)` over `x[i]`)."""
    init = shapes.get("__init__", {})
    params = tuple(replace(p, default=shapes[p.name]) if isinstance(p, ScalarParam) and p.name in shapes else p
                   for p in sig.params)
    init_args = tuple(replace(a, default=init[a.name]) if a.name in init and not a.size_var else a
                      for a in sig.init_args)
    return replace(sig, params=params, init_args=init_args)


def test_enough_verified_units():
    assert len(CASES) >= 60


@pytest.mark.parametrize("loop_src,twin_src,name,shapes", CASES, ids=[c[2] for c in CASES])
def test_loop_unit_verified_against_its_loops(loop_src, twin_src, name, shapes):
    tensors = tensor_shapes(shapes)
    unit = compile_units(loop_src, "<loop>", unit=name, shapes=tensors, keep_going=False).units[0]
    binding = bindings_from_shapes(unit.signature, tensors)
    reference = twin_src if name in DOMAIN_LIMITED else loop_src
    sig = with_case_scalars(unit.signature, shapes)
    report = verify(reference, unit.module_source, sig, backend="interpret", dtypes=("float32",),
                    shapes=[binding], seed=zlib.crc32(name.encode()))
    assert report.passed, f"{name}:\n{report.render()}\n--- module ---\n{unit.module_source}"
