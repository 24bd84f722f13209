"""Example units: the expression-tree form of a translation unit that the data pipeline renders.

An `ExampleUnit` is what a plugin's `p2t_example_units(rng, count)` hook returns (see
`p2t_core.hookspecs`): a name, parameters, one or more output expressions, the family it belongs to
(normally the plugin's name: "elementwise", "reduction", "matmul", "softmax", ...) and the op names
it uses. The pipeline renders a unit in several Python styles (`p2t_core.data.render`), canonicalizes
each rendering (the LLM's prompt) and lowers the unit through the compiler (the target).

Expressions are trees of `Expr(op, args, attrs)` whose leaves are `Ref(name)` (a parameter) or Python
constants (`float`, `int`, `bool`). `op` is a compiler op name:

- elementwise: add sub mul div neg exp exp2 log log2 log1p sqrt rsqrt abs sin cos tanh sigmoid relu
  leaky_relu(negative_slope) elu(alpha) selu gelu(approximate='none'|'tanh') silu softplus softsign
  hardtanh(min_val, max_val) hardsigmoid hardswish mish pow reciprocal maximum minimum floor ceil sign
  where clamp(min, max) lt gt le ge eq ne, and cast(dtype);
- reductions: sum mean max min amax amin prod argmax argmin var std norm logsumexp with attrs
  `dim` (an int, or None for the whole tensor) and `keepdim`;
- matmul (attrs `transpose_a`, `transpose_b`); softmax and log_softmax (attr `dim`);
- losses mse_loss l1_loss smooth_l1_loss(beta) huber_loss(delta) kl_div binary_cross_entropy with
  attr `reduction` ('mean' | 'sum' | 'none'; kl_div also 'batchmean').

Size variables: a tensor parameter's `dims` names its sizes ("M", "N", ...) or fixes them (ints); the
same name means the same size. `evaluate(unit, inputs)` is the reference semantics in torch, straight
from the tree; the renderings must agree with it (tests/data checks this for every style).

This module depends only on the standard library (torch is imported inside the functions that run
units), so plugins can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

Size = str | int


@dataclass(frozen=True)
class Param:
    """A parameter: a tensor (`rank`, `dims`) or a scalar (`kind` "float"/"int", with a `default`)."""

    name: str
    kind: str = "tensor"  # "tensor" | "float" | "int"
    rank: int = 0
    dims: tuple[Size, ...] = ()
    default: float | int | None = None

    def __post_init__(self):
        if self.kind not in ("tensor", "float", "int"):
            raise ValueError(f"param {self.name}: kind must be tensor, float or int, not {self.kind!r}")
        if self.kind == "tensor" and len(self.dims) != self.rank:
            raise ValueError(f"param {self.name}: rank {self.rank} but dims {self.dims}")

    @property
    def is_tensor(self) -> bool:
        return self.kind == "tensor"


@dataclass(frozen=True)
class Ref:
    """A reference to a parameter by name."""

    name: str


@dataclass(frozen=True)
class Expr:
    op: str
    args: tuple = ()
    attrs: dict = field(default_factory=dict)

    def __hash__(self):
        return hash((self.op, self.args, json.dumps(self.attrs, sort_keys=True, default=str)))


Node = Expr | Ref | float | int | bool


@dataclass(frozen=True)
class ExampleUnit:
    name: str
    params: list[Param]
    outputs: list[Node]
    family: str
    ops: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.ops:
            object.__setattr__(self, "ops", tuple(sorted(ops_of(self.outputs))))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"unit {self.name}: duplicate parameter names {names}")

    @property
    def tensor_params(self) -> list[Param]:
        return [p for p in self.params if p.is_tensor]

    @property
    def scalar_params(self) -> list[Param]:
        return [p for p in self.params if not p.is_tensor]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def key(self) -> str:
        """A structural hash: equal for units that compute the same tree over the same parameters."""
        if "_key" not in self.__dict__:  # memoized (the unit is frozen; the pipeline asks often)
            self.__dict__["_key"] = hashlib.sha256(to_json(self, with_name=False).encode()).hexdigest()
        return self.__dict__["_key"]


# --- op catalogue ---------------------------------------------------------------------------------

UNARY = ("neg exp exp2 log log2 log1p sqrt rsqrt abs sin cos tanh sigmoid relu leaky_relu elu selu gelu silu "
         "softplus softsign hardtanh hardsigmoid hardswish mish reciprocal floor ceil sign").split()
BINARY = "add sub mul div pow maximum minimum".split()
COMPARE = "lt gt le ge eq ne".split()
ELEMENTWISE = (*UNARY, *BINARY, *COMPARE, "where", "clamp", "cast")
REDUCTIONS = "sum mean max min amax amin prod argmax argmin var std norm logsumexp".split()
SOFTMAX = ("softmax", "log_softmax")
LOSSES = "mse_loss l1_loss smooth_l1_loss huber_loss kl_div binary_cross_entropy".split()
ALL_OPS = (*ELEMENTWISE, *REDUCTIONS, "matmul", *SOFTMAX, *LOSSES)
# Ops whose operand must be positive (generators wrap operands so every rendering stays in domain).
POSITIVE_DOMAIN = {"log", "log2", "sqrt", "rsqrt"}


def op_kind(op: str) -> str:
    if op in ELEMENTWISE:
        return "elementwise"
    if op in REDUCTIONS:
        return "reduce"
    if op == "matmul":
        return "matmul"
    if op in SOFTMAX:
        return "softmax"
    if op in LOSSES:
        return "loss"
    raise ValueError(f"unknown op {op!r}")


def ops_of(nodes) -> set[str]:
    out: set[str] = set()

    def walk(n):
        if isinstance(n, Expr):
            out.add(n.op)
            for a in n.args:
                walk(a)

    for n in nodes:
        walk(n)
    return out


def refs_of(node) -> list[str]:
    """Parameter names used by `node`, in first-use order."""
    seen: dict[str, None] = {}

    def walk(n):
        if isinstance(n, Ref):
            seen.setdefault(n.name)
        elif isinstance(n, Expr):
            for a in n.args:
                walk(a)

    walk(node)
    return list(seen)


def dims_of(node, unit: ExampleUnit) -> tuple[Size, ...] | None:
    """Symbolic dims of a node's value; () for scalars. Broadcasting aligns trailing dims."""
    if isinstance(node, Ref):
        p = unit.param(node.name)
        return p.dims if p.is_tensor else ()
    if not isinstance(node, Expr):
        return ()
    op, a = node.op, node.attrs
    kids = [dims_of(x, unit) for x in node.args]
    kind = op_kind(node.op)
    if kind == "elementwise":
        out: tuple = ()
        for d in kids:
            if len(d) > len(out):
                out = tuple(d)
        return out
    if kind == "softmax":
        return kids[0]
    if kind == "reduce":
        d, keep = a.get("dim"), a.get("keepdim", False)
        x = kids[0]
        if d is None:
            return tuple(1 for _ in x) if keep else ()
        d %= len(x)
        return tuple((1 if i == d else s) for i, s in enumerate(x)) if keep else x[:d] + x[d + 1:]
    if kind == "matmul":
        x, y = kids
        if a.get("transpose_a"):
            x = (*x[:-2], x[-1], x[-2])
        if a.get("transpose_b"):
            y = (*y[:-2], y[-1], y[-2])
        batch = x[:-2] if len(x) >= len(y) else y[:-2]
        return (*batch, x[-2], y[-1])
    if kind == "loss":
        return kids[0] if a.get("reduction", "mean") == "none" else ()
    raise ValueError(op)


