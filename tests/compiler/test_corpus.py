"""Every corpus unit is translated and verified against its own Python on the Triton interpreter (CPU).

The verifier generates the edge cases (small odd sizes, size 1, a long last dim, an empty dim, block edges,
strided and transposed inputs); a case's explicit shapes fix the parameters' ranks and add one more binding.
"""

from __future__ import annotations

import math
import zlib

import pytest

from p2t_core.engine import compile_units
from p2t_core.translate import bindings_from_shapes
from p2t_core.verify import shape_cases, verify

from .corpus import CORPUS, KNOWN_BROKEN, NAMES, TRANSLATE_ONLY, Case


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[case.name])] if case.name in KNOWN_BROKEN else []
    return pytest.param(case, id=case.name, marks=marks)


def translate(case: Case):
    result = compile_units(case.source, f"<{case.name}>", unit=case.unit_name, shapes=case.shapes or None,
                           keep_going=False)
    assert len(result.units) == 1
    return result.units[0]


def seed_of(case: Case) -> int:
    return zlib.crc32(case.name.encode())


def case_report(case: Case, unit, backend: str = "interpret"):
    """The verifier's report of a translated case (scripts/gpu_corpus.py runs it with backend "cuda")."""
    seed = seed_of(case)
    shapes = shape_cases(unit.signature, seed)
    if case.shapes:
        explicit = bindings_from_shapes(unit.signature, case.shapes)
        shapes = [explicit] + [s for s in shapes if s != explicit]
        if backend == "interpret" and max(len(v) for v in case.shapes.values()) >= 3:
            # 3-D/4-D: the generated "block edges" binding can mean 16k short rows, one program each, which
            # takes the interpreter over a minute (see KNOWN_FAILURES.md); keep the small ones.
            shapes = [s for s in shapes if s is explicit or math.prod(s.values()) <= 8192]
    return verify(case.source, unit.module_source, unit.signature, backend=backend, dtypes=case.dtypes,
                  shapes=shapes, seed=seed)


def verify_case(case: Case):
    unit = translate(case)
    if case.kernels is not None:
        assert unit.n_kernels == case.kernels, f"{case.name}: expected {case.kernels} kernel(s), got {unit.n_kernels}"
    report = case_report(case, unit)
    assert report.passed, f"{case.name}:\n{report.render()}\n--- module ---\n{unit.module_source}"
    return report


def test_corpus_is_large_and_distinct():
    assert len(CORPUS) >= 150
    assert len(set(NAMES)) == len(NAMES)
    assert len({c.source for c in CORPUS}) == len(CORPUS)
    assert set(KNOWN_BROKEN) <= set(NAMES), set(KNOWN_BROKEN) - set(NAMES)


@pytest.mark.parametrize("case", [_param(c) for c in CORPUS])
def test_translate_and_verify(case: Case):
    verify_case(case)


@pytest.mark.parametrize("case", [_param(c) for c in TRANSLATE_ONLY])
def test_translate_only(case: Case):
    """numpy-style reductions (`axis=`, `keepdims=`) cannot run on torch tensors: translation only."""
    unit = translate(case)
    assert unit.n_kernels >= 1
    compile(unit.module_source, f"<{case.name}>", "exec")
