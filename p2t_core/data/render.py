"""Render an `ExampleUnit` as Python source, in several styles, with random surface variation.

Styles (see `STYLES`):

- `torch`: `torch.exp(x)`, `torch.sum(x, dim=-1)`, `torch.nn.functional.gelu(x)` (`import torch`, at times
  `import torch as t`);
- `functional`: like torch, with `import torch.nn.functional as F` and `F.silu`, `F.softmax`, `F.mse_loss`;
- `method`: tensor methods, `x.exp().sum(-1)`, `x.softmax(dim=1)`, falling back to functions where torch
  has no method (activations, losses);
- `numpy`: `np.exp`, `np.sum(x, axis=1, keepdims=True)`, composite formulas where NumPy has no function
  (sigmoid, softmax, losses); runs on NumPy arrays. Not offered for units NumPy cannot express (erf-GELU,
  bfloat16 casts, kl_div with log targets);
- `loop`: explicit index loops in the forms `p2t_core/frontend/loops.py` normalizes: elementwise over 1-D/2-D
  (`out = torch.empty_like(x)`, `for i in range(x.shape[0]): for j in range(x.shape[1]): out[i, j] = ...`),
  row reductions (`acc = 0.0`, `for j in range(...): acc += ...`), the naive matmul triple loop, the
  three-pass loop softmax, scalar math through `math.*`. Only offered where `loop_plan(unit)` finds one;
- `module`: a `torch.nn.Module` subclass whose scalar parameters are constructor arguments stored in
  `__init__` (`self.eps = eps`) and whose `forward` takes the tensors; for half the units (`held_tensors`) one
  tensor is instead an `nn.Parameter` the constructor builds from size arguments (`self.weight =
  nn.Parameter(torch.ones(dim))`), as in a norm's weight or a linear layer's matrix.

Variation: random local names, temporaries vs nested expressions, keyword vs positional arguments,
`dim=-1` vs `dim=1`, docstrings and comments, annotations, alias imports, operator spacing. With
`plain=True` a rendering is deterministic (no rng): `target_source` uses that form of the torch style as
the source the compiler lowers into the pair's target.
"""

from __future__ import annotations

import random
import re

from p2t_core.data.examples import (
    BINARY,
    COMPARE,
    ExampleUnit,
    Expr,
    Ref,
    dims_of,
    op_kind,
)

STYLES = ("torch", "functional", "method", "numpy", "loop", "module")

ATOM, POW, UNARY, MULT, ADD, CMP = 100, 14, 13, 12, 11, 6
BINOPS = {"add": ("+", ADD), "sub": ("-", ADD), "mul": ("*", MULT), "div": ("/", MULT), "pow": ("**", POW),
          "lt": ("<", CMP), "gt": (">", CMP), "le": ("<=", CMP), "ge": (">=", CMP), "eq": ("==", CMP),
          "ne": ("!=", CMP)}
TORCH_UNARY = set("exp exp2 log log2 log1p sqrt rsqrt abs sin cos tanh sigmoid relu floor ceil sign reciprocal "
                  "neg selu".split())
METHOD_UNARY = TORCH_UNARY - {"selu"}
FUNCTIONAL = set("gelu silu softplus softsign leaky_relu elu hardtanh hardsigmoid hardswish mish relu selu".split())
ACT_DEFAULTS = {"leaky_relu": {"negative_slope": 0.01}, "elu": {"alpha": 1.0},
                "hardtanh": {"min_val": -1.0, "max_val": 1.0}, "gelu": {"approximate": "none"}}
RESERVED = {"torch", "t", "th", "F", "np", "numpy", "math", "nn", "self", "i", "j", "k", "r", "c", "row", "col"}
LOCAL_NAMES = ["y", "out", "tmp", "h", "s", "v", "res", "z", "u", "w0", "m", "e", "p", "acc", "result", "val",
               "tmp2", "g", "d", "o", "act", "num", "den", "total", "mx", "lse", "xs"]
DOCS = ["Fused {f} kernel candidate.", "Compute {n}.", "{f}: a small tensor function.", "Apply {n} to the inputs.",
        "Reference implementation of {n}."]
COMMENTS = ["# compute", "# fused", "# elementwise part", "# reduce", "# TODO: speed up", "# numerically ok"]
NP_DTYPES = {"float32": "float32", "float16": "float16", "float64": "float64"}


def _camel(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in name.split("_") if w) or "Unit"


def class_name(unit: ExampleUnit) -> str:
    return _camel(unit.name)


# --- style applicability --------------------------------------------------------------------------

def numpy_ok(unit: ExampleUnit) -> bool:
    def bad(n) -> bool:
        if not isinstance(n, Expr):
            return False
        if n.op == "gelu" and n.attrs.get("approximate", "none") == "none":
            return True
        if n.op == "cast" and n.attrs.get("dtype") not in NP_DTYPES:
            return True
        return any(bad(a) for a in n.args)

    return not any(bad(o) for o in unit.outputs)


LOOP_UNARY_BAD = {"sign"}
LOOP_BAD = {"where", "cast", *COMPARE, "sign"}
LOOP_REDUCE = {"sum", "mean", "max", "min", "amax", "amin", "prod", "norm"}


