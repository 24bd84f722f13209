"""Builds op graphs with shape and dtype inference. The frontend and plugins' composite ops use it.

Sizes unify as the ops require (`x + y` makes their sizes equal unless one is 1; `a @ b` makes a's
last size b's first), through a union-find over size variables, so a mismatch such as `(M, 3) + (M, 4)`
is reported at translation time.
"""

from __future__ import annotations

import itertools

from p2t_core.errors import ShapeError, UnsupportedError
from p2t_core.ir import BOOL, FLOAT32, INT64, REDUCE_OPS, DType, Node, Shape, Size, promote
from p2t_core.ops import OpRegistry

WEAK = DType(frozenset())  # Python scalars: they never change a tensor's dtype


class Sizes:
    """Union-find over size variables; ints are fixed sizes."""

    def __init__(self):
        self.parent: dict[str, Size] = {}
        self.order: dict[str, int] = {}
        self.counter = itertools.count()

    def fresh(self, hint: str) -> str:
        index = next(self.counter)
        name = f"{hint}{index}"
        self.parent[name] = name
        self.order[name] = index
        return name

    def age(self, name: str) -> int:
        return self.order.get(name, -1)

    def find(self, s: Size) -> Size:
        while isinstance(s, str) and self.parent.get(s, s) != s:
            self.parent[s] = self.parent.get(self.parent[s], self.parent[s])
            s = self.parent[s]
        return s

    def unify(self, a: Size, b: Size) -> Size:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if isinstance(a, int) and isinstance(b, int):
            raise ValueError(f"size {a} does not match size {b}")
        if isinstance(a, int) or (isinstance(b, str) and self.age(b) > self.age(a)):
            a, b = b, a  # keep the fixed size, or else the older variable, as the representative
        self.parent[a] = b
        return b

    def shape(self, shape: Shape) -> Shape:
        return tuple(self.find(s) for s in shape)


