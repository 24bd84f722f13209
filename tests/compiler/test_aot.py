"""Every kernel the compiler emits for the plugins' validation cases compiles ahead of time for sm_90
(Triton's GPUTarget("cuda", 90, 32)) without a GPU, within the H100's shared memory (232448 bytes).

Each case costs two worker processes (an interpreted run that records the launches, then the compiles):
about 15 s on two CPU cores, so the module is marked `slow`.
"""

from __future__ import annotations

import re

import pytest

from p2t_core.engine import compile_units
from p2t_core.plugins import default_plugins
from p2t_core.translate import bindings_from_shapes
from p2t_core.verify import H100_SHARED_LIMIT, aot_compile_module

pytestmark = pytest.mark.slow


def validation_cases():
    plugins = default_plugins()
    out = []
    for impl in plugins.pm.hook.p2t_validation_cases.get_hookimpls():
        for case in impl.function():
            out.append(pytest.param(case, id=f"{plugins.pm.get_name(impl.plugin)}:{case.name}"))
    return out


CASES = validation_cases()


def test_limit_is_the_h100s():
    assert H100_SHARED_LIMIT == 232448


def test_every_builtin_plugin_has_cases():
    names = {p.id.split(":")[0] for p in CASES}
    assert {"elementwise", "reduction", "matmul", "softmax"} <= names
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_validation_case_compiles_for_sm90(case):
    result = compile_units(case.source, f"<{case.name}>", unit=case.unit,
                           shapes=case.shapes[0] if case.shapes else None, keep_going=False)
    unit = result.units[0]
    shapes = [bindings_from_shapes(unit.signature, s) for s in case.shapes] or None
    kernels = aot_compile_module(unit.module_source, unit.signature, dtypes=case.dtypes, shapes=shapes)
    assert kernels, "no kernel compiled"
    failed = [k for k in kernels if not k.ok]
    assert not failed, "\n".join(f"{k.name} {k.signature} {k.constexprs}: {k.error}" for k in failed)
    names = {k.name for k in kernels}
    # one group per index (a name may carry a suffix after the index: `_u_0_<what>_kernel`)
    groups = {int(re.fullmatch(rf"_{case.unit}_(\d+)_(?:\w+_)?kernel", n).group(1)) for n in names}
    assert groups == set(range(unit.n_kernels)), names
    for k in kernels:
        assert k.shared is not None and k.shared <= H100_SHARED_LIMIT, (k.name, k.shared, k.constexprs)
