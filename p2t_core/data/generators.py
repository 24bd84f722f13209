"""Built-in random generators of example units, one per family.

Each generator takes a `random.Random` and returns one `ExampleUnit`; the same rng state gives the same
unit. Plugins may call these from their `p2t_example_units` hook (e.g. the reduction plugin can return
`[reduction_unit(rng) for _ in range(count)]`); the data pipeline takes units from the hook and from
`generate_units` here, deduplicated.

Every generated unit stays in the domain of its ops for any finite input (log, sqrt, rsqrt and pow with a
fractional exponent only see positive operands; divisors are positive), so every rendering, including
the `math.*` loops, computes finite results on random normal inputs.
"""

from __future__ import annotations

import random

from p2t_core.data.examples import ExampleUnit, Expr, Node, Param, Ref

TENSOR_NAMES = ["x", "y", "a", "b", "inp", "src", "h", "z", "u", "q", "feat", "logits", "act", "val"]
SCALAR_NAMES = ["alpha", "beta", "scale", "gamma", "temp", "offset", "factor", "slope", "shift", "coef"]
UNIT_WORDS = ["fused", "compute", "apply", "kernel", "op", "layer", "block", "step", "transform", "my", "do"]
UNIT_NOUNS = ["act", "chain", "reduce", "proj", "attn", "norm", "loss", "score", "gate", "mix", "stats", "fn"]

ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "silu", "softplus", "leaky_relu", "elu", "selu", "mish",
               "hardtanh", "hardsigmoid", "hardswish", "softsign"]
SIMPLE_UNARY = ["exp", "abs", "sin", "cos", "neg", "floor", "ceil", "sign", "exp2"]
POSITIVE_UNARY = ["log", "log2", "sqrt", "rsqrt", "log1p", "reciprocal"]


class _Names:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def pick(self, pool: list[str]) -> str:
        free = [n for n in pool if n not in self.used]
        name = self.rng.choice(free) if free else f"{pool[0]}{len(self.used)}"
        self.used.add(name)
        return name


def unit_name(rng: random.Random, family: str) -> str:
    return f"{rng.choice(UNIT_WORDS)}_{rng.choice(UNIT_NOUNS + [family])}{rng.choice(['', '', str(rng.randint(1, 9))])}"


def _const(rng: random.Random) -> float:
    return rng.choice([0.5, 2.0, 1.0, 0.1, 3.0, 0.25, 1.5, 0.01, 10.0, 0.125])


def positive(rng: random.Random, e: Node) -> Node:
    """An expression of `e` that is strictly positive (keeps log/sqrt/div in their domain).

    Its last op varies (add, exp, exp2, softplus, clamp, rsqrt), so an op that needs a positive operand is seen after
    several: with the four forms of the generator before (three of them ending in an add, the fourth an exp), every
    `** 1.5` of a quarter of the 200k corpus's training rows followed an add (298 of 298: `exp` with `pow` was a
    held-out combination), and the shipped weights wrote `exp(x) ** 1.5` as `x * x` or `x * 1.5`."""
    k = rng.randrange(8)
    if k == 0:
        return Expr("add", (Expr("abs", (e,)), rng.choice([1.0, 0.5, 1e-3])))
    if k == 1:
        return Expr("exp", (e,))
    if k == 2:
        return Expr("add", (Expr("mul", (e, e)), rng.choice([1.0, 1e-5, 0.1])))
    if k == 3:
        return Expr("add", (Expr("sigmoid", (e,)), 0.5))
    if k == 4:
        return Expr("exp2", (e,))
    if k == 5:
        return Expr("softplus", (e,))
    if k == 6:
        return Expr("clamp", (e,), {"min": rng.choice([0.1, 0.5, 1e-3])})
    return Expr("rsqrt", (Expr("add", (Expr("mul", (e, e)), rng.choice([1.0, 0.1])),),))


def activation(rng: random.Random, e: Node, op: str | None = None) -> Expr:
    op = op or rng.choice(ACTIVATIONS)
    attrs: dict = {}
    if op == "gelu":
        attrs = {"approximate": rng.choice(["none", "tanh"])}
    elif op == "leaky_relu":
        attrs = {"negative_slope": rng.choice([0.01, 0.1, 0.2])}
    elif op == "elu":
        attrs = {"alpha": rng.choice([1.0, 0.5])}
    elif op == "hardtanh":
        lo = rng.choice([-1.0, -2.0, -0.5])
        attrs = {"min_val": lo, "max_val": -lo}
    return Expr(op, (e,), attrs)


