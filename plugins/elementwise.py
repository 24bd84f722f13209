"""Elementwise ops: arithmetic, comparisons, math, activations; and the lowering of elementwise regions.

Every op's Triton spelling works on fp32 values (the kernel loads, computes in fp32, and casts on store)
and uses core `tl` math only, so kernels run unchanged under the interpreter. NaN propagates as in torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from p2t_core.codegen.elementwise import lower_elementwise
from p2t_core.hookspecs import hookimpl
from p2t_core.ops import OpDef
from p2t_core.validate import function_case

HELPERS = {
    "_p2t_tanh": """
@triton.jit
def _p2t_tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)
""",
    "_p2t_log1p": """
@triton.jit
def _p2t_log1p(x):
    # log(u) * x / (u - 1) recovers the bits of x lost in u = 1 + x (Goldberg's trick).
    u = 1.0 + x
    d = u - 1.0
    return tl.where(d == 0.0, x, tl.log(u) * (x / tl.where(d == 0.0, 1.0, d)))
""",
    "_p2t_pow": """
@triton.jit
def _p2t_pow(x, y):
    y = y + tl.zeros_like(x)  # a literal exponent becomes a tensor, so the bit tests below work
    x = x + tl.zeros_like(y)
    r = tl.exp2(y * tl.log2(tl.abs(x)))
    y_int = tl.floor(y) == y
    y_odd = y_int & (tl.abs(y - 2.0 * tl.floor(y * 0.5)) == 1.0)
    r = tl.where((x < 0) & y_odd, -r, r)
    r = tl.where((x < 0) & (~y_int), float("nan"), r)
    return tl.where(y == 0.0, 1.0, r)
""",
    "_p2t_softplus": """
@triton.jit
def _p2t_softplus(x, beta, threshold):
    z = x * beta
    return tl.where(z > threshold, x, _p2t_log1p(tl.exp(tl.minimum(z, threshold))) / beta)
