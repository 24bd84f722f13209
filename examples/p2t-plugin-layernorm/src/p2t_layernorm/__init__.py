"""p2t-plugin-layernorm: layer normalization with affine parameters for p2t.

`torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)` (and `torch.layer_norm`) over the
trailing dims named by `normalized_shape` is registered as a *composite* op: its expansion builds
mean, centered variance, rsqrt, scale and shift out of ops the built-in plugins already own
(`b.reduce`, `b.elementwise`, `b.reduced_count`). The scheduler sees a row reduction with an elementwise
prologue and epilogue and fuses all of it into ONE row kernel, lowered by the built-in reduction plugin's
`RowLowering`; this plugin needs no lowering code of its own.

The four hooks a plugin can implement are all here except `p2t_lower_group` (see docs/plugins.md):

- `p2t_register_ops`: the op, its Python spellings and its torch reference;
- `p2t_validation_cases`: what `p2t validate --plugin layernorm` translates and verifies;
- `p2t_example_units`: random layer-norm units for `p2t data build` (the LLM's training pairs).
"""

from __future__ import annotations

import random

import torch.nn.functional as F

from p2t_core.hookspecs import hookimpl
from p2t_core.ops import OpDef
from p2t_core.validate import ValidationCase

__all__ = ["OPS", "VALIDATION_CASES", "layer_norm_unit", "p2t_example_units", "p2t_register_ops",
           "p2t_validation_cases"]

DEFAULT_EPS = 1e-5  # torch.nn.functional.layer_norm's default


def _normalized_dims(b, x, normalized_shape):
    """The reduced dims: the last len(normalized_shape) dims of x (an int means one dim)."""
    if isinstance(normalized_shape, int):
        n = 1
    elif isinstance(normalized_shape, (tuple, list)):
        n = len(normalized_shape)
    else:
        raise b.unsupported("layer_norm with a normalized_shape that is not a tuple known at translation time",
                            "a tuple such as (x.shape[-1],) or an int")
    if n < 1 or n > x.rank:
        raise b.shape_error(f"layer_norm over {n} trailing dim(s) of a rank-{x.rank} tensor")
    return tuple(range(-n, 0))


def _layer_norm(b, input, normalized_shape, weight=None, bias=None, eps=DEFAULT_EPS):
    """mean over the trailing dims, biased variance of the centered input, then (x - mean) * rsqrt(var + eps),
    then the affine weight and bias. Every op here is a built-in one, so the scheduler fuses the whole
    expansion into a single row kernel (two reductions over the same rows, one pass over memory)."""
    dims = _normalized_dims(b, input, normalized_shape)
    count = b.reduced_count(input, dims)
    mean = b.elementwise("div", x=b.reduce("sum", input, dims, True), y=count)
    centered = b.elementwise("sub", x=input, y=mean)
    var = b.elementwise("div", x=b.reduce("sum", b.elementwise("mul", x=centered, y=centered), dims, True), y=count)
    eps = b.lift(eps if eps is not None else DEFAULT_EPS)
    out = b.elementwise("mul", x=centered, y=b.elementwise("rsqrt", x=b.elementwise("add", x=var, y=eps)))
    if weight is not None:
        out = b.elementwise("mul", x=out, y=weight)
    if bias is not None:
        out = b.elementwise("add", x=out, y=bias)
    return out


OPS = [
    OpDef("layer_norm", "composite", ("input", "normalized_shape", "weight", "bias", "eps"),
          spellings=("torch.nn.functional.layer_norm", "torch.layer_norm"),
          defaults={"weight": None, "bias": None, "eps": DEFAULT_EPS},
          expand=_layer_norm, reference=F.layer_norm, static=("normalized_shape",),
          doc="layer normalization over the trailing normalized_shape dims, with optional weight and bias"),
]


@hookimpl
def p2t_register_ops(registry):
    for op in OPS:
        registry.add(op)


# --- validation cases: `p2t validate --plugin layernorm` -------------------------------------------------------

_HEADER = "import torch\nimport torch.nn.functional as F\n\n\n"

LAYERNORM_MODULE = '''import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)
'''


def _case(name, params, body, shapes, kernels=1):
    return ValidationCase(name, f"{_HEADER}def {name}({params}):\n{body}\n", name, n_kernels=kernels, shapes=shapes)