def handwritten(rng: random.Random, e: Node) -> Expr:
    """An activation written out from primitives, as model code often spells it (`examples/activation.py`'s GELU):
    the model should know these formulas, not only the library calls."""
    kind = rng.choice(["gelu_tanh", "gelu_tanh", "silu", "sigmoid", "softplus", "mish", "quick_gelu", "hardswish"])
    if kind == "gelu_tanh":  # 0.7978845608028654 = math.sqrt(2 / math.pi), which the prompts fold
        inner = Expr("mul", (0.7978845608028654, Expr("add", (e, Expr("mul", (0.044715, Expr("pow", (e, 3))))))))
        return Expr("mul", (Expr("mul", (0.5, e)), Expr("add", (1.0, Expr("tanh", (inner,))))))
    if kind == "silu":
        return Expr("div", (e, Expr("add", (1.0, Expr("exp", (Expr("neg", (e,)),))))))
    if kind == "sigmoid":
        return Expr("div", (1.0, Expr("add", (1.0, Expr("exp", (Expr("neg", (e,)),))))))
    if kind == "softplus":
        return Expr("log1p", (Expr("exp", (e,)),))
    if kind == "mish":
        return Expr("mul", (e, Expr("tanh", (Expr("log1p", (Expr("exp", (e,)),)),))))
    if kind == "quick_gelu":
        return Expr("mul", (e, Expr("sigmoid", (Expr("mul", (1.702, e)),))))
    return Expr("div", (Expr("mul", (e, Expr("clamp", (Expr("add", (e, 3.0)),), {"min": 0.0, "max": 6.0}))), 6.0))


class _Ew:
    """Random elementwise expressions over a pool of leaves."""

    def __init__(self, rng: random.Random, leaves: list[Node], scalars: list[Node] = ()):
        self.rng, self.leaves, self.scalars = rng, leaves, list(scalars)

    def leaf(self) -> Node:
        return self.rng.choice(self.leaves)

    def operand(self) -> Node:
        r = self.rng.random()
        if self.scalars and r < 0.25:
            return self.rng.choice(self.scalars)
        if r < 0.45:
            return _const(self.rng)
        return self.leaf()

    def expr(self, depth: int, base: Node | None = None) -> Node:
        if depth <= 0:
            return base if base is not None else self.leaf()
        rng = self.rng
        sub = self.expr(depth - 1, base)
        k = rng.random()
        if k < 0.3:
            return handwritten(rng, sub) if rng.random() < 0.2 else activation(rng, sub)
        if k < 0.42:
            return Expr(rng.choice(SIMPLE_UNARY), (sub,))
        if k < 0.52:
            op = rng.choice(POSITIVE_UNARY)
            return Expr(op, (positive(rng, sub),))
        if k < 0.8:
            op = rng.choice(["add", "sub", "mul", "mul", "add"])
            other = self.operand() if rng.random() < 0.6 else self.expr(rng.randint(0, depth - 1))
            return Expr(op, (sub, other) if rng.random() < 0.7 else (other, sub))
        if k < 0.86:
            return Expr("div", (sub, positive(rng, self.leaf()) if rng.random() < 0.5 else _const(rng)))
        if k < 0.9:
            if rng.random() < 0.5:
                return Expr("pow", (sub, rng.choice([2, 3, 2.0])))
            return Expr("pow", (positive(rng, sub), rng.choice([0.5, 1.5])))
        if k < 0.93:
            return Expr(rng.choice(["maximum", "minimum"]), (sub, self.leaf()))
        if k < 0.96:
            lo = rng.choice([-1.0, -0.5, 0.0, None])
            hi = rng.choice([1.0, 0.5, 2.0]) if lo is not None and rng.random() < 0.7 else 1.0
            attrs = {"min": lo, "max": hi} if lo is not None else {"max": hi}
            return Expr("clamp", (sub,), attrs)
        if k < 0.99:
            cmp = Expr(rng.choice(["lt", "gt", "le", "ge"]), (sub, self.operand() if rng.random() < 0.5 else 0.0))
            other = self.operand() if rng.random() < 0.5 else 0.0
            return Expr("where", (cmp, sub, other) if rng.random() < 0.7 else (cmp, other, sub))
        return Expr("cast", (Expr("cast", (sub,), {"dtype": "float16"}),), {"dtype": "float32"})


