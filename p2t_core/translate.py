"""Verification of translated units and the validation-case runner, shared by the CLI and the tests."""

from __future__ import annotations

import math
import time

from p2t_core.engine import Translation, compile_units
from p2t_core.errors import P2TError, ShapeError
from p2t_core.signature import Signature, TensorParam

# Above this many elements in one tensor, interpreted verification of one case takes minutes (an 8192x8192 matvec:
# 330 s for 9 cases on the 2-core CPU, 2026-12-02)
INTERPRETED_ELEMENTS = 1 << 20


def bindings_from_shapes(sig: Signature, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Size-variable values from explicit parameter shapes (`--shapes x=4x8`), checked for consistency."""
    bindings: dict[str, int] = {}
    for p in sig.params:
        if not isinstance(p, TensorParam) or p.name not in shapes:
            continue
        shape = shapes[p.name]
        if len(shape) != len(p.dims):
            raise ShapeError(f"--shapes gives {p.name} rank {len(shape)}, the unit needs rank {len(p.dims)}")
        for d, n in zip(p.dims, shape, strict=True):
            if isinstance(d, int):
                if d != n and d != 1:
                    raise ShapeError(f"--shapes gives {p.name} size {n} where the unit needs {d}")
            elif bindings.setdefault(d, n) != n and 1 not in (n, bindings[d]):
                raise ShapeError(f"--shapes: size {d} of {p.name} is {n} here and {bindings[d]} elsewhere")
            else:
                bindings[d] = max(bindings[d], n)
    missing = [v for v in sig.size_vars if v not in bindings]
    for v in missing:  # sizes no given shape fixes (e.g. a module's own dims) get a small default
        bindings[v] = 8
    return bindings


def verify_units(source: str, result: Translation, *, backend="auto", dtypes=("float32", "float16", "bfloat16"),
                 shapes=None, seed=None, echo=print) -> bool:
    from p2t_core.verify import resolve_backend, verify

    if shapes and resolve_backend(backend) != "cuda":
        largest = max(math.prod(s) for s in shapes.values())
        if largest > INTERPRETED_ELEMENTS:
            echo(f"p2t: note: verifying at --shapes with {largest:,} elements in one tensor on the CPU (Triton "
                 "interpreter) takes minutes; smaller shapes of the same ranks check the same kernels")
    ok = True
    for unit in result.units:
        case_shapes = [bindings_from_shapes(unit.signature, shapes)] if shapes else None
        report = verify(source, unit.module_source, unit.signature, backend=backend, dtypes=dtypes,
                        shapes=case_shapes, seed=seed)
        echo(f"p2t: verification of {unit.name}:")
        echo(report.render())
        ok = ok and report.passed
    return ok


def run_validation(plugins, name: str, *, backend: str = "auto") -> list[dict]:
    """Translate and verify each validation case of one plugin; one row per case."""
    from p2t_core.verify import verify

    hook = plugins.pm.subset_hook_caller("p2t_validation_cases", remove_plugins=[
        p for p in plugins.pm.get_plugins() if plugins.pm.get_name(p) != name])
    rows = []
    for cases in hook():
        for case in cases:
            start = time.perf_counter()
            row = {"plugin": name, "case": case.name, "kernels": "-", "passed": False, "detail": ""}
            try:
                shapes = case.shapes[0] if case.shapes else None
                result = compile_units(case.source, f"<{name}:{case.name}>", unit=case.unit, shapes=shapes,
                                       plugins=plugins, keep_going=False)
                unit = result.units[0]
                row["kernels"] = unit.n_kernels
                if case.n_kernels is not None and unit.n_kernels != case.n_kernels:
                    row["detail"] = f"expected {case.n_kernels} kernel(s), got {unit.n_kernels}"
                else:
                    bindings = [bindings_from_shapes(unit.signature, s) for s in case.shapes] or None
                    report = verify(case.source, unit.module_source, unit.signature, backend=backend,
                                    dtypes=case.dtypes, shapes=bindings, tolerances=case.tolerances)
                    row["passed"] = report.passed
                    row["detail"] = report.summary()
                    row["report"] = report.to_dict()
            except P2TError as e:
                row["detail"] = str(e)
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    return rows
