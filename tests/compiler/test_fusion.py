"""Fusion: the schedule puts each of these patterns in one kernel (fewer kernels, fewer passes over memory)."""

from __future__ import annotations

import pytest

from p2t_core.engine import compile_unit_source

HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"

RMSNORM_MODULE = HEADER + '''class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
'''

CHAIN10 = HEADER + '''def chain10(x, y):
    a = x + y
    b = a * 2.0
    c = torch.exp(b)
    d = c - 1.0
    e = torch.relu(d)
    f = e / (1.0 + x * x)
    g = torch.sigmoid(f)
    h = g * y
    i = torch.tanh(h)
    j = i.abs() + 0.5
    return j
'''

ONE_KERNEL = {
    "mm_bias_relu": ("def mm_bias_relu(x, w, b):\n    return torch.relu(x @ w + b)\n", {"x": (8, 16), "w": (16, 4),
                                                                                       "b": (4,)}),
    "linear_gelu": ("def linear_gelu(x, w, b):\n    return F.gelu(F.linear(x, w, b))\n", None),
    "rmsnorm_fn": ("def rmsnorm_fn(x, w):\n    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w\n",
                   {"x": (4, 32), "w": (32,)}),
    "softmax_scale_mask": ("def softmax_scale_mask(x, mask, scale: float = 0.125):\n"
                           "    return torch.softmax(x * scale + mask, dim=-1)\n", None),
    "l2_normalize": ("def l2_normalize(x):\n    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)\n", None),
    "l2_normalize_f": ("def l2_normalize_f(x):\n    return F.normalize(x, dim=-1)\n", None),
    "mse_loss": ("def mse_loss(x, y):\n    return F.mse_loss(x, y)\n", None),
    "mse_manual": ("def mse_manual(x, y):\n    return ((x - y) ** 2).mean()\n", None),
    "var_mean_rows": ("def var_mean_rows(x):\n    return x.var(-1), x.mean(-1)\n", None),
    "var_plus_mean_rows": ("def var_plus_mean_rows(x):\n    return x.var(-1) + x.mean(-1)\n", None),
    "logsumexp_rows": ("def logsumexp_rows(x):\n    return torch.logsumexp(x, dim=-1)\n", None),
    "bias_gelu": ("def bias_gelu(x, b):\n    return F.gelu(x + b)\n", {"x": (4, 8), "b": (8,)}),
    "layer_norm_manual": ("def layer_norm_manual(x, w):\n    d = x - x.mean(-1, keepdim=True)\n"
                          "    return d / torch.sqrt((d * d).mean(-1, keepdim=True) + 1e-5) * w\n",
                          {"x": (4, 32), "w": (32,)}),
    "softmax_and_logsumexp": ("def softmax_and_logsumexp(x):\n"
                              "    e = torch.exp(x - x.amax(-1, keepdim=True))\n"
                              "    return e / e.sum(-1, keepdim=True), torch.logsumexp(x, dim=-1)\n", None),
}


@pytest.mark.parametrize("name", sorted(ONE_KERNEL))
def test_one_kernel(name):
    body, shapes = ONE_KERNEL[name]
    unit = compile_unit_source(HEADER + body, name, shapes=shapes)
    assert unit.n_kernels == 1, (name, unit.n_kernels, [g.kind for g in unit.schedule.groups])
    assert f"def _{name}_0_kernel(" in unit.module_source  # (a group may add helper kernels, e.g. a split pass)


@pytest.mark.parametrize("name", sorted(ONE_KERNEL))
def test_one_kernel_stores_only_what_the_unit_returns(name):
    """A value one anchor of a row group needed from another is in the same kernel: storing it is traffic only
    (a hand-written LayerNorm stored its centred rows and their squares beside its result)."""
    body, shapes = ONE_KERNEL[name]
    unit = compile_unit_source(HEADER + body, name, shapes=shapes)
    (group,) = unit.schedule.groups
    assert {n.id for n in group.outputs} == {n.id for n in unit.schedule.graph.outputs}


def test_rmsnorm_module_one_kernel():
    unit = compile_unit_source(RMSNORM_MODULE, "RMSNorm")
    assert unit.n_kernels == 1


def test_chain_of_ten_elementwise_ops_one_kernel():
    unit = compile_unit_source(CHAIN10, "chain10")
    assert unit.n_kernels == 1
    assert unit.schedule.groups[0].kind == "elementwise"


def test_kernel_names_follow_the_contract():
    src = HEADER + "def two(x):\n    s = x.sum(-1, keepdim=True)\n    return torch.softmax(x - s, -1) @ x.T\n"
    unit = compile_unit_source(src, "two")
    for k in range(unit.n_kernels):
        assert f"def _two_{k}_kernel(" in unit.module_source
    assert f"def _two_{unit.n_kernels}_kernel(" not in unit.module_source


def test_unfusable_patterns_take_more_kernels():
    """Sanity: the counts above are not trivially 1 for everything."""
    src = HEADER + "def two_mm(x, w, v):\n    return (x @ w) @ v\n"
    assert compile_unit_source(src, "two_mm").n_kernels == 2


def test_deterministic_output():
    a = compile_unit_source(RMSNORM_MODULE, "RMSNorm").module_source
    b = compile_unit_source(RMSNORM_MODULE, "RMSNorm").module_source
    assert a == b


@pytest.mark.parametrize("body", ["    return torch.softmax(x, dim=-1)\n",
                                  "    return torch.softmax(x * 0.5 + 1.0, dim=-1) * 2.0\n"])
def test_softmax_in_registers_takes_one_exp_per_element(body):
    """With the row in registers the result reuses the exp tile the row sum was taken from and scales it by the
    reciprocal of the sum: a second exp and a division per element made the 8192-wide bf16 softmax SFU-bound
    (0.082 -> 0.071 ms on the H200, docs/BENCHMARKS.md)."""
    unit = compile_unit_source(HEADER + "def sm(x):\n" + body, "sm")
    kernel = unit.module_source.split("def _sm_0_kernel(")[1]
    single = kernel.split("if SINGLE:")[1].split("\n    else:")[0]
    assert single.count("tl.exp(") == 1 and " / " not in single.replace("1.0 / ", "")