def _scalars(rng: random.Random, names: _Names, n: int) -> list[Param]:
    out = []
    for _ in range(n):
        kind = "int" if rng.random() < 0.15 else "float"
        default = rng.choice([2, 3, 4]) if kind == "int" else rng.choice([0.5, 2.0, 0.1, 1.5, 0.75])
        out.append(Param(names.pick(SCALAR_NAMES), kind, 0, (), default))
    return out


def _dims(rng: random.Random, rank: int) -> tuple[str, ...]:
    return {1: ("N",), 2: ("M", "N"), 3: ("B", "M", "N")}[rank]


# --- families -----------------------------------------------------------------------------------

def elementwise_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([1, 2, 2, 3])
    dims = _dims(rng, rank)
    params = [Param(names.pick(TENSOR_NAMES), "tensor", rank, dims)]
    for _ in range(rng.choice([0, 1, 1, 2])):
        d = dims if rng.random() < 0.7 else dims[-1:]
        params.append(Param(names.pick(TENSOR_NAMES), "tensor", len(d), d))
    scalars = _scalars(rng, names, rng.choice([0, 0, 1, 2]))
    ew = _Ew(rng, [Ref(p.name) for p in params], [Ref(s.name) for s in scalars])
    out = ew.expr(rng.randint(1, 4), Ref(params[0].name))
    for p in params[1:]:  # every tensor parameter is used
        if p.name not in _refs(out):
            out = Expr(rng.choice(["add", "mul", "sub"]), (out, Ref(p.name)))
    used = _refs(out)
    return ExampleUnit(unit_name(rng, "ew"), params + [s for s in scalars if s.name in used], [out], "elementwise")


def _refs(node) -> set[str]:
    from p2t_core.data.examples import refs_of

    return set(refs_of(node))


def reduction_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([1, 2, 2, 2, 3])
    dims = _dims(rng, rank)
    x = Param(names.pick(TENSOR_NAMES), "tensor", rank, dims)
    params = [x]
    if rng.random() < 0.25:
        params.append(Param(names.pick(TENSOR_NAMES), "tensor", rank, dims))
    scalars = _scalars(rng, names, rng.choice([0, 0, 1]))
    ew = _Ew(rng, [Ref(p.name) for p in params], [Ref(s.name) for s in scalars])
    op = rng.choice(["sum", "sum", "mean", "mean", "max", "min", "amax", "amin", "prod", "argmax", "argmin",
                     "var", "std", "norm", "logsumexp"])
    pro = ew.expr(rng.choice([0, 1, 1, 2]), Ref(x.name))
    for p in params[1:]:
        if p.name not in _refs(pro):
            pro = Expr("mul", (pro, Ref(p.name)))
    if op == "prod":
        pro = Expr("add", (Expr("sigmoid", (pro,)), 0.5))
    dim = rng.choice([-1, -1, rank - 1, 0, None]) if op != "logsumexp" else rng.choice([-1, 0])
    if dim is not None and rng.random() < 0.2:
        dim = rng.randrange(rank)
    keepdim = dim is not None and rng.random() < 0.3
    out: Node = Expr(op, (pro,), {"dim": dim, "keepdim": keepdim})
    if op not in ("argmax", "argmin") and rng.random() < 0.5:
        eps = [Ref(s.name) for s in scalars] or [_const(rng)]
        k = rng.randrange(4)
        if k == 0:
            out = Expr("mul", (out, rng.choice(eps)))
        elif k == 1:
            out = Expr("sqrt", (positive(rng, out),))
        elif k == 2:
            out = activation(rng, out)
        else:
            out = Expr("add", (out, rng.choice(eps)))
    used = _refs(out)
    return ExampleUnit(unit_name(rng, "reduce"), params + [s for s in scalars if s.name in used], [out], "reduction")