class Builder:
    def __init__(self, registry: OpRegistry, sizes: Sizes | None = None, *, where=None):
        self.registry = registry
        self.sizes = sizes or Sizes()
        self.where = where or {}  # path/line/col for errors, updated by the frontend per statement

    # -- errors -------------------------------------------------------------------------------------
    def shape_error(self, message: str) -> ShapeError:
        return ShapeError(message, **self.where)

    def unsupported(self, what: str, hint: str) -> UnsupportedError:
        return UnsupportedError(what, hint, **self.where)

    # -- sources ------------------------------------------------------------------------------------
    def node(self, op: str, inputs, shape: Shape, dtype: DType, /, **attrs) -> Node:
        loc = (self.where.get("line", 1), self.where.get("col", 1))
        return Node(op, tuple(inputs), self.sizes.shape(shape), dtype, attrs, loc=loc)

    def input(self, name: str, rank: int) -> Node:
        shape = tuple(self.sizes.fresh(f"{name}_") for _ in range(rank))
        n = self.node("input", (), shape, DType(frozenset({name})))
        n.name = name
        return n

    def scalar(self, name: str, kind: str) -> Node:
        n = self.node("scalar", (), (), BOOL if kind == "bool" else WEAK, kind=kind)
        n.name = name
        return n

    def module_tensor(self, name: str, shape: Shape, init: str) -> Node:
        n = self.node("module_tensor", (), shape, DType(frozenset({f"self.{name}"})), init=init)
        n.name = name
        return n

    def const(self, value: float | int | bool) -> Node:
        return self.node("const", (), (), BOOL if isinstance(value, bool) else WEAK, value=value)

    def size(self, dims: Shape) -> Node:
        """The product of some sizes, as a runtime integer scalar (e.g. the count in `mean`)."""
        return self.node("size", (), (), WEAK, dims=self.sizes.shape(dims))

    def lift(self, value) -> Node:
        return value if isinstance(value, Node) else self.const(value)

    # -- shapes -------------------------------------------------------------------------------------
    def broadcast(self, *shapes: Shape) -> Shape:
        rank = max((len(s) for s in shapes), default=0)
        out: list[Size] = []
        for i in range(1, rank + 1):
            dims = [self.sizes.find(s[-i]) for s in shapes if len(s) >= i]
            real = [d for d in dims if d != 1]
            size: Size = 1
            for d in real:
                try:
                    size = d if size == 1 else self.sizes.unify(size, d)
                except ValueError as e:
                    raise self.shape_error(f"shapes {[list(s) for s in shapes]} cannot broadcast: {e}") from None
            out.append(size)
        return tuple(reversed(out))

    def norm_dim(self, dim: int, rank: int) -> int:
        if not -max(rank, 1) <= dim < max(rank, 1):
            raise self.shape_error(f"dim {dim} is out of range for a tensor of rank {rank}")
        return dim % rank if rank else 0

    # -- ops ------------------------------------------------------------------------------------------
    def call(self, op_name: str, *args, **kwargs) -> Node:
        """Apply a registered op by name, the way the frontend applies a resolved Python call."""
        op = self.registry[op_name]
        operands = dict(op.defaults)
        if len(args) > len(op.args):
            raise self.unsupported(f"{len(args)} arguments to {op_name}", f"{op_name}({', '.join(op.args)})")
        operands.update(zip(op.args, args, strict=False))
        for k, v in kwargs.items():
            if k not in op.args:
                raise self.unsupported(f"keyword {k!r} of {op_name}", f"{op_name}({', '.join(op.args)})")
            operands[k] = v
        missing = [a for a in op.args if a not in operands]
        if missing:
            raise self.unsupported(f"call of {op_name} without {', '.join(missing)}",
                                   f"{op_name}({', '.join(op.args)})")
        if op.kind == "composite":
            return op.expand(self, **operands)
        if op.kind == "elementwise":
            return self.elementwise(op_name, **operands)
        raise self.unsupported(f"direct call of {op.kind} op {op_name}", "its Python spellings")

    def elementwise(self, op_name: str, **operands) -> Node:
        op = self.registry[op_name]
        for name in op.static:
            v = operands[name]
            if isinstance(v, Node):
                if v.op != "const":
                    raise self.unsupported(f"non-constant {name!r} of {op_name}", "a number literal")
                operands[name] = v.attrs["value"]
        nodes = {k: self.lift(v) for k, v in operands.items() if k not in op.static}
        statics = {k: v for k, v in operands.items() if k in op.static}
        if all(n.op == "const" for n in nodes.values()) and op.reference is not None and not statics:
            folded = _fold(op, {k: n.attrs["value"] for k, n in nodes.items()})
            if folded is not None:
                return self.const(folded)
        inputs = [nodes[a] for a in op.args if a in nodes]
        shape = self.broadcast(*(n.shape for n in inputs))
        dtype = {
            "bool": BOOL,
            "int64": INT64,
            "same": promote(*(n.dtype for n in inputs)) if inputs else WEAK,
            "float": _floatify(promote(*(n.dtype for n in inputs))) if inputs else WEAK,
        }[op.result]
        return self.node(op_name, inputs, shape, dtype, operands=tuple(a for a in op.args if a in nodes), **statics)

    def cast(self, x: Node, dtype: str) -> Node:
        if dtype == "bool":
            return self.node("cast", (x,), x.shape, BOOL, to="bool")
        return self.node("cast", (x,), x.shape, DType(frozenset({dtype})), to=dtype)

    def reduce(self, kind: str, x: Node, dims, keepdim: bool = False) -> Node:
        assert kind in REDUCE_OPS
        x = self.lift(x)
        rank = x.rank
        if dims is None:
            dims = tuple(range(rank))
        elif isinstance(dims, int):
            dims = (dims,)
        dims = tuple(sorted({self.norm_dim(d, rank) for d in dims}))
        if rank == 0:
            return x if kind not in ("argmax", "argmin") else self.const(0)
        out_shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims)
        dtype = INT64 if kind in ("argmax", "argmin") else (x.dtype if x.dtype != BOOL else INT64)
        if x.dtype == WEAK:
            dtype = FLOAT32
        return self.node(kind, (x,), out_shape, dtype, dims=dims, keepdim=keepdim)

    def reduced_count(self, x: Node, dims) -> Node:
        if dims is None:
            dims = tuple(range(x.rank))
        elif isinstance(dims, int):
            dims = (dims,)
        return self.size(tuple(x.shape[self.norm_dim(d, x.rank)] for d in dims))

    def matmul(self, a: Node, b: Node) -> Node:
        if a.rank == 0 or b.rank == 0:
            raise self.shape_error("matmul of a scalar; use * for scaling")
        if a.rank > 3 or b.rank > 3:
            raise self.unsupported(f"matmul of rank {max(a.rank, b.rank)} tensors", "1-D, 2-D and batched 3-D matmul")
        try:
            self.sizes.unify(a.shape[-1], b.shape[0] if b.rank == 1 else b.shape[-2])
        except ValueError as e:
            raise self.shape_error(f"matmul of {list(a.shape)} and {list(b.shape)}: {e}") from None
        if a.rank == 1 and b.rank == 1:  # a dot product is a whole-vector reduction
            return self.reduce("sum", self.elementwise("mul", x=a, y=b), None)
        if b.rank == 1:
            shape = a.shape[:-1]
        elif a.rank == 1:
            shape = b.shape[:-2] + b.shape[-1:]
        else:
            batch = self.broadcast(a.shape[:-2], b.shape[:-2])
            shape = batch + (a.shape[-2], b.shape[-1])
        return self.node("matmul", (a, b), shape, promote(a.dtype, b.dtype))

    def softmax(self, x: Node, dim: int, log: bool = False) -> Node:
        d = self.norm_dim(dim, x.rank)
        dtype = x.dtype if x.dtype.is_float and x.dtype != WEAK else FLOAT32
        return self.node("log_softmax" if log else "softmax", (x,), x.shape, dtype, dim=d)

    # -- views ----------------------------------------------------------------------------------------
    def reshape(self, x: Node, shape: Shape) -> Node:
        if tuple(self.sizes.shape(shape)) == x.shape:
            return x
        return self.node("reshape", (x,), shape, x.dtype, shape=tuple(shape))

    def unsqueeze(self, x: Node, dim: int) -> Node:
        d = dim % (x.rank + 1) if -x.rank - 1 <= dim <= x.rank else None
        if d is None:
            raise self.shape_error(f"unsqueeze dim {dim} out of range for rank {x.rank}")
        return self.reshape(x, x.shape[:d] + (1,) + x.shape[d:])

    def squeeze(self, x: Node, dim: int | None = None) -> Node:
        if dim is None:
            return self.reshape(x, tuple(s for s in x.shape if s != 1))
        d = self.norm_dim(dim, x.rank)
        if x.shape[d] != 1:
            return x if isinstance(x.shape[d], int) else self._squeeze_var(x, d)
        return self.reshape(x, x.shape[:d] + x.shape[d + 1 :])

    def squeeze_dims(self, x: Node, dims) -> Node:
        """Remove the given size-1 dims (as a reduce without keepdim would)."""
        dims = {self.norm_dim(d, x.rank) for d in ((dims,) if isinstance(dims, int) else dims)}
        return self.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in dims))

    def _squeeze_var(self, x: Node, d: int) -> Node:
        raise self.unsupported(f"squeeze of dim {d} whose size is not known to be 1", "squeeze of size-1 dims")

    def permute(self, x: Node, perm) -> Node:
        perm = tuple(self.norm_dim(p, x.rank) for p in perm)
        if sorted(perm) != list(range(x.rank)):
            raise self.shape_error(f"permutation {list(perm)} does not fit rank {x.rank}")
        if perm == tuple(range(x.rank)):
            return x
        return self.node("permute", (x,), tuple(x.shape[p] for p in perm), x.dtype, perm=perm)

    def transpose(self, x: Node, d0: int, d1: int) -> Node:
        perm = list(range(x.rank))
        a, b = self.norm_dim(d0, x.rank), self.norm_dim(d1, x.rank)
        perm[a], perm[b] = perm[b], perm[a]
        return self.permute(x, perm)

    def expand(self, x: Node, shape: Shape) -> Node:
        target = self.broadcast(x.shape, tuple(shape))
        if target == x.shape:
            return x
        return self.node("expand", (x,), target, x.dtype, shape=target)


def _floatify(d: DType) -> DType:
    return d if d.is_float else FLOAT32


def _fold(op, values: dict):
    """Constant-fold an elementwise op on Python numbers through its torch reference."""
    import torch

    try:
        args = [torch.tensor(values[a], dtype=torch.float64) for a in op.args if a in values]
        out = op.reference(*args)
        return out.item() if out.dtype != torch.bool else bool(out.item())
    except Exception:  # an op whose reference cannot take scalars is simply not folded
        return None
