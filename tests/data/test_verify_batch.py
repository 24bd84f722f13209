"""`verify_batch`: one long-lived worker, shared candidate runs, per-item failure isolation."""

from __future__ import annotations

import random

from p2t_core.signature import Signature, TensorParam
from p2t_core.verify.batch import BatchVerifier, small_bindings, verify_batch

SIG = Signature("f", "function", (TensorParam("x", ("M", "N")),), 1)
GOOD = "import torch\n\ndef f(x):\n    return x * 2 + 1\n"
WRONG_REF = "import torch\n\ndef f(x):\n    return x * 2\n"
CRASH = "import os, signal\n\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
HANG = "def f(x):\n    while True:\n        pass\n"
UNWRITTEN = "import torch\n\ndef f(x):\n    return torch.empty_like(x)\n"


def test_isolation_sharing_and_restart():
    items = [
        (GOOD, GOOD, SIG),
        (WRONG_REF, GOOD, SIG),  # same candidate as item 0: shares its runs, fails on its own
        (GOOD, CRASH, SIG),
        (GOOD, "import torch\n\ndef f(x):\n    return 2 * x + 1\n", SIG),  # after the crash: a fresh worker
        (GOOD, HANG, SIG),
        (GOOD, UNWRITTEN, SIG),
        (GOOD, "def f(x):\n    return (\n", SIG),
    ]
    with BatchVerifier("interpret", timeout_s=5) as v:
        reps = verify_batch(items, verifier=v, seed=1)
        assert v.starts == 3  # the crash and the hang each cost a worker
    assert [r.passed for r in reps] == [True, False, False, True, False, False, False]
    assert "wrong values" in reps[1].cases[0].message
    assert "crashed" in reps[2].cases[0].message
    assert "timeout" in reps[4].cases[0].message
    assert "never written" in reps[5].cases[0].message
    assert "failed to load" in (reps[6].error or "")


def test_real_compiled_units_pass():
    from p2t_core.data.examples import bind_sizes
    from p2t_core.data.generators import generate_units
    from p2t_core.data.pipeline import unit_signature
    from p2t_core.data.render import applicable_styles, render, target_source, unit_entry
    from p2t_core.engine import compile_unit_source

    items = []
    for u in generate_units(random.Random(3), 4, ["elementwise", "reduction"]):
        sz = bind_sizes(u)
        shapes = {p.name: tuple(sz[d] if isinstance(d, str) else d for d in p.dims) for p in u.tensor_params}
        c = compile_unit_source(target_source(u, "torch"), unit_entry(u, "torch"), shapes=shapes)
        for st in applicable_styles(u):
            if st not in ("numpy", "module"):
                items.append((render(u, st, random.Random(0)), c.module_source, unit_signature(u)))
    reps = verify_batch(items, backend="interpret", seed=0)
    assert all(r.passed for r in reps), [r.summary() if hasattr(r, "summary") else r for r in reps if not r.passed]


def test_small_bindings():
    b = small_bindings(SIG, 0, 2)
    assert all(3 <= v <= 17 for v in b[0].values()) and b[0]["N"] % 2 == 1 and b[0]["M"] < 8 < b[0]["N"]
    assert b[1]["N"] == 33