def matmul_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    batched = rng.random() < 0.2
    tb = rng.random() < 0.25
    pre = ("B",) if batched else ()
    a = Param(names.pick(["x", "a", "inp", "h", "q"]), "tensor", len(pre) + 2, (*pre, "M", "K"))
    bd = (*pre, "N", "K") if tb else (*pre, "K", "N")
    b = Param(names.pick(["w", "weight", "b", "wk", "proj"]), "tensor", len(pre) + 2, bd)
    params = [a, b]
    out: Node = Expr("matmul", (Ref(a.name), Ref(b.name)), {"transpose_b": True} if tb else {})
    scalars = _scalars(rng, names, rng.choice([0, 0, 1]))
    for _ in range(rng.choice([0, 1, 1, 2])):
        k = rng.randrange(4)
        if k == 0:
            bias = Param(names.pick(["bias", "c", "shift_t", "bvec"]), "tensor", 1, ("N",))
            params.append(bias)
            out = Expr("add", (out, Ref(bias.name)))
        elif k == 1:
            out = activation(rng, out)
        elif k == 2:
            s = Ref(scalars[0].name) if scalars else _const(rng)
            out = Expr("mul", (out, s) if rng.random() < 0.6 else (s, out))
        else:
            res = Param(names.pick(["res", "skip", "resid", "y"]), "tensor", len(pre) + 2, (*pre, "M", "N"))
            params.append(res)
            out = Expr("add", (out, Ref(res.name)))
    used = _refs(out)
    return ExampleUnit(unit_name(rng, "mm"), params + [s for s in scalars if s.name in used], [out], "matmul")


def softmax_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([2, 2, 2, 3, 1])
    dims = _dims(rng, rank)
    x = Param(names.pick(["x", "logits", "scores", "s", "att"]), "tensor", rank, dims)
    params = [x]
    scalars = _scalars(rng, names, rng.choice([0, 1]))
    pro: Node = Ref(x.name)
    k = rng.randrange(5)
    if k in (1, 3):  # scale
        s = Ref(scalars[0].name) if scalars else rng.choice([0.125, 0.5, 2.0])
        pro = Expr("mul", (pro, s)) if rng.random() < 0.7 else Expr("div", (pro, rng.choice([2.0, 8.0])))
    if k in (2, 3):  # additive mask
        md = dims if rng.random() < 0.5 else dims[-1:]
        mask = Param(names.pick(["mask", "bias", "attn_mask", "m"]), "tensor", len(md), md)
        params.append(mask)
        pro = Expr("add", (pro, Ref(mask.name)))
    if k == 4:
        pro = _Ew(rng, [Ref(x.name)]).expr(1, pro)
    dim = rng.choice([-1, -1, -1, rank - 1, 0])
    out: Node = Expr(rng.choice(["softmax", "softmax", "log_softmax"]), (pro,), {"dim": dim})
    if rng.random() < 0.15:
        out = Expr("mul", (out, _const(rng)))
    used = _refs(out)
    return ExampleUnit(unit_name(rng, "softmax"), params + [s for s in scalars if s.name in used], [out], "softmax")


def norm_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([2, 2, 3])
    dims = _dims(rng, rank)
    x = Ref(names.pick(["x", "h", "hidden", "inp", "feat"]))
    params = [Param(x.name, "tensor", rank, dims)]
    eps = Param(names.pick(["eps", "epsilon"]), "float", 0, (), rng.choice([1e-5, 1e-6, 1e-8]))
    use_eps = rng.random() < 0.7
    e: Node = Ref(eps.name) if use_eps else rng.choice([1e-5, 1e-6])
    kind = rng.choice(["rms", "rms", "l2", "center"])
    if kind == "rms":
        sq = Expr("mul", (x, x)) if rng.random() < 0.5 else Expr("pow", (x, 2))
        ms = Expr("mean", (sq,), {"dim": -1, "keepdim": True})
        if rng.random() < 0.6:
            out: Node = Expr("mul", (x, Expr("rsqrt", (Expr("add", (ms, e)),))))
        else:
            out = Expr("div", (x, Expr("sqrt", (Expr("add", (ms, e)),))))
    elif kind == "l2":
        n = Expr("norm", (x,), {"dim": -1, "keepdim": True})
        if rng.random() < 0.5:
            out = Expr("div", (x, Expr("add", (n, e))))
        else:
            out = Expr("div", (x, Expr("clamp", (n,), {"min": e if not isinstance(e, Ref) else 1e-6})))
    else:
        xc = Expr("sub", (x, Expr("mean", (x,), {"dim": -1, "keepdim": True})))
        var = Expr("mean", (Expr("mul", (xc, xc)),), {"dim": -1, "keepdim": True})
        out = Expr("div", (xc, Expr("sqrt", (Expr("add", (var, e)),))))
    if rng.random() < 0.6:
        w = Param(names.pick(["weight", "w", "g", "gain"]), "tensor", 1, dims[-1:])
        params.append(w)
        out = Expr("mul", (out, Ref(w.name)))
    used = _refs(out)
    if eps.name in used:
        params.append(eps)
    return ExampleUnit(unit_name(rng, "norm"), params, [out], "norm")