def loop_plan(unit: ExampleUnit) -> tuple[str, Expr | None] | None:
    """How the loop style writes this unit: ("ew", None), ("reduce"|"matmul"|"softmax", anchor), or None."""
    if len(unit.outputs) != 1 or any(p.rank > 2 or p.rank == 0 for p in unit.tensor_params):
        return None
    if set(unit.ops) & LOOP_BAD:
        return None
    out = unit.outputs[0]
    anchors: list[Expr] = []

    def walk(n):
        if isinstance(n, Expr):
            if op_kind(n.op) != "elementwise":
                anchors.append(n)
            for a in n.args:
                walk(a)

    walk(out)
    od = dims_of(out, unit)
    if not anchors:
        if len(od) in (1, 2) and any(p.dims == od for p in unit.tensor_params):
            return ("ew", None)
        return None
    if len(anchors) != 1:
        return None
    a = anchors[0]

    def inner_ok(n) -> bool:  # elementwise over tensors with the anchor's row layout
        return not isinstance(n, Expr) or (op_kind(n.op) == "elementwise" and all(inner_ok(x) for x in n.args))

    if a.op in LOOP_REDUCE:
        ad = dims_of(a.args[0], unit)
        if len(ad) != 2 or a.attrs.get("dim") not in (-1, 1) or a.attrs.get("keepdim"):
            return None
        if not inner_ok(a.args[0]) or not any(p.dims == ad for p in unit.tensor_params):
            return None
        if any(unit.param(r).is_tensor for r in _refs_outside(out, a)):
            return None
        return ("reduce", a)
    if a.op == "matmul":
        x, y = a.args
        if not (isinstance(x, Ref) and isinstance(y, Ref)) or a.attrs.get("transpose_a"):
            return None
        if unit.param(x.name).rank != 2 or unit.param(y.name).rank != 2:
            return None
        return ("matmul", a)
    if a.op in ("softmax", "log_softmax"):
        ad = dims_of(a.args[0], unit)
        if len(ad) != 2 or a.attrs.get("dim") not in (-1, 1) or not inner_ok(a.args[0]):
            return None
        if not any(p.dims == ad for p in unit.tensor_params):
            return None
        return ("softmax", a)
    return None


def _refs_outside(node, anchor) -> list[str]:
    out: list[str] = []

    def walk(n):
        if n is anchor:
            return
        if isinstance(n, Ref):
            out.append(n.name)
        elif isinstance(n, Expr):
            for x in n.args:
                walk(x)

    walk(node)
    return out


def applicable_styles(unit: ExampleUnit) -> list[str]:
    styles = ["torch", "functional", "method", "module"]
    if numpy_ok(unit):
        styles.append("numpy")
    if loop_plan(unit) is not None:
        styles.append("loop")
    return [s for s in STYLES if s in styles]


# --- the renderer ---------------------------------------------------------------------------------