def rank_of(node, unit: ExampleUnit) -> int:
    return len(dims_of(node, unit))


# --- serialization -------------------------------------------------------------------------------

def _node_to_obj(n):
    if isinstance(n, Ref):
        return {"ref": n.name}
    if isinstance(n, Expr):
        # attrs as pairs: their order is the keyword order of the rendering, which a JSON object (the units
        # are dumped with sorted keys) would lose on the way through a worker or the cache
        return {"op": n.op, "args": [_node_to_obj(a) for a in n.args], "attrs": [[k, v] for k, v in n.attrs.items()]}
    return {"const": n}


def _node_from_obj(o):
    if "ref" in o:
        return Ref(o["ref"])
    if "op" in o:
        return Expr(o["op"], tuple(_node_from_obj(a) for a in o["args"]), {k: v for k, v in o["attrs"]})
    return o["const"]


def to_json(unit: ExampleUnit, with_name: bool = True) -> str:
    obj: dict[str, Any] = {
        "params": [{"name": p.name, "kind": p.kind, "rank": p.rank, "dims": list(p.dims), "default": p.default}
                   for p in unit.params],
        "outputs": [_node_to_obj(o) for o in unit.outputs],
        "family": unit.family,
        "ops": list(unit.ops),
    }
    if with_name:
        obj["name"] = unit.name
    return json.dumps(obj, sort_keys=True)


