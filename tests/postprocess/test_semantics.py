"""The semantic check: allow lists, dunders, monkeypatching, launches and the torch-math rule."""

from __future__ import annotations

import pytest

from p2t_core.postprocess import CheckResult, check_candidate
from p2t_core.postprocess.safety import check_semantics
from tests.postprocess.corpus import good_modules, hostile_cases

HEADER = "import math\nimport torch\nimport triton\nimport triton.language as tl\n\n\n"
KERNEL = """@triton.jit
def _k(X_ptr, Out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X_ptr + offs, mask=mask, other=0.0)
    {kernel_extra}
    tl.store(Out_ptr + offs, x, mask=mask)


def f(x, alpha: float = 1.0):
    out = torch.empty_like(x)
    n = out.numel()
    {launcher_extra}
    _k[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
    return out
"""


def module(kernel_extra: str = "pass", launcher_extra: str = "pass") -> str:
    return HEADER + KERNEL.format(kernel_extra=kernel_extra, launcher_extra=launcher_extra)


def messages(src: str) -> str:
    return "\n".join(str(v) for v in check_semantics(src))


def test_base_module_is_clean():
    assert check_semantics(module()) == []
    assert check_candidate(module()).ok


OK_KERNEL = [
    "x = tl.where(x > 0, x, 0.01 * x)",
    "x = tl.exp(x) + tl.exp2(x) + tl.log(x) + tl.sqrt(x) + tl.rsqrt(x) + tl.abs(x) + tl.sigmoid(x)",
    "x = tl.maximum(x, tl.minimum(x, 1.0)) + tl.math.erf(x) + tl.fma(x, x, x)",
    "x = x.to(tl.float32).to(Out_ptr.dtype.element_ty)",
    "s = tl.sum(x, axis=0) + tl.max(x, axis=0) + tl.min(x, 0)",
    "x = tl.extra.cuda.libdevice.tanh(x)",
    "x = tl.reshape(tl.broadcast_to(tl.expand_dims(x, 0), (1, BLOCK)), (BLOCK,))",
    "x = x + math.pi",
    "x = tl.full([BLOCK], 0.0, dtype=tl.float32) + tl.zeros([BLOCK], dtype=tl.float16)",
]

OK_LAUNCHER = [
    "shape = torch.broadcast_shapes(x.shape, x.shape)",
    "m = x.shape[0] * x.stride(0) + len(x.shape) + x.dim() + x.ndim + triton.next_power_of_2(n)",
    "dt = torch.promote_types(x.dtype, torch.float32)",
    "y = x.contiguous().view(-1).reshape(n).unsqueeze(0).squeeze(0).to(torch.float32)",
    "w = 4 if n < 2048 else 8",
    "sizes = [s for s in x.shape if s != 1]",
    "z = torch.zeros((n,), dtype=x.dtype, device=x.device)",
    "k = math.prod(x.shape) // max(1, n)",
    "ok = x.is_contiguous() and x.dtype == torch.float16 and alpha > 0.5",
    "scale = alpha * 2.0 + 1",
    "t = torch.backends.cuda.matmul.allow_tf32",
    "lo = torch.finfo(x.dtype).min",
]


@pytest.mark.parametrize("line", OK_KERNEL)
def test_kernel_ok(line):
    assert messages(module(kernel_extra=line)) == ""


@pytest.mark.parametrize("line", OK_LAUNCHER)
def test_launcher_ok(line):
    assert messages(module(launcher_extra=line)) == ""


BAD_KERNEL = [
    ("x = tl.inline_asm_elementwise('mov', '=r,r', [x], dtype=tl.int32, is_pure=True, pack=1)", "tl allow list"),
    ("x = tl.extra.cuda.libdevice.nanosleep(1)", "tl allow list"),
    ("tl.device_print('x', x)", "tl allow list"),
    ("x = torch.exp(x)", "inside a Triton kernel"),
    ("x = x.__class__", "dunder"),
    ("x = [a for a in range(3)]", "comprehensions"),
    ("x = f(x)", "host function"),
    ("x = print(x)", "not allowed"),
    ("x = x.data_ptr()", "not allowed inside kernels"),
    ("tl = 3", "shadows"),
]

