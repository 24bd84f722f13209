"""normalize_loops: loop-style units run directly == their rewrite == their hand-written tensor twin."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import libcst as cst
import numpy as np
import pytest
import torch

try:
    from p2t_core.frontend.loops import normalize_loops
except ImportError:  # the frontend package is being written concurrently; the rewrite itself is standalone
    _spec = importlib.util.spec_from_file_location(
        "p2t_loops_standalone", Path(__file__).parents[2] / "p2t_core" / "frontend" / "loops.py")
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _mod
    _spec.loader.exec_module(_mod)
    normalize_loops = _mod.normalize_loops

from .corpus import TWINS


def rewrite(src: str, path: str = "<test>") -> str:
    return normalize_loops(cst.parse_module(src), path).code


def make_args(shapes: dict, seed: int) -> tuple[tuple, dict]:
    g = torch.Generator().manual_seed(seed)
    kwargs = {}
    for name, spec in shapes.items():
        if name == "__init__":
            continue
        if isinstance(spec, tuple) and spec and spec[0] == "pos":
            kwargs[name] = torch.rand(spec[1], generator=g) + 0.1
        elif isinstance(spec, tuple):
            kwargs[name] = torch.randn(spec, generator=g)
        else:
            kwargs[name] = spec
    return tuple(shapes.get("__init__", ())), kwargs


def call(src: str, name: str, shapes: dict, seed: int = 0):
    """Run `name` from `src`; the result is its return values followed by its tensor arguments afterwards."""
    ns: dict = {}
    exec(compile(src, f"<{name}>", "exec"), ns)
    init, kwargs = make_args(shapes, seed)
    obj = ns[name]
    if isinstance(obj, type):
        obj = obj(*init)
    res = obj(**kwargs)
    res = list(res) if isinstance(res, tuple) else ([] if res is None else [res])
    return res + [v for v in kwargs.values() if isinstance(v, torch.Tensor)]


def assert_close(got: list, want: list):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g = torch.as_tensor(np.asarray(g) if not isinstance(g, torch.Tensor) else g).double()
        w = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).double()
        assert g.shape == w.shape, (g.shape, w.shape)
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, equal_nan=True)  # NaN where the loops give NaN


IDS = [t[2] for t in TWINS]


def test_corpus_size():
    assert len(TWINS) >= 60
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("loop_src,twin_src,name,shapes", TWINS, ids=IDS)
def test_loop_equals_rewrite_equals_twin(loop_src, twin_src, name, shapes):
    new = rewrite(loop_src)
    assert "for " not in new and "while " not in new, new
    compile(new, "<rewritten>", "exec")
    want = call(loop_src, name, shapes)
    assert_close(call(new, name, shapes), want)
    assert_close(call(twin_src, name, shapes), want)


@pytest.mark.parametrize("loop_src,twin_src,name,shapes", TWINS, ids=IDS)
def test_rewrite_is_stable(loop_src, twin_src, name, shapes):
    """Deterministic text, and the rewrite of the rewrite (no loops left) is the identical module object."""
    new = rewrite(loop_src)
    assert rewrite(loop_src) == new
    mod = cst.parse_module(new)
    assert normalize_loops(mod) is mod


# ---------------------------------------------------------------------------- exact expected renderings

EXPECTED = {
    "bias_cols": "return x + b",
    "scale_rows": "return x * r[:, None]",
    "transpose": "out.copy_(x.T)",
    "outer": "return a[:, None] * b",
    "row_normalize": "out.copy_(x / x.sum(-1, keepdim=True))",
    "matmul_epilogue_loop": "return torch.relu(a @ b + bias)",
    "matmul_acc_bias_relu": "return torch.relu(a @ b + bias)",
    "matmul_at": "return a.T @ b",
    "matmul_bt": "return a @ b.T",
    "matmul_inplace_acc": "c.copy_(c + a @ b)",
    "matvec": "return A @ v",
    "vecmat": "return v @ A",
    "dot": "return a @ b",
    "softmax_loops": "tmp0 = torch.exp(x - x.amax(-1, keepdim=True))\n    return tmp0 / tmp0.sum(-1, keepdim=True)",
    "relu_ifexp": "return torch.where(x > 0, x, 0.0)",
    "whole_sum": "return x.sum()",
    "row_max": "return x.amax(-1)",
    "l2_norm": "return torch.sqrt((x * x).sum())",
    "col_sum": "return x.sum(0)",
    "sum_of_two": "return (x - 0.5 * y).sum()",
    "axpy": "return alpha * x + y",
    "leaky_ifelse": "out.copy_(torch.where(x >= 0, x, slope * x))",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_text(name):
    loop_src = next(t[0] for t in TWINS if t[2] == name)
    assert EXPECTED[name] in rewrite(loop_src)
    for n in range(6):
        assert rewrite(next(t[0] for t in TWINS if t[2] == f"matmul_{'ijk ikj jik jki kij kji'.split()[n]}")
                       ).strip().endswith("return a @ b")


def test_units_without_loops_are_untouched():
    src = ("import torch\n\n\ndef f(x):\n    return torch.exp(x)\n\n\nclass M(torch.nn.Module):\n"
           "    def forward(self, x):\n        return x * 2\n")
    mod = cst.parse_module(src)
    assert normalize_loops(mod) is mod
    src2 = src + "\n\ndef g(x, out):\n    for i in range(len(x)):\n        out[i] = x[i]\n"
    mod2 = cst.parse_module(src2)
    new = normalize_loops(mod2)
    assert new is not mod2
    assert new.body[1] is mod2.body[1] and new.body[2] is mod2.body[2]  # f and M: same node objects
    assert new.body[0] is mod2.body[0]
    assert "out.copy_(x)" in new.code


def test_import_torch_added_and_alias_respected():
    src = "import math\n\n\ndef f(x, out):\n    for i in range(len(x)):\n        out[i] = math.exp(x[i])\n"
    new = rewrite(src)
    assert new.startswith("import torch\nimport math") and "torch.exp(x)" in new
    src = "import torch as t\n\n\ndef f(x):\n    o = t.empty_like(x)\n    for i in range(len(x)):\n" \
          "        o[i] = abs(x[i])\n    return o\n"
    assert "return t.abs(x)" in rewrite(src)


def test_docstring_and_used_prelude_kept():
    src = ('import math\nimport torch\n\n\ndef f(x, d: int):\n    """Doc."""\n    scale = 1.0 / math.sqrt(d)\n'
           '    n = x.shape[0]\n    out = torch.empty_like(x)\n    for i in range(n):\n'
           '        out[i] = x[i] * scale\n    return out\n')
    new = rewrite(src)
    assert '"""Doc."""' in new and "scale = 1.0 / math.sqrt(d)" in new and "n = x.shape[0]" not in new
    assert "return x * scale" in new