""",
}

NAN_MAX = "tl.maximum({x}, {y}, propagate_nan=tl.PropagateNan.ALL)"
NAN_MIN = "tl.minimum({x}, {y}, propagate_nan=tl.PropagateNan.ALL)"
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _spellings(name: str, where: str, *extra: str) -> tuple[str, ...]:
    """Expand a compact spec: t=torch.X, m=torch.Tensor.X, f=torch.nn.functional.X, n=numpy.X, a=math.X."""
    prefixes = {"t": "torch.", "m": "torch.Tensor.", "f": "torch.nn.functional.", "n": "numpy.", "a": "math."}
    return tuple(prefixes[c] + name for c in where) + extra


def _op(name, args, triton, reference, where="tm", extra=(), defaults=None, helpers=(), result="same", **kw):
    return OpDef(
        name=name,
        kind="elementwise",
        args=args,
        spellings=_spellings(name, where, *extra),
        defaults=defaults or {},
        triton=triton,
        helpers=helpers,
        reference=reference,
        result=result,
        doc=kw.pop("doc", ""),
        **kw,
    )


def _pow(x: str, y: str) -> str:
    """Small integer and half exponents become multiplications and sqrt, as a compiler would fold them."""
    try:
        e = float(y)
    except ValueError:
        try:
            float(x)  # a literal base (`2.0 ** x`): the helper needs tensors on both sides
        except ValueError:
            return f"_p2t_pow({x}, {y})"
        return f"_p2t_pow(tl.zeros_like({y}) + {x}, {y})"
    if e == int(e) and 1 <= e <= 4:
        return " * ".join([x] * int(e))
    if e in (-1.0, -2.0):
        return f"1.0 / ({' * '.join([x] * int(-e))})"
    if e == 0.5:
        return f"tl.sqrt({x})"
    if e == 0.0:
        return f"tl.where({x} == {x}, 1.0, 1.0)"  # a tensor of ones, NaN included, as torch.pow(x, 0)
    return f"_p2t_pow({x}, {y})"


def _where_nan(expr: str, x: str) -> str:
    return f"tl.where({x} != {x}, {x}, {expr})"


OPS = [
    # arithmetic
    _op("add", ("x", "y"), "{x} + {y}", torch.add, "tmn", ("operator.add",)),
    _op("sub", ("x", "y"), "{x} - {y}", torch.sub, "tm", ("operator.sub", "numpy.subtract", "torch.subtract")),
    _op("mul", ("x", "y"), "{x} * {y}", torch.mul, "tm", ("operator.mul", "numpy.multiply", "torch.multiply")),
    _op("div", ("x", "y"), "{x} / {y}", torch.div, "tm",
        ("operator.truediv", "numpy.divide", "torch.divide", "torch.true_divide", "numpy.true_divide"),
        result="float"),
    # `/` compiles to div.full.f32, an approximation that gave a number for 0 / 0 on the H200 where torch gives NaN;
    # no Python spelling: lowerings that can divide by zero on purpose ask for it (the variance's divisor)
    _op("div_ieee", ("x", "y"), "tl.div_rn({x}, {y})", torch.div, "", result="float",
        doc="x / y rounded as IEEE 754 divides (0 / 0 is NaN)"),
    _op("floordiv", ("x", "y"), "tl.floor({x} / {y})", torch.floor_divide, "",
        ("operator.floordiv", "torch.floor_divide", "torch.Tensor.floor_divide", "numpy.floor_divide")),
    _op("remainder", ("x", "y"), "{x} - tl.floor({x} / {y}) * {y}", torch.remainder, "tm",
        ("operator.mod", "numpy.mod", "numpy.remainder")),
    _op("pow", ("x", "y"), lambda o: _pow(o["x"], o["y"]), torch.pow, "tmna",
        ("operator.pow", "numpy.power", "torch.float_power"), helpers=("_p2t_pow",), result="float"),
    _op("neg", ("x",), "-{x}", torch.neg, "tmn", ("operator.neg", "numpy.negative", "torch.negative")),
    _op("abs", ("x",), "tl.abs({x})", torch.abs, "tmn", ("builtins.abs", "math.fabs", "numpy.absolute")),
    _op("reciprocal", ("x",), "1.0 / {x}", torch.reciprocal, "tmn", result="float"),
    _op("square", ("x",), "{x} * {x}", torch.square, "tmn"),
    _op("maximum", ("x", "y"), NAN_MAX, torch.maximum, "tmn", ("numpy.fmax",)),
    _op("minimum", ("x", "y"), NAN_MIN, torch.minimum, "tmn", ("numpy.fmin",)),
    # math
    _op("exp", ("x",), "tl.exp({x})", torch.exp, "tmna", result="float"),
    _op("exp2", ("x",), "tl.exp2({x})", torch.exp2, "tmn", result="float"),
    _op("expm1", ("x",), "tl.where(tl.abs({x}) < 1e-5, {x} + 0.5 * {x} * {x}, tl.exp({x}) - 1.0)", torch.expm1,
        "tmna", result="float"),
    _op("log", ("x",), "tl.log({x})", torch.log, "tmna", result="float"),
    _op("log2", ("x",), "tl.log2({x})", torch.log2, "tmna", result="float"),
    _op("log10", ("x",), "tl.log2({x}) * 0.30102999566398120", torch.log10, "tmna", result="float"),
    _op("log1p", ("x",), "_p2t_log1p({x})", torch.log1p, "tmna", helpers=("_p2t_log1p",), result="float"),
    _op("sqrt", ("x",), "tl.sqrt({x})", torch.sqrt, "tmna", result="float"),
    _op("rsqrt", ("x",), "tl.rsqrt({x})", torch.rsqrt, "tm", result="float"),
    _op("sin", ("x",), "tl.sin({x})", torch.sin, "tmna", result="float"),
    _op("cos", ("x",), "tl.cos({x})", torch.cos, "tmna", result="float"),
    _op("tan", ("x",), "tl.sin({x}) / tl.cos({x})", torch.tan, "tmna", result="float"),
    _op("tanh", ("x",), "_p2t_tanh({x})", torch.tanh, "tmnaf", helpers=("_p2t_tanh",), result="float"),
    _op("erf", ("x",), "tl.erf({x})", torch.erf, "tma", ("torch.special.erf",), result="float"),
    _op("floor", ("x",), "tl.floor({x})", torch.floor, "tmna"),
    _op("ceil", ("x",), "tl.ceil({x})", torch.ceil, "tmna"),
    _op("trunc", ("x",), "tl.where({x} < 0, tl.ceil({x}), tl.floor({x}))", torch.trunc, "tmna"),
    _op("sign", ("x",), _where_nan("tl.where({x} > 0, 1.0, tl.where({x} < 0, -1.0, 0.0))", "{x}"), torch.sign, "tmn"),
    # activations
    _op("sigmoid", ("x",), "1.0 / (1.0 + tl.exp(-{x}))", torch.sigmoid, "tmf", ("torch.special.expit",),
        result="float"),
    _op("relu", ("x",), "tl.where({x} < 0, 0.0, {x})", torch.relu, "tmf"),
    _op("leaky_relu", ("x", "negative_slope"), "tl.where({x} < 0, {x} * {negative_slope}, {x})", F.leaky_relu, "f",
        defaults={"negative_slope": 0.01}),
    _op("elu", ("x", "alpha"), "tl.where({x} > 0, {x}, {alpha} * (tl.exp({x}) - 1.0))", F.elu, "f",
        defaults={"alpha": 1.0}),
    _op("selu", ("x",), "1.0507009873554805 * tl.where({x} > 0, {x}, 1.6732632423543772 * (tl.exp({x}) - 1.0))",
        torch.selu, "tf"),
    _op("celu", ("x", "alpha"), "tl.where({x} > 0, {x}, {alpha} * (tl.exp({x} / {alpha}) - 1.0))", F.celu, "f",
        defaults={"alpha": 1.0}),
    _op("gelu", ("x", "approximate"), lambda o: (
        f"0.5 * {o['x']} * (1.0 + _p2t_tanh({SQRT_2_OVER_PI!r} * "
        f"({o['x']} + 0.044715 * {o['x']} * {o['x']} * {o['x']})))"
        if o["approximate"] == "'tanh'" else f"0.5 * {o['x']} * (1.0 + tl.erf({o['x']} * 0.7071067811865476))"),
        F.gelu, "f", defaults={"approximate": "none"}, helpers=("_p2t_tanh",), static=("approximate",)),
    _op("silu", ("x",), "{x} / (1.0 + tl.exp(-{x}))", F.silu, "f"),
    _op("softplus", ("x", "beta", "threshold"), "_p2t_softplus({x}, {beta}, {threshold})", F.softplus, "f",
        defaults={"beta": 1.0, "threshold": 20.0}, helpers=("_p2t_softplus", "_p2t_log1p")),
    _op("softsign", ("x",), "{x} / (1.0 + tl.abs({x}))", F.softsign, "f"),
    _op("hardtanh", ("x", "min_val", "max_val"),
        _where_nan("tl.minimum(tl.maximum({x}, {min_val}), {max_val})", "{x}"), F.hardtanh, "f",
        defaults={"min_val": -1.0, "max_val": 1.0}),
    _op("relu6", ("x",), _where_nan("tl.minimum(tl.maximum({x}, 0.0), 6.0)", "{x}"), F.relu6, "f"),
    _op("hardsigmoid", ("x",), _where_nan("tl.minimum(tl.maximum({x} / 6.0 + 0.5, 0.0), 1.0)", "{x}"),
        F.hardsigmoid, "f"),
    _op("hardswish", ("x",), "{x} * " + _where_nan("tl.minimum(tl.maximum({x} / 6.0 + 0.5, 0.0), 1.0)", "{x}"),
        F.hardswish, "f"),
    _op("mish", ("x",), "{x} * _p2t_tanh(_p2t_softplus({x}, 1.0, 20.0))", F.mish, "f",
        helpers=("_p2t_tanh", "_p2t_softplus", "_p2t_log1p")),
    _op("logsigmoid", ("x",), "tl.minimum({x}, 0.0) - _p2t_log1p(tl.exp(-tl.abs({x})))", F.logsigmoid, "f",
        helpers=("_p2t_log1p",)),
    # comparisons and logic (bool results)
    *[
        _op(name, ("x", "y"), f"{{x}} {sym} {{y}}", getattr(torch, name), "tm",
            (f"operator.{name}", f"numpy.{np_name}"), result="bool")
        for name, sym, np_name in (("lt", "<", "less"), ("le", "<=", "less_equal"), ("gt", ">", "greater"),
                                   ("ge", ">=", "greater_equal"), ("eq", "==", "equal"), ("ne", "!=", "not_equal"))
    ],
    _op("logical_and", ("x", "y"), "({x} != 0) & ({y} != 0)", torch.logical_and, "tmn", ("operator.and_",),
        result="bool"),
    _op("logical_or", ("x", "y"), "({x} != 0) | ({y} != 0)", torch.logical_or, "tmn", ("operator.or_",),
        result="bool"),
    _op("logical_xor", ("x", "y"), "({x} != 0) ^ ({y} != 0)", torch.logical_xor, "tmn", ("operator.xor",),
        result="bool"),
    _op("logical_not", ("x",), "{x} == 0", torch.logical_not, "tmn", ("operator.invert", "operator.not_"),
        result="bool"),
    _op("isnan", ("x",), "{x} != {x}", torch.isnan, "tmn", result="bool"),
    _op("where", ("condition", "x", "y"), "tl.where({condition} != 0, {x}, {y})", torch.where, "tn"),
]


def _clamp(b, x, min=None, max=None):
    if min is None and max is None:
        raise b.unsupported("clamp without bounds", "clamp(x, min, max) with at least one bound")
    out = x
    if min is not None:
        out = b.elementwise("clamp_min", x=out, bound=min)
    if max is not None:
        out = b.elementwise("clamp_max", x=out, bound=max)
    return out


COMPOSITES = [
    OpDef("clamp", "composite", ("x", "min", "max"), _spellings("clamp", "tm", "torch.clip", "torch.Tensor.clip",
          "numpy.clip"), defaults={"min": None, "max": None}, expand=_clamp, reference=torch.clamp,
          aliases={"a_min": "min", "a_max": "max"}),
    _op("clamp_min", ("x", "bound"), _where_nan("tl.maximum({x}, {bound})", "{x}"), torch.clamp_min, "tm"),
    _op("clamp_max", ("x", "bound"), _where_nan("tl.minimum({x}, {bound})", "{x}"), torch.clamp_max, "tm"),
]


@hookimpl
def p2t_register_ops(registry):
    for op in OPS + COMPOSITES:
        registry.add(op)
    for name, source in HELPERS.items():
        registry.helpers[name] = source.strip() + "\n"


@hookimpl
def p2t_lower_group(group, ctx):
    if group.kind == "elementwise":
        return lower_elementwise(group, ctx)
    return None


@hookimpl
def p2t_validation_cases():
    return ELEMENTWISE_CASES




ELEMENTWISE_CASES = [
    function_case("gelu_erf", "    return F.gelu(x)"),
    function_case("gelu_tanh", "    return F.gelu(x, approximate='tanh')"),
    function_case("bias_silu", "    return F.silu(x + b)", "x, b", shapes=[{"x": (33, 70), "b": (70,)}]),
    function_case("chain", "    y = torch.exp(-x * x) * 0.5 + torch.sin(x)\n    return torch.where(y > 0.4, y, -y)"),
    function_case("activations", "    return F.mish(x) + F.hardswish(x) - F.softplus(x) + F.selu(x) * F.elu(x)"),
    function_case("scaled_leaky", "    return F.leaky_relu(x, 0.2) * alpha", "x, alpha: float = 2.0"),
    function_case("clamped_pow", "    return torch.clamp(x, -1.5, 1.5) ** 3 + x.abs().pow(0.5)"),
    function_case("compare_cast", "    return (x > y).float() * x + torch.maximum(x, y)", "x, y"),
    function_case("two_outputs", "    s = torch.sigmoid(x)\n    return s, s * (1 - s)", kernels=1),
    function_case("broadcast_col", "    return x * torch.rsqrt(v[:, None] + 1e-5)", "x, v",
          shapes=[{"x": (17, 9), "v": (17,)}]),
]


@hookimpl
def p2t_example_units(rng, count):
    """Example units for the data pipeline (built-in generators):
    elementwise chains (activations, arithmetic, comparisons, casts)."""
    from p2t_core.data.generators import generate_units

    return generate_units(rng, count, ["elementwise"])