BAD_LAUNCHER = [
    ("y = torch.exp(x)", "launcher computes with torch (torch.exp"),
    ("y = torch.matmul(x, x)", "launcher computes with torch"),
    ("y = x @ x", "'@'"),
    ("y = x * 2", "tensor arithmetic"),
    ("y = -x", "tensor arithmetic"),
    ("y = x.sum()", "launcher computes with torch (.sum()"),
    ("y = x.exp()", "launcher computes with torch (.exp()"),
    ("y = x > 0", "tensor comparison"),
    ("y = sum(x)", "builtin sum() on a tensor"),
    ("y = x[x > 0]", "tensor"),
    ("out[0] = 1", "torch indexing"),
    ("y = torch.load('f')", "torch allow list"),
    ("y = torch.cuda.memory_allocated()", "torch allow list"),
    ("torch.exp = torch.sin", "monkeypatching"),
    ("x.data = out", "monkeypatching"),
    ("triton.language.load = tl.store", "monkeypatching"),
    ("y = tl.load(x)", "only be used inside a @triton.jit kernel"),
    ("y = triton.runtime.driver", "triton"),
    ("y = eval('1')", "'eval' is not allowed"),
    ("y = getattr(x, 'exp')", "'getattr' is not allowed"),
    ("y = type(x)", "'type' is not allowed"),
    ("y = x.__dict__", "dunder"),
    ("y = _k", "may only be launched"),
    ("_k(x, out, n, BLOCK=4)", "must be launched with a grid"),
    ("y = f", "may only be called"),
    ("g = torch", "module 'torch'"),
    ("len = 3", "shadows"),
    ("y = undefined_name", "unknown name"),
    ("y = x.T * 2", "tensor arithmetic"),
    ("y = [x][0] + 1", "tensor arithmetic"),
    ("y = super().__init__()", "super"),
]


@pytest.mark.parametrize("line,fragment", BAD_KERNEL)
def test_kernel_bad(line, fragment):
    assert fragment in messages(module(kernel_extra=line))


@pytest.mark.parametrize("line,fragment", BAD_LAUNCHER)
def test_launcher_bad(line, fragment):
    assert fragment in messages(module(launcher_extra=line))


LAUNCHES = [
    ("_k[(1,)](x, out, n, BLOCK=4)", None),
    ("_k[(1,)](x, out, n=n, BLOCK=4)", None),
    ("_k[(1,)](x, out, n, BLOCK=4, num_warps=4, num_stages=2)", None),
    ("_k[(1,)](x, out, BLOCK=4)", "missing argument(s) n"),
    ("_k[(1,)](x, out, n, 4)", "constexpr parameter 'BLOCK'"),
    ("_k[(1,)](x, out, n, n, 4)", "5 positional arguments for 4 parameters"),
    ("_k[(1,)](x, out, n, n, BLOCK=4)", "given both positionally"),
    ("_k[(1,)](x, out, n, BLOCK=4, EXTRA=1)", "unknown keyword argument 'EXTRA'"),
    ("_k[(1,)](x, out, n, X_ptr=x, BLOCK=4)", "given both positionally"),
    ("_k[(1,)](*[x, out], n, BLOCK=4)", None),
    ("_nope[(1,)](x)", "unknown kernel"),
]


@pytest.mark.parametrize("launch,fragment", LAUNCHES)
def test_launch_signatures(launch, fragment):
    src = module().replace("_k[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)", launch)
    got = messages(src)
    if fragment is None:
        assert got == ""
    else:
        assert fragment in got


AUTOTUNED = HEADER + """@triton.autotune(configs=[triton.Config({"BLOCK": 128}, num_warps=4)], key=["n"])
@triton.jit
def _k(X_ptr, n, BLOCK: tl.constexpr):
    pass


def f(x):
    {launch}
    return x
"""


@pytest.mark.parametrize("launch,fragment", [
    ("_k[(1,)](x, x.numel())", None),
    ("_k[(1,)](x, x.numel(), BLOCK=128)", "supplied by autotune"),
    ("_k[(1,)](x)", "missing argument(s) n"),
])
def test_autotuned_launches(launch, fragment):
    got = messages(AUTOTUNED.replace("{launch}", launch))
    assert (got == "") if fragment is None else (fragment in got)


def test_autotune_key_must_be_a_parameter():
    src = AUTOTUNED.replace("{launch}", "_k[(1,)](x, 1)").replace('"BLOCK": 128', '"B2": 1')
    got = messages(src)
    assert "'B2' is not a parameter" in got