class _Renderer:
    def __init__(self, unit: ExampleUnit, style: str, rng: random.Random | None, plain: bool = False):
        self.unit, self.style, self.plain = unit, style, plain
        self.rng = rng or random.Random(0)
        self.lines: list[tuple[int, str]] = []
        self.indent = 1
        self.memo: dict[Expr, str] = {}
        self.used_names = {p.name for p in unit.params} | RESERVED | {unit.name}
        self.imports: set[str] = set()
        self.flavor = style  # spelling flavor: torch | functional | method | numpy
        self.tmp_p = 0.0 if plain else self.rng.choice([0.0, 0.2, 0.5, 0.8])
        self.kw_p = 0.5
        self.tight = not plain and self.rng.random() < 0.15
        self.torch = "torch" if plain or self.rng.random() < 0.85 else self.rng.choice(["t", "th"])
        self.F = "F"
        self.np = "np" if plain or self.rng.random() < 0.85 else "numpy"
        self.self_scalars = False
        self.held: list = []  # module style: tensor parameters built in __init__ (`held_tensors`)
        self.counts: dict[Expr, int] = {}
        for o in unit.outputs:
            self._count(o)

    # randomness helpers
    def choose(self, options):
        return options[0] if self.plain else self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return False if self.plain else self.rng.random() < p

    def _count(self, n):
        if isinstance(n, Expr):
            self.counts[n] = self.counts.get(n, 0) + 1
            if self.counts[n] == 1:
                for a in n.args:
                    self._count(a)

    def fresh(self, hint: str | None = None) -> str:
        if self.plain:
            i = 0
            while f"t{i}" in self.used_names:
                i += 1
            name = f"t{i}"
        else:
            pool = [n for n in LOCAL_NAMES if n not in self.used_names]
            if hint and hint not in self.used_names and self.chance(0.5):
                name = hint
            elif pool:
                name = self.rng.choice(pool)
            else:
                i = 0
                while f"tmp{i}" in self.used_names:
                    i += 1
                name = f"tmp{i}"
        self.used_names.add(name)
        return name

    def emit(self, text: str) -> None:
        self.lines.append((self.indent, text))

    def bind(self, text: str, hint: str | None = None) -> str:
        name = self.fresh(hint)
        if self.chance(0.05):
            self.emit(self.choose(COMMENTS))
        self.emit(f"{name} = {text}")
        return name

    def atom(self, tp: tuple[str, int]) -> str:
        """The value as a name or another atom, binding a temporary when the text is compound."""
        text, prec = tp
        if prec == ATOM and (text.isidentifier() or text.replace(".", "").isidentifier()):
            return text
        return self.bind(text)

    # spelling helpers
    def T(self, name: str) -> str:
        self.imports.add("torch")
        return f"{self.torch}.{name}"

    def Fn(self, name: str) -> str:
        if self.flavor == "functional":
            self.imports.add("F")
            return f"{self.F}.{name}"
        return self.T(f"nn.functional.{name}")

    def N(self, name: str) -> str:
        self.imports.add("np")
        return f"{self.np}.{name}"

    @staticmethod
    def call(fn: str, args: list[str], kwargs: list[tuple[str, str]] = ()) -> tuple[str, int]:
        parts = list(args) + [f"{k}={v}" for k, v in kwargs]
        return f"{fn}({', '.join(parts)})", ATOM

    @staticmethod
    def paren(tp: tuple[str, int], need: int) -> str:
        text, prec = tp
        return f"({text})" if prec < need else text

    def method(self, obj: tuple[str, int], name: str, args: list[str] = (), kwargs=()) -> tuple[str, int]:
        return self.call(f"{self.paren(obj, ATOM)}.{name}", list(args), list(kwargs))

    def binop(self, sym: str, prec: int, a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
        if sym == "**":
            left, right = self.paren(a, POW + 1), self.paren(b, POW)
        else:
            left, right = self.paren(a, prec), self.paren(b, prec + 1)
        sp = "" if self.tight and sym in ("*", "/", "**") else " "
        return f"{left}{sp}{sym}{sp}{right}", prec

    def args_kw(self, pos: list[str], named: list[tuple[str, str]], force_kw: tuple[str, ...] = ()):
        """Split named arguments between positional and keyword form at random (a keyword stays keyword)."""
        args, kwargs = list(pos), []
        keyword = False
        for k, v in named:
            if k in force_kw or keyword or self.plain or self.chance(self.kw_p):
                keyword = True
                kwargs.append((k, v))
            else:
                args.append(v)
        return args, kwargs

    def dim_text(self, dim, rank: int) -> str:
        if dim is None:
            return "None"
        if rank and self.chance(0.35):
            dim = dim % rank if dim < 0 else dim - rank
        return repr(dim)

    # nodes
    def is_tensor(self, n) -> bool:
        if isinstance(n, Ref):
            return self.unit.param(n.name).is_tensor
        return isinstance(n, Expr)

    def node(self, n, top: bool = False) -> tuple[str, int]:
        if isinstance(n, Ref):
            p = self.unit.param(n.name)
            if self.self_scalars and (not p.is_tensor or p in self.held):
                return f"self.{p.name}", ATOM
            return p.name, ATOM
        if isinstance(n, bool):
            return repr(n), ATOM
        if isinstance(n, (int, float)):
            text = repr(n)
            return text, (UNARY if text.startswith("-") else ATOM)
        if n in self.memo:
            return self.memo[n], ATOM
        tp = self.expr(n)
        shared = self.counts.get(n, 0) > 1
        if shared or (not top and self.chance(self.tmp_p)):
            name = self.bind(tp[0], _hint(n.op))
            self.memo[n] = name
            return name, ATOM
        return tp

    def expr(self, e: Expr) -> tuple[str, int]:
        kind = op_kind(e.op)
        if kind == "elementwise":
            return self.elementwise(e)
        if kind == "reduce":
            return self.reduce(e)
        if kind == "matmul":
            return self.matmul(e)
        if kind == "softmax":
            return self.softmax(e)
        return self.loss(e)

    # elementwise
    def elementwise(self, e: Expr) -> tuple[str, int]:
        op, fl, at = e.op, self.flavor, e.attrs
        if op in BINARY or op in COMPARE:
            a, b = (self.node(x) for x in e.args)
            first_tensor = self.is_tensor(e.args[0])
            if op in ("maximum", "minimum"):
                if fl == "numpy":
                    return self.call(self.N(op), [a[0], b[0]])
                if fl == "method" and first_tensor:
                    return self.method(a, op, [b[0]])
                return self.call(self.T(op), [a[0], b[0]])
            sym, prec = BINOPS[op]
            if fl == "numpy" and op == "pow" and self.chance(0.3):
                return self.call(self.N("power"), [a[0], b[0]])
            if first_tensor and fl in ("torch", "functional") and self.chance(0.15):
                return self.call(self.T(op), [a[0], b[0]])
            if first_tensor and fl == "method" and self.chance(0.3):
                return self.method(a, op, [b[0]])
            return self.binop(sym, prec, a, b)
        if op == "where":
            c, a, b = (self.node(x)[0] for x in e.args)
            return self.call(self.N("where") if fl == "numpy" else self.T("where"), [c, a, b])
        if op == "clamp":
            x = self.node(e.args[0])
            lo, hi = at.get("min"), at.get("max")
            if fl == "numpy":
                return self.call(self.N("clip"), [x[0], repr(lo), repr(hi)])
            named = [(k, repr(v)) for k, v in (("min", lo), ("max", hi)) if v is not None]
            if lo is None:
                args, kwargs = [], named
            else:
                args, kwargs = self.args_kw([], named)
            if fl == "method":
                return self.method(x, self.choose(["clamp", "clip"]), args, kwargs)
            return self.call(self.T(self.choose(["clamp", "clip"])), [x[0], *args], kwargs)
        if op == "cast":
            x = self.node(e.args[0])
            dt = at["dtype"]
            if fl == "numpy":
                return self.method(x, "astype", [self.N(NP_DTYPES[dt])])
            short = {"float16": "half", "float32": "float", "bfloat16": "bfloat16", "float64": "double"}
            if fl == "method" and self.chance(0.6):
                return self.method(x, short[dt])
            if self.plain and not re.fullmatch(r"[A-Za-z_]\w*(\.to\([\w.]+\))*", x[0]):
                # The frontend reads `torch.exp(x).to(...)` as a call to `torch.exp.to`: a temporary instead.
                x = (self.bind(x[0]), ATOM)
            return self.method(x, "to", [self.T(dt)])
        # unary
        x = self.node(e.args[0])
        if op == "neg":
            if fl == "method" and self.chance(0.3):
                return self.method(x, "neg")
            return f"-{self.paren(x, UNARY)}", UNARY
        if fl == "numpy":
            return self.np_unary(op, x, at)
        if fl == "method" and op in METHOD_UNARY and (op != "relu" or self.chance(0.7)):
            return self.method(x, op)
        if op in FUNCTIONAL and (fl == "functional" or op not in TORCH_UNARY):
            named = [(k, repr(v)) for k, v in at.items()]
            if op in ACT_DEFAULTS and not self.plain and all(ACT_DEFAULTS[op].get(k) == v for k, v in at.items()):
                if self.chance(0.5):
                    named = []
            force = ("approximate",)
            args, kwargs = self.args_kw([x[0]], named, force)
            return self.call(self.Fn(op), args, kwargs)
        if op in TORCH_UNARY:
            return self.call(self.T(op), [x[0]])
        raise ValueError(f"cannot render {op}")

    def np_unary(self, op: str, x: tuple[str, int], at: dict) -> tuple[str, int]:
        direct = {"exp", "exp2", "log", "log2", "log1p", "sqrt", "abs", "sin", "cos", "tanh", "floor", "ceil",
                  "sign", "reciprocal"}
        if op in direct:
            return self.call(self.N(op), [x[0]])
        if op == "rsqrt":
            return f"1.0 / {self.N('sqrt')}({x[0]})", MULT
        if op == "relu":
            return self.call(self.N("maximum"), [x[0], "0.0"])
        v = self.atom(x)
        exp = self.N("exp")
        if op == "sigmoid":
            return f"1.0 / (1.0 + {exp}(-{v}))", MULT
        if op == "silu":
            return f"{v} / (1.0 + {exp}(-{v}))", MULT
        if op == "softplus":
            return f"{self.N('logaddexp')}(0.0, {v})", ATOM
        if op == "softsign":
            return f"{v} / (1.0 + {self.N('abs')}({v}))", MULT
        if op == "mish":
            return f"{v} * {self.N('tanh')}({self.N('logaddexp')}(0.0, {v}))", MULT
        if op == "leaky_relu":
            s = at.get("negative_slope", 0.01)
            return f"{self.N('where')}({v} >= 0, {v}, {v} * {s!r})", ATOM
        if op in ("elu", "selu"):
            alpha = at.get("alpha", 1.0) if op == "elu" else 1.6732632423543772
            inner = f"{self.N('where')}({v} > 0, {v}, {alpha!r} * {self.N('expm1')}({self.N('minimum')}({v}, 0.0)))"
            return (inner, ATOM) if op == "elu" else (f"1.0507009873554805 * {inner}", MULT)
        if op == "hardtanh":
            return self.call(self.N("clip"), [v, repr(at.get("min_val", -1.0)), repr(at.get("max_val", 1.0))])
        if op == "hardsigmoid":
            return f"{self.N('clip')}({v} / 6.0 + 0.5, 0.0, 1.0)", ATOM
        if op == "hardswish":
            return f"{v} * {self.N('clip')}({v} + 3.0, 0.0, 6.0) / 6.0", MULT
        if op == "gelu":  # tanh approximation (erf-GELU is not offered in numpy style)
            return (f"0.5 * {v} * (1.0 + {self.N('tanh')}(0.7978845608028654 * ({v} + 0.044715 * {v} ** 3)))",
                    MULT)
        raise ValueError(f"cannot render {op} in numpy style")

    # reductions
    def reduce(self, e: Expr) -> tuple[str, int]:
        op, fl = e.op, self.flavor
        dim, keep = e.attrs.get("dim"), e.attrs.get("keepdim", False)
        rank = len(dims_of(e.args[0], self.unit))
        x = self.node(e.args[0])
        if fl == "numpy":
            return self.np_reduce(op, x, dim, keep, rank)
        name = {"norm": "norm"}.get(op, op)
        named: list[tuple[str, str]] = []
        if dim is not None:
            named.append(("dim", self.dim_text(dim, rank)))
            if keep:
                named.append(("keepdim", "True"))
            elif self.chance(0.1):
                named.append(("keepdim", "False"))
        elif keep:
            named = [("dim", repr(tuple(range(rank))) if op not in ("argmax", "argmin", "prod") else "None"),
                     ("keepdim", "True")]
        values = op in ("max", "min") and dim is not None
        if op == "norm" and self.chance(0.3):
            named = [("p", "2")] + named
        force = tuple(k for k, _ in named) if op == "norm" else ("keepdim",) if op in ("var", "std") else ()
        args, kwargs = self.args_kw([], named, force)
        if fl == "method" and self.is_tensor(e.args[0]):
            tp = self.method(x, name, args, kwargs)
        else:
            tp = self.call(self.T(name), [x[0], *args], kwargs)
        if values:
            # The plain (target) form indexes: the compiler reads `[0]` of a (values, indices) pair, not `.values`.
            tp = (f"{tp[0]}[0]", ATOM) if self.plain or self.chance(0.3) else (f"{tp[0]}.values", ATOM)
        return tp

    def np_reduce(self, op, x, dim, keep, rank) -> tuple[str, int]:
        named = []
        if dim is not None:
            named.append(("axis", self.dim_text(dim, rank)))
        if keep:
            named.append(("keepdims", "True"))
        if op in ("var", "std"):
            named.append(("ddof", "1"))
        if op == "logsumexp":
            v = self.atom(x)
            inner_kw = [("axis", named[0][1])] if dim is not None else []
            m = self.bind(self.call(self.N("max"), [v], [*inner_kw, ("keepdims", "True")])[0], "mx")
            s = self.call(self.N("sum"), [f"{self.N('exp')}({v} - {m})"], inner_kw + [("keepdims", "True")])[0]
            out = f"{self.N('log')}({s}) + {m}"
            if not keep:
                squeeze = [("axis", named[0][1])] if dim is not None else []
                return self.call(self.N("squeeze"), [out], squeeze)
            return out, ADD
        if op == "norm":
            return self.call(self.N("linalg.norm"), [x[0]], named)
        fn = {"max": "max", "min": "min"}.get(op, op)
        return self.call(self.N(fn), [x[0]], named)

    def matmul(self, e: Expr) -> tuple[str, int]:
        fl = self.flavor
        parts = []
        for arg, tr in zip(e.args, (e.attrs.get("transpose_a"), e.attrs.get("transpose_b")), strict=True):
            tp = self.node(arg)
            if tr:
                rank = len(dims_of(arg, self.unit))
                if fl == "numpy":
                    tp = (f"{self.paren(tp, ATOM)}.T", ATOM) if rank == 2 else \
                        self.call(self.N("swapaxes"), [tp[0], "-1", "-2"])
                elif rank == 2:
                    tp = self.choose([(f"{self.paren(tp, ATOM)}.T", ATOM), self.method(tp, "t"),
                                      self.method(tp, "transpose", ["0", "1"])])
                else:
                    tp = self.choose([self.method(tp, "transpose", ["-1", "-2"]), (f"{self.paren(tp, ATOM)}.mT", ATOM)])
            parts.append(tp)
        a, b = parts
        if self.chance(0.4):
            return self.binop("@", MULT, a, b)
        if fl == "numpy":
            return self.call(self.N("matmul"), [a[0], b[0]])
        ranks = {len(dims_of(x, self.unit)) for x in e.args}
        if fl == "method" and self.is_tensor(e.args[0]):
            return self.method(a, "matmul", [b[0]])
        fn = self.choose(["matmul"] + (["mm"] if ranks == {2} else ["bmm"] if ranks == {3} else []))
        return self.call(self.T(fn), [a[0], b[0]])

    def softmax(self, e: Expr) -> tuple[str, int]:
        op, fl = e.op, self.flavor
        rank = len(dims_of(e.args[0], self.unit))
        x = self.node(e.args[0])
        d = self.dim_text(e.attrs["dim"], rank)
        if fl == "numpy":
            v = self.atom(x)
            m = self.bind(f"{self.N('max')}({v}, axis={d}, keepdims=True)", "mx")
            if op == "softmax":
                ex = self.bind(f"{self.N('exp')}({v} - {m})", "e")
                return f"{ex} / {self.N('sum')}({ex}, axis={d}, keepdims=True)", MULT
            sh = self.bind(f"{v} - {m}", "z")
            return f"{sh} - {self.N('log')}({self.N('sum')}({self.N('exp')}({sh}), axis={d}, keepdims=True))", ADD
        args, kwargs = self.args_kw([], [("dim", d)])
        if fl == "method":
            return self.method(x, op, args, kwargs)
        if fl == "functional":
            return self.call(self.Fn(op), [x[0], *args], kwargs)
        return self.call(self.T(op), [x[0], *args], kwargs)

    def loss(self, e: Expr) -> tuple[str, int]:
        op, fl, at = e.op, self.flavor, dict(e.attrs)
        a, b = (self.node(x) for x in e.args)
        if fl == "numpy":
            return self.np_loss(op, a, b, at)
        red = at.pop("reduction", "mean")
        named = [(k, repr(v)) for k, v in at.items()]
        if red != "mean" or self.plain or self.chance(0.5):
            named.append(("reduction", repr(red)))
        args, kwargs = [a[0], b[0]], named  # losses: every option by keyword (positional slots are legacy)
        return self.call(self.Fn(op), args, kwargs)

    def np_loss(self, op, a, b, at) -> tuple[str, int]:
        red = at.get("reduction", "mean")
        if op in ("kl_div",):
            av, bv = self.atom(a), self.atom(b)
            el = f"{bv} * ({self.N('log')}({bv}) - {av})"
        elif op == "binary_cross_entropy":
            av, bv = self.atom(a), self.atom(b)
            lg = self.N("log")
            mx = self.N("maximum")
            el = f"-({bv} * {mx}({lg}({av}), -100.0) + (1.0 - {bv}) * {mx}({lg}(1.0 - {av}), -100.0))"
        elif op == "mse_loss":
            el = f"({self.paren(a, ADD + 1)} - {self.paren(b, ADD + 1)}) ** 2"
        else:
            d = self.bind(f"{self.N('abs')}({self.paren(a, ADD + 1)} - {self.paren(b, ADD + 1)})", "d")
            if op == "l1_loss":
                el = d
            elif op == "smooth_l1_loss":
                beta = at.get("beta", 1.0)
                el = f"{self.N('where')}({d} < {beta!r}, 0.5 * {d} ** 2 / {beta!r}, {d} - 0.5 * {beta!r})"
            else:
                delta = at.get("delta", 1.0)
                el = f"{self.N('where')}({d} < {delta!r}, 0.5 * {d} ** 2, {delta!r} * ({d} - 0.5 * {delta!r}))"
        if red == "none":
            return el, CMP
        if red == "sum":
            return self.call(self.N("sum"), [el])
        if red == "batchmean":
            ev = self.bind(el)
            return f"{self.N('sum')}({ev}) / {ev}.shape[0]", MULT
        return self.call(self.N("mean"), [el])

    # whole units
    def header_params(self, params, annotate_tensor: bool) -> str:
        parts = []
        for p in params:
            if p.is_tensor:
                parts.append(f"{p.name}: {self.T('Tensor')}" if annotate_tensor else p.name)
            else:
                default = repr(p.default if p.default is not None else (1 if p.kind == "int" else 0.5))
                if self.plain or self.chance(0.6):
                    parts.append(f"{p.name}: {p.kind} = {default}")
                else:
                    parts.append(f"{p.name}={default}")
        return ", ".join(parts)

    def docstring(self, indent: str) -> list[str]:
        if self.chance(0.25):
            text = self.choose(DOCS).format(f=self.unit.family, n=self.unit.name)
            return [f'{indent}"""{text}"""']
        return []

    def body_return(self) -> None:
        outs = [self.node(o, top=True) for o in self.unit.outputs]
        if len(outs) == 1:
            text = outs[0][0]
            if self.chance(0.3) and not text.isidentifier():
                name = self.bind(text, "out")
                text = name
            self.emit(f"return {text}")
        else:
            texts = [o[0] for o in outs]
            joined = ", ".join(texts)
            self.emit(f"return ({joined})" if self.chance(0.3) else f"return {joined}")

    def imports_text(self) -> list[str]:
        lines = []
        if "math" in self.imports:
            lines.append("import math")
        if "np" in self.imports:
            lines.append("import numpy as np" if self.np == "np" else "import numpy")
        if "torch" in self.imports or "F" in self.imports or "nn" in self.imports:
            lines.append("import torch" if self.torch == "torch" else f"import torch as {self.torch}")
        if "F" in self.imports:
            lines.append(self.choose(["import torch.nn.functional as F", "from torch.nn import functional as F"]))
        if "nn" in self.imports:
            lines.append(self.choose(["from torch import nn", "import torch.nn as nn"]))
        return lines

    def render_function(self) -> str:
        u = self.unit
        numpy_style = self.flavor == "numpy"
        sig = self.header_params(u.params, annotate_tensor=not numpy_style and self.chance(0.3))
        self.body_return()
        ret = f" -> {self.T('Tensor')}" if not numpy_style and len(u.outputs) == 1 and self.chance(0.15) else ""
        head = [f"def {u.name}({sig}){ret}:", *self.docstring("    ")]
        return self.assemble(head)

    def render_module(self) -> str:
        u = self.unit
        self.self_scalars = True
        self.held = held_tensors(u)
        self.imports.add("nn")
        self.body_return()
        body = self.lines
        self.lines = []
        base = self.choose(["nn.Module", f"{self.torch}.nn.Module"])
        out = [f"class {class_name(u)}({base}):", *self.docstring("    ")]
        scalars = u.scalar_params
        sizes = {p.name: size_args(u, p) for p in self.held}
        if scalars or self.held or self.plain or self.chance(0.7):
            annotate = self.plain or self.chance(0.6)
            head = [f"{a}: int" if annotate else a for p in self.held for a in sizes[p.name]]
            head += [self.header_params(scalars, False)] if scalars else []
            out.append(f"    def __init__(self{''.join(', ' + h for h in head)}):")
            out.append("        super().__init__()")
            for p in self.held:
                out.append(f"        self.{p.name} = nn.Parameter({self.torch}.{held_init(p)}"
                           f"({', '.join(sizes[p.name])}))")
            for p in scalars:
                out.append(f"        self.{p.name} = {p.name}")
            out.append("")
        fwd = self.header_params(forward_tensors(u, "module"), annotate_tensor=self.chance(0.3))
        out.append(f"    def forward(self, {fwd}):")
        out += ["    " + "    " * ind + text for ind, text in body]
        return "\n".join(self.imports_text() + ["", ""] + out) + "\n"

    def assemble(self, head: list[str]) -> str:
        body = ["    " * ind + text for ind, text in self.lines]
        blank = [""] if self.chance(0.2) else []
        return "\n".join(self.imports_text() + ["", ""] + head + blank + body) + "\n"


def _hint(op: str) -> str | None:
    return {"exp": "e", "sum": "total", "mean": "m", "softmax": "p", "matmul": "acc", "amax": "mx", "max": "mx",
            "sigmoid": "g", "norm": "nrm", "rsqrt": "inv", "sqrt": "den"}.get(op)


# --- loop style ------------------------------------------------------------------------------------

class _LoopRenderer(_Renderer):
    def __init__(self, unit, rng, plain=False):
        super().__init__(unit, "loop", rng, plain)
        self.imports.add("torch")
        self.idx: list[str] = []
        self.anchor = None
        self.anchor_value = ""

    def size(self, var) -> str:
        for p in self.unit.tensor_params:
            if var in p.dims:
                return f"{p.name}.shape[{p.dims.index(var)}]"
        raise ValueError(var)

    def sc(self, n) -> tuple[str, int]:
        """A scalar expression of the element at the current loop indices."""
        if n is self.anchor or (self.anchor is not None and n == self.anchor):
            return self.anchor_value, ATOM
        if isinstance(n, Ref):
            p = self.unit.param(n.name)
            if not p.is_tensor:
                return p.name, ATOM
            return f"{p.name}[{', '.join(self.idx[len(self.idx) - p.rank:])}]", ATOM
        if not isinstance(n, Expr):
            return self.node(n)
        op, at = n.op, n.attrs
        args = [self.sc(a) for a in n.args]
        if op in BINOPS:
            sym, prec = BINOPS[op]
            return self.binop(sym, prec, args[0], args[1])
        if op in ("maximum", "minimum"):
            return self.call(op[:3], [args[0][0], args[1][0]])
        if op == "clamp":
            v = args[0][0]
            if at.get("min") is not None:
                v = f"max({v}, {at['min']!r})"
            if at.get("max") is not None:
                v = f"min({v}, {at['max']!r})"
            return v, ATOM
        x = args[0]
        self.imports.add("math")
        simple = {"exp": "math.exp", "log": "math.log", "log2": "math.log2", "log1p": "math.log1p",
                  "sqrt": "math.sqrt", "sin": "math.sin", "cos": "math.cos", "tanh": "math.tanh",
                  "floor": "math.floor", "ceil": "math.ceil", "abs": "abs"}
        if op in simple:
            return self.call(simple[op], [x[0]])
        if op == "neg":
            return f"-{self.paren(x, UNARY)}", UNARY
        if op == "exp2":
            return f"2.0 ** {self.paren(x, POW)}", POW
        if op == "rsqrt":
            return f"1.0 / math.sqrt({x[0]})", MULT
        if op == "reciprocal":
            return f"1.0 / {self.paren(x, MULT + 1)}", MULT
        if op == "relu":
            return f"max({x[0]}, 0.0)", ATOM
        v = self.atom(x)
        if op == "sigmoid":
            return f"1.0 / (1.0 + math.exp(-{v}))", MULT
        if op == "silu":
            return f"{v} / (1.0 + math.exp(-{v}))", MULT
        if op == "softplus":
            return f"math.log1p(math.exp({v}))", ATOM
        if op == "softsign":
            return f"{v} / (1.0 + abs({v}))", MULT
        if op == "mish":
            return f"{v} * math.tanh(math.log1p(math.exp({v})))", MULT
        if op == "leaky_relu":
            return f"max({v}, 0.0) + {at.get('negative_slope', 0.01)!r} * min({v}, 0.0)", ADD
        if op == "elu":
            return f"max({v}, 0.0) + min(0.0, {at.get('alpha', 1.0)!r} * (math.exp({v}) - 1.0))", ADD
        if op == "selu":
            return f"1.0507009873554805 * (max({v}, 0.0) + min(0.0, 1.6732632423543772 * (math.exp({v}) - 1.0)))", MULT
        if op == "hardtanh":
            return f"min(max({v}, {at.get('min_val', -1.0)!r}), {at.get('max_val', 1.0)!r})", ATOM
        if op == "hardsigmoid":
            return f"min(max({v} / 6.0 + 0.5, 0.0), 1.0)", ATOM
        if op == "hardswish":
            return f"{v} * min(max({v} + 3.0, 0.0), 6.0) / 6.0", MULT
        if op == "gelu":
            if at.get("approximate", "none") == "tanh":
                return f"0.5 * {v} * (1.0 + math.tanh(0.7978845608028654 * ({v} + 0.044715 * {v} ** 3)))", MULT
            return f"0.5 * {v} * (1.0 + math.erf({v} / math.sqrt(2.0)))", MULT
        raise ValueError(f"cannot render {op} in a loop")

    def loop(self, var: str, size: str, start: str = "") -> None:
        self.emit(f"for {var} in range({start}{size}):")
        self.indent += 1

    def render(self) -> str:
        u = self.unit
        kind, anchor = loop_plan(u)
        self.anchor = anchor
        out_name = self.fresh("out")
        params = {p.name for p in u.params}
        triples = [t for t in [("i", "j", "k"), ("r", "c", "k"), ("row", "col", "k"), ("i0", "i1", "i2")]
                   if not params & set(t)]
        names = self.choose(triples)
        odims = dims_of(u.outputs[0], u)
        if kind == "ew":
            full = next(p for p in u.tensor_params if p.dims == odims)
            self.emit(f"{out_name} = {self.T('empty_like')}({full.name})")
            self.idx = list(names[:len(odims)])
            for var, d in zip(self.idx, odims, strict=True):
                self.loop(var, self.size(d))
            self.emit(f"{out_name}[{', '.join(self.idx)}] = {self.sc(u.outputs[0])[0]}")
        elif kind == "reduce":
            x = anchor.args[0]
            ad = dims_of(x, u)
            full = next(p for p in u.tensor_params if p.dims == ad)
            self.emit(f"{out_name} = {self.T('empty')}({full.name}.shape[0], dtype={full.name}.dtype, "
                      f"device={full.name}.device)")
            i, j = names[:2]
            self.loop(i, self.size(ad[0]))
            acc = self.fresh("acc")
            op = anchor.op
            init = {"sum": "0.0", "mean": "0.0", "norm": "0.0", "prod": "1.0", "max": "-math.inf",
                    "amax": "-math.inf", "min": "math.inf", "amin": "math.inf"}[op]
            if "math" in init:
                self.imports.add("math")
            self.emit(f"{acc} = {init}")
            self.loop(j, self.size(ad[1]))
            self.idx = [i, j]
            v = self.sc(x)
            if op in ("sum", "mean"):
                self.emit(f"{acc} += {v[0]}")
            elif op == "norm":
                vv = self.atom(v)
                self.emit(f"{acc} += {vv} * {vv}")
            elif op == "prod":
                self.emit(f"{acc} *= {v[0]}")
            else:
                fn = "max" if op in ("max", "amax") else "min"
                self.emit(f"{acc} = {fn}({acc}, {v[0]})")
            self.indent -= 1
            if op == "mean":
                self.emit(f"{acc} = {acc} / {self.size(ad[1])}")
            elif op == "norm":
                self.imports.add("math")
                self.emit(f"{acc} = math.sqrt({acc})")
            self.anchor_value = acc
            self.idx = [i]
            self.emit(f"{out_name}[{i}] = {self.sc(u.outputs[0])[0]}")
        elif kind == "matmul":
            a, b = (u.param(r.name) for r in anchor.args)
            tb = anchor.attrs.get("transpose_b")
            self.emit(f"{out_name} = {self.T('empty')}({a.name}.shape[0], {b.name}.shape[{0 if tb else 1}], "
                      f"dtype={a.name}.dtype, device={a.name}.device)")
            i, j, k = names
            self.loop(i, f"{a.name}.shape[0]")
            self.loop(j, f"{b.name}.shape[{0 if tb else 1}]")
            acc = self.fresh("acc")
            self.emit(f"{acc} = 0.0")
            self.loop(k, f"{a.name}.shape[1]")
            bidx = f"{j}, {k}" if tb else f"{k}, {j}"
            self.emit(f"{acc} += {a.name}[{i}, {k}] * {b.name}[{bidx}]")
            self.indent -= 1
            self.anchor_value = acc
            self.idx = [i, j]
            self.emit(f"{out_name}[{i}, {j}] = {self.sc(u.outputs[0])[0]}")
        else:  # softmax
            self.imports.add("math")
            x = anchor.args[0]
            ad = dims_of(x, u)
            full = next(p for p in u.tensor_params if p.dims == ad)
            self.emit(f"{out_name} = {self.T('empty_like')}({full.name})")
            i, j = names[:2]
            self.loop(i, self.size(ad[0]))
            mx, s = self.fresh("mx"), self.fresh("total")
            self.idx = [i, j]
            self.emit(f"{mx} = -math.inf")
            self.loop(j, self.size(ad[1]))
            self.emit(f"{mx} = max({mx}, {self.sc(x)[0]})")
            self.indent -= 1
            self.emit(f"{s} = 0.0")
            self.loop(j, self.size(ad[1]))
            self.emit(f"{s} += math.exp({self.paren(self.sc(x), ADD + 1)} - {mx})")
            self.indent -= 1
            self.loop(j, self.size(ad[1]))
            xs = self.paren(self.sc(x), ADD + 1)
            if anchor.op == "softmax":
                self.anchor_value = f"(math.exp({xs} - {mx}) / {s})"
            else:
                self.anchor_value = f"({xs} - {mx} - math.log({s}))"
            self.emit(f"{out_name}[{i}, {j}] = {self.sc(u.outputs[0])[0]}")
        self.indent = 1
        self.emit(f"return {out_name}")
        sig = self.header_params(u.params, annotate_tensor=self.chance(0.2))
        head = [f"def {u.name}({sig}):", *self.docstring("    ")]
        return self.assemble(head)


def render(unit: ExampleUnit, style: str, rng: random.Random | None = None, plain: bool = False) -> str:
    """Python source of `unit` in `style`; `rng` drives the surface variation (None or plain: deterministic)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if rng is None:
        plain = True
    if style == "loop":
        if loop_plan(unit) is None:
            raise ValueError(f"unit {unit.name} cannot be written as loops")
        return _LoopRenderer(unit, rng, plain).render()
    if style == "numpy" and not numpy_ok(unit):
        raise ValueError(f"unit {unit.name} cannot be written with NumPy")
    if style == "module":
        r = _Renderer(unit, "module", rng, plain)
        r.flavor = "torch" if plain else r.rng.choice(["torch", "functional", "method"])
        return r.render_module()
    return _Renderer(unit, style, rng, plain).render_function()


def target_source(unit: ExampleUnit, style: str = "torch") -> str:
    """The deterministic torch-style source the compiler lowers into the pair's target.

    Every styling of a unit gets the target compiled from this one source (a function; for the `module`
    style, the torch-style Module class, so the target keeps the class and its `__init__` signature).
    """
    return render(unit, "module" if style == "module" else "torch", None, plain=True)


def held_tensors(unit: ExampleUnit) -> list:
    """The tensor parameters a module-style rendering builds in `__init__` as `nn.Parameter`s instead of taking them
    in `forward`: for half the units (by their structural key), the last tensor parameter after the first, of rank
    1 or 2, whose every size is a size variable another tensor parameter also has (so the constructor's size
    arguments meet the inputs' sizes). A function of the unit alone: the prompt's rendering and the target's agree."""
    tensors = unit.tensor_params
    if len(tensors) < 2 or int(unit.key()[:8], 16) % 2:
        return []
    for p in reversed(tensors[1:]):
        others = {d for q in tensors if q is not p for d in q.dims}
        if 1 <= p.rank <= 2 and all(isinstance(d, str) and d in others for d in p.dims):
            return [p]
    return []


def forward_tensors(unit: ExampleUnit, style: str) -> list:
    """The tensor parameters the rendering's entry takes, in order: all of them, but a module's held tensors, which
    are its own and not `forward`'s."""
    held = held_tensors(unit) if style == "module" else []
    return [p for p in unit.tensor_params if p not in held]


def held_init(held) -> str:
    """How the constructor fills a held tensor (`torch.ones` for a vector, `torch.randn` for a matrix): one choice
    for the prompt's rendering and the target's, so the target's constructor agrees."""
    return "ones" if held.rank == 1 else "randn"


def size_args(unit: ExampleUnit, held) -> list[str]:
    """The constructor arguments giving a held tensor's sizes: `dim` for a vector, `in_features, out_features` for
    a matrix (with `_` appended where the unit already has a parameter of that name)."""
    names = ["dim"] if held.rank == 1 else ["in_features", "out_features"]
    taken = {p.name for p in unit.params}
    return [n + "_" if n in taken else n for n in names]


def unit_entry(unit: ExampleUnit, style: str) -> str:
    """The name the unit has in a rendering of `style`: the function, or the Module class."""
    return class_name(unit) if style == "module" else unit.name