def from_json(text: str) -> ExampleUnit:
    o = json.loads(text)
    params = [Param(p["name"], p["kind"], p["rank"], tuple(p["dims"]), p["default"]) for p in o["params"]]
    return ExampleUnit(o["name"], params, [_node_from_obj(x) for x in o["outputs"]], o["family"], tuple(o["ops"]))


# --- reference semantics -------------------------------------------------------------------------

DEFAULT_SIZES = {"B": 2, "M": 3, "N": 5, "K": 4, "D": 6, "C": 3, "L": 7, "H": 2}


def bind_sizes(unit: ExampleUnit, rng: random.Random | None = None, lo: int = 2, hi: int = 6) -> dict[str, int]:
    """Concrete sizes for the unit's size variables (fixed defaults, or random ones with `rng`)."""
    out: dict[str, int] = {}
    for p in unit.tensor_params:
        for d in p.dims:
            if isinstance(d, str) and d not in out:
                out[d] = rng.randint(lo, hi) if rng else DEFAULT_SIZES.get(d, 4)
    return out


def make_inputs(unit: ExampleUnit, sizes: dict[str, int] | None = None, seed: int = 0) -> dict[str, Any]:
    """Random float32 tensors (standard normal) for the tensor parameters, defaults for the scalars."""
    import torch

    sizes = sizes or bind_sizes(unit)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for p in unit.params:
        if p.is_tensor:
            shape = [sizes[d] if isinstance(d, str) else d for d in p.dims]
            out[p.name] = torch.randn(shape, generator=g, dtype=torch.float32)
        else:
            out[p.name] = p.default if p.default is not None else (1 if p.kind == "int" else 0.5)
    return out


def _torch_fns():
    import torch
    import torch.nn.functional as F

    def gelu(x, approximate="none"):
        return F.gelu(x, approximate=approximate)

    def reduce(name):
        def fn(x, dim=None, keepdim=False):
            f = {"max": torch.amax, "min": torch.amin}.get(name) or getattr(torch, name)
            if name == "norm":
                return torch.linalg.vector_norm(x, dim=dim, keepdim=keepdim)
            if dim is None:
                r = f(x, dim=tuple(range(x.dim()))) if name == "logsumexp" else f(x)
                return r.reshape([1] * x.dim()) if keepdim else r
            return f(x, dim=dim, keepdim=keepdim)
        return fn

    def matmul(a, b, transpose_a=False, transpose_b=False):
        if transpose_a:
            a = a.transpose(-1, -2)
        if transpose_b:
            b = b.transpose(-1, -2)
        return torch.matmul(a, b)

    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
              "float64": torch.float64}
    fns = {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "neg": torch.neg,
        "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
        "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal, "gelu": gelu,
        "lt": torch.lt, "gt": torch.gt, "le": torch.le, "ge": torch.ge, "eq": torch.eq, "ne": torch.ne,
        "where": torch.where, "clamp": lambda x, min=None, max=None: torch.clamp(x, min=min, max=max),
        "cast": lambda x, dtype: x.to(dtypes[dtype]),
        "matmul": matmul,
        "softmax": lambda x, dim: torch.softmax(x, dim=dim),
        "log_softmax": lambda x, dim: torch.log_softmax(x, dim=dim),
    }
    for name in ("exp exp2 log log2 log1p sqrt abs sin cos tanh sigmoid relu floor ceil sign").split():
        fns[name] = getattr(torch, name)
    for name in ("leaky_relu elu selu silu softplus softsign hardtanh hardsigmoid hardswish mish "
                 "mse_loss l1_loss smooth_l1_loss huber_loss kl_div binary_cross_entropy").split():
        fns[name] = getattr(F, name)
    for name in REDUCTIONS:
        fns[name] = reduce(name)
    return fns


def evaluate(unit: ExampleUnit, inputs: dict[str, Any]) -> list:
    """Compute the unit's outputs with torch, straight from the tree (the reference semantics)."""
    import torch

    fns = _torch_fns()

    def ev(n):
        if isinstance(n, Ref):
            return inputs[n.name]
        if isinstance(n, Expr):
            args = [ev(a) for a in n.args]
            if n.op in ("maximum", "minimum", "where"):  # accept Python scalars like the renderings do
                ref = next((a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
                args = [torch.as_tensor(a, dtype=ref.dtype if ref is not None and not isinstance(a, bool) else None)
                        if not isinstance(a, torch.Tensor) else a for a in args]
            return fns[n.op](*args, **n.attrs)
        return n

    return [ev(o) for o in unit.outputs]