def test_kernel_must_be_innermost_jit():
    src = AUTOTUNED.replace("{launch}", "_k[(1,)](x, 1)")
    src = src.replace('@triton.autotune(configs=[triton.Config({"BLOCK": 128}, num_warps=4)], key=["n"])\n@triton.jit',
                      '@triton.jit\n@triton.autotune(configs=[triton.Config({"BLOCK": 128})], key=["n"])')
    assert "innermost decorator" in messages(src)


def test_unit_must_launch():
    src = HEADER + "def f(x):\n    return torch.empty_like(x)\n"
    assert "never launches a Triton kernel" in messages(src)


def test_launch_through_helper_counts():
    src = module().replace("def f(x, alpha: float = 1.0):", "def _launch(x):").replace(
        "    return out\n", "    return out\n\n\ndef f(x):\n    return _launch(x)\n")
    assert messages(src) == ""


def test_module_class_rules():
    good = good_modules()["rmsnorm_module"]
    assert check_semantics(good) == []
    assert "not an attribute set in __init__" in messages(good.replace("self.weight, out", "self.wait, out"))
    assert "monkeypatching" in messages(good.replace("        n_rows, n_cols = x2.shape",
                                                     "        self.eps = 2\n        n_rows, n_cols = x2.shape"))
    assert "torch.nn.Module" in messages(good.replace("RMSNorm(torch.nn.Module)", "RMSNorm(torch.nn.Linear)"))
    assert "no forward" in messages(good.replace("def forward(", "def forwrd("))


@pytest.mark.parametrize("init", ["torch.randn(dim)", "torch.rand(dim)", "torch.arange(dim)",
                                  "torch.randn(dim, dtype=torch.float32)"])
def test_init_may_draw_initial_parameter_values(init):
    """The compiler copies the user's __init__; a model writing the same must pass (19 of 1,217 held-out units)."""
    good = good_modules()["rmsnorm_module"]
    assert messages(good.replace("torch.nn.Parameter(torch.ones(dim))", f"torch.nn.Parameter({init})")) == ""


def test_init_may_not_compute_on_drawn_values():
    good = good_modules()["rmsnorm_module"]  # arithmetic on them is still torch math (the corpus's __init__ has none)
    assert "launcher computes with torch" in messages(good.replace("torch.ones(dim)", "torch.randn(dim) * 0.02"))


@pytest.mark.parametrize("call", ["torch.randn(n_cols)", "torch.randn_like(x2)", "torch.arange(n_rows)"])
def test_forward_may_not_draw_values(call):
    good = good_modules()["rmsnorm_module"]
    shape_line = "        n_rows, n_cols = x2.shape\n"
    bad = good.replace(shape_line, f"{shape_line}        noise = {call}\n")
    assert bad != good and "launcher computes with torch" in messages(bad)


def test_hidden_module_aliases_and_imports():
    assert "import of 'os'" in messages("import os\n" + module())
    assert "not imported" in messages(module(launcher_extra="k = math.pi").replace("import math\n", ""))
    assert "from ... import" in messages("from torch import nn\n" + module())


def test_never_raises_on_garbage():
    for src in ["", "\x00", "def (", "(" * 1000, "+".join(["x"] * 100000), b"bytes"]:
        out = check_semantics(src)  # type: ignore[arg-type]
        assert isinstance(out, list)


@pytest.mark.parametrize("case", [c for c in hostile_cases() if c.expect != "sandbox"], ids=lambda c: c.name)
def test_semantics_alone_also_rejects_hostile(case):
    # Defense in depth: even without the grammar, the semantic check refuses every hostile module.
    assert check_semantics(case.with_marker("/nonexistent/marker")), case.name


def test_check_result_shape():
    r = check_candidate("import os\n")
    assert isinstance(r, CheckResult) and not r and r.stage == "grammar" and "os" in str(r)
    r = check_candidate(module(launcher_extra="y = eval('1')"))
    assert r.stage == "semantics" and r.violations and r.violations[0].line > 0
    assert check_candidate(module()).stage is None


def test_realistic_300_line_module_passes_both_gates():
    from tests.postprocess.test_grammar import realistic_module

    result = check_candidate(realistic_module(300))
    assert result.ok, str(result)