def loss_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([1, 2, 2])
    dims = _dims(rng, rank)
    p = Ref(names.pick(["pred", "x", "inp", "logits", "out"]))
    t = Ref(names.pick(["target", "y", "label", "ref"]))
    params = [Param(p.name, "tensor", rank, dims), Param(t.name, "tensor", rank, dims)]
    op = rng.choice(["mse_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
                     "binary_cross_entropy"])
    red = rng.choice(["mean", "mean", "sum", "none"])
    attrs: dict = {"reduction": red}
    a: Node = p
    b: Node = t
    if op == "kl_div":
        d = -1
        a, b = Expr("log_softmax", (p,), {"dim": d}), Expr("softmax", (t,), {"dim": d})
        if red == "mean":  # torch warns on kl_div's 'mean' (it will change meaning): use batchmean
            attrs["reduction"] = "batchmean"
    elif op == "binary_cross_entropy":
        a, b = Expr("sigmoid", (p,)), Expr("sigmoid", (t,))
    else:
        if op == "smooth_l1_loss" and rng.random() < 0.5:
            attrs["beta"] = rng.choice([0.5, 2.0])
        if op == "huber_loss" and rng.random() < 0.5:
            attrs["delta"] = rng.choice([0.5, 2.0])
        if rng.random() < 0.3:
            a = activation(rng, p, rng.choice(["sigmoid", "tanh", "relu"]))
    out: Node = Expr(op, (a, b), attrs)
    if red != "none" and rng.random() < 0.2:
        out = Expr("mul", (out, _const(rng)))
    return ExampleUnit(unit_name(rng, "loss"), params, [out], "loss")


def multi_output_unit(rng: random.Random) -> ExampleUnit:
    names = _Names(rng)
    rank = rng.choice([1, 2, 2])
    dims = _dims(rng, rank)
    x = Ref(names.pick(TENSOR_NAMES))
    params = [Param(x.name, "tensor", rank, dims)]
    ew = _Ew(rng, [x])
    k = rng.randrange(4)
    if k == 0:
        outs: list[Node] = [ew.expr(rng.randint(1, 2)), ew.expr(rng.randint(1, 2))]
    elif k == 1:
        pro = ew.expr(rng.choice([0, 1]))
        outs = [Expr(op, (pro,), {"dim": -1, "keepdim": False}) for op in rng.sample(["sum", "amax", "mean",
                                                                                       "amin", "argmax"], 2)]
    elif k == 2:
        outs = [Expr("softmax", (x,), {"dim": -1}), Expr("logsumexp", (x,), {"dim": -1, "keepdim": False})]
    else:
        y = ew.expr(rng.randint(1, 2))
        outs = [y, Expr("amax", (Expr("abs", (y,)),), {"dim": None, "keepdim": False})]
    if len(set(outs)) < 2:
        outs = [outs[0], Expr("neg", (outs[0],))]
    return ExampleUnit(unit_name(rng, "multi"), params, outs, "multi_output")


FAMILIES = {
    "elementwise": (elementwise_unit, 4),
    "reduction": (reduction_unit, 3),
    "matmul": (matmul_unit, 2),
    "softmax": (softmax_unit, 2),
    "norm": (norm_unit, 1),
    "loss": (loss_unit, 1),
    "multi_output": (multi_output_unit, 1),
}


def generate_units(rng: random.Random, count: int, families: list[str] | None = None) -> list[ExampleUnit]:
    """`count` random units from the built-in families, weighted (elementwise most)."""
    fams = families or list(FAMILIES)
    weights = [FAMILIES[f][1] for f in fams]
    return [FAMILIES[rng.choices(fams, weights)[0]][0](rng) for _ in range(count)]
