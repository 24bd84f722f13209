"""The op graph: a small SSA IR of tensor operations, one graph per translation unit.

A `Node` is one operation with its inputs, attributes, symbolic shape and dtype. Shapes are tuples of
sizes; a size is an `int` or a `str` size variable (shared by every tensor that must agree on it).
Dtypes are symbolic too: a float dtype is the promotion of a set of atoms, each a tensor parameter's
name (its runtime dtype) or a fixed torch dtype name, so the generated launcher can compute torch's
promotion at run time (`torch.promote_types`) and one kernel serves fp32, fp16 and bf16.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

Size = int | str
Shape = tuple[Size, ...]

# Op categories. Elementwise ops are open-ended (plugins register them); the rest are fixed.
SOURCE_OPS = {"input", "scalar", "const", "module_tensor"}
REDUCE_OPS = {"sum", "prod", "max", "min", "argmax", "argmin"}
VIEW_OPS = {"reshape", "permute", "expand"}
ANCHOR_OPS = REDUCE_OPS | {"matmul", "softmax", "log_softmax"}

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class DType:
    """A float dtype as the promotion of `atoms`, or a fixed non-float dtype (`bool`, `int64`)."""

    atoms: frozenset[str]

    @property
    def is_float(self) -> bool:
        return not (self.atoms & {"bool", "int64", "int32"})

    @property
    def fixed(self) -> str | None:
        """The dtype name when it does not depend on the inputs."""
        if len(self.atoms) == 1:
            (atom,) = self.atoms
            if atom in FLOAT_DTYPES or atom in ("bool", "int64", "int32"):
                return atom
        return None

    def __repr__(self) -> str:
        return "|".join(sorted(self.atoms))


BOOL = DType(frozenset({"bool"}))
INT64 = DType(frozenset({"int64"}))
FLOAT32 = DType(frozenset({"float32"}))


def promote(*dtypes: DType) -> DType:
    """torch's promotion for tensor operands: floats win over bool/int; float atoms accumulate."""
    floats = [d for d in dtypes if d.is_float]
    if floats:
        return DType(frozenset().union(*(d.atoms for d in floats)))
    if any(d == INT64 for d in dtypes):
        return INT64
    return dtypes[0] if dtypes else FLOAT32


_ids = itertools.count()


@dataclass(eq=False)
class Node:
    op: str
    inputs: tuple[Node, ...]
    shape: Shape
    dtype: DType
    attrs: dict = field(default_factory=dict)
    name: str | None = None  # parameter or attribute name for source ops
    loc: tuple[int, int] = (1, 1)  # (line, col) in the user's source, for error messages
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        args = ", ".join(f"%{i.id}" for i in self.inputs)
        attrs = ", ".join(f"{k}={v!r}" for k, v in sorted(self.attrs.items()) if k != "value" or self.op == "const")
        label = self.name or ""
        extra = "; ".join(s for s in (args, attrs, label) if s)
        return f"%{self.id} = {self.op}({extra}) : {list(self.shape)} {self.dtype!r}"


@dataclass
class Graph:
    """One translation unit: parameters in call order, nodes in topological order, outputs."""

    name: str
    params: list[Node]  # "input" and "scalar" nodes, in call-signature order
    outputs: list[Node]
    kind: str = "function"  # "function" | "module"
    module_tensors: list[Node] = field(default_factory=list)
    returns_tuple: bool = False
    returns_none: bool = False  # the unit writes its outputs into parameters and returns nothing
    inplace: dict[int, str] = field(default_factory=dict)  # output node id -> the parameter it is written into
    # Module units: __init__'s parameters [(name, default)] and assignments, replayed by the emitted class:
    # ("arg", attr, arg_name) | ("const", attr, value) | ("tensor", attr, (arg names or ints), init kind).
    init_params: list = field(default_factory=list)
    init_plan: list = field(default_factory=list)

    def nodes(self) -> list[Node]:
        """All nodes reachable from the outputs, in a deterministic topological order."""
        order: list[Node] = []
        seen: set[int] = set()
        stack: list[tuple[Node, bool]] = [(o, False) for o in reversed(self.outputs)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if node.id not in seen:
                    seen.add(node.id)
                    order.append(node)
                continue
            if node.id in seen:
                continue
            stack.append((node, True))
            stack.extend((i, False) for i in reversed(node.inputs) if i.id not in seen)
        return order

    def users(self) -> dict[int, list[Node]]:
        users: dict[int, list[Node]] = {}
        for node in self.nodes():
            for inp in node.inputs:
                users.setdefault(inp.id, []).append(node)
        return users

    def dump(self) -> str:
        lines = [f"graph {self.name}({', '.join(p.name or '?' for p in self.params)}):"]
        lines += [f"  {n!r}" for n in self.nodes()]
        lines.append("  return " + ", ".join(f"%{o.id}" for o in self.outputs))
        return "\n".join(lines)


def numel_expr(shape: Shape) -> str:
    return " * ".join(str(s) for s in shape) or "1"


def broadcast_shapes(a: Shape, b: Shape) -> Shape | None:
    """Static broadcast of two symbolic shapes; None when they cannot agree."""
    out: list[Size] = []
    for x, y in itertools.zip_longest(reversed(a), reversed(b), fillvalue=1):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))