VALIDATION_CASES = [
    _case("layer_norm_affine", "x, w, b", "    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)",
          [{"x": (9, 130), "w": (130,), "b": (130,)}, {"x": (1, 7), "w": (7,), "b": (7,)}]),
    _case("layer_norm_plain", "x", "    return F.layer_norm(x, (x.shape[-1],))", [{"x": (5, 33)}]),
    _case("layer_norm_3d_gelu", "x, w, b",
          "    y = F.layer_norm(x, (x.shape[-1],), weight=w, bias=b, eps=1e-6)\n    return F.gelu(y) * 0.5",
          [{"x": (2, 3, 40), "w": (40,), "b": (40,)}]),
    _case("residual_layer_norm", "x, r, w, b", "    return torch.layer_norm(x + r, (x.shape[-1],), w, b, 1e-5)",
          [{"x": (6, 64), "r": (6, 64), "w": (64,), "b": (64,)}]),
    ValidationCase("LayerNorm", LAYERNORM_MODULE, "LayerNorm", n_kernels=1),
]


@hookimpl
def p2t_validation_cases():
    return VALIDATION_CASES


# --- example units: `p2t data build` ----------------------------------------------------------------------------

def layer_norm_unit(rng: random.Random):
    """One random layer-norm unit as an expression tree over catalogue ops (`p2t_core.data.examples`).

    The data pipeline renders trees of the ops it knows (mean, sub, mul, rsqrt, ...), so the unit spells
    layer norm out: (x - mean) * rsqrt(mean((x - mean)**2) + eps) * w + b, with optional residual input,
    affine parameters and activation. The compiler lowers every rendering to the same one-kernel target.
    """
    from p2t_core.data.examples import ExampleUnit, Expr, Param, Ref

    rank = rng.choice([2, 2, 3])
    dims = ("B", "M", "D")[-rank:]
    x = Ref(rng.choice(["x", "h", "hidden", "inp", "feat"]))
    params = [Param(x.name, "tensor", rank, dims)]
    src = x
    if rng.random() < 0.3:
        r = Ref(rng.choice(["residual", "res", "skip"]))
        params.append(Param(r.name, "tensor", rank, dims))
        src = Expr("add", (x, r))
    mean = Expr("mean", (src,), {"dim": -1, "keepdim": True})
    centered = Expr("sub", (src, mean))
    sq = Expr("mul", (centered, centered)) if rng.random() < 0.5 else Expr("pow", (centered, 2))
    var = Expr("mean", (sq,), {"dim": -1, "keepdim": True})
    eps_value = rng.choice([1e-5, 1e-6, 1e-12])
    if rng.random() < 0.5:
        eps = Param(rng.choice(["eps", "epsilon"]), "float", 0, (), eps_value)
        params.append(eps)
        eps_node = Ref(eps.name)
    else:
        eps_node = eps_value
    if rng.random() < 0.6:
        out = Expr("mul", (centered, Expr("rsqrt", (Expr("add", (var, eps_node)),))))
    else:
        out = Expr("div", (centered, Expr("sqrt", (Expr("add", (var, eps_node)),))))
    if rng.random() < 0.8:
        w = Param(rng.choice(["weight", "w", "gamma"]), "tensor", 1, dims[-1:])
        params.append(w)
        out = Expr("mul", (out, Ref(w.name)))
        if rng.random() < 0.8:
            bias = Param(rng.choice(["bias", "b", "beta"]), "tensor", 1, dims[-1:])
            params.append(bias)
            out = Expr("add", (out, Ref(bias.name)))
    if rng.random() < 0.25:
        out = Expr(rng.choice(["relu", "silu", "tanh"]), (out,))
    # parameters in a stable order: tensors first (as listed), scalars last
    params = [p for p in params if p.is_tensor] + [p for p in params if not p.is_tensor]
    name = f"{rng.choice(['fused', 'apply', 'my', 'block'])}_layer_norm{rng.choice(['', '', str(rng.randint(1, 9))])}"
    return ExampleUnit(name, params, [out], "layernorm")


@hookimpl
def p2t_example_units(rng, count):
    return [layer_norm_unit(rng) for _ in range(count)]
