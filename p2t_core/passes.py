"""Graph rewrites, run as an ordered list of named passes with the graph verified after each one."""

from __future__ import annotations

from collections.abc import Callable

from p2t_core.graph_check import check_graph
from p2t_core.ir import ANCHOR_OPS, SOURCE_OPS, Graph, Node


def rewrite(graph: Graph, fn: Callable[[Node, dict[int, Node]], Node | None]) -> None:
    """Rebuild the graph bottom-up; `fn(node, mapping)` returns a replacement or None to keep the node."""
    mapping: dict[int, Node] = {}
    for node in graph.nodes():
        if node.inputs:
            new_inputs = tuple(mapping.get(i.id, i) for i in node.inputs)
            if any(a is not b for a, b in zip(new_inputs, node.inputs, strict=True)):
                node.inputs = new_inputs
        replacement = fn(node, mapping)
        if replacement is not None and replacement is not node:
            mapping[node.id] = replacement
    graph.outputs = [mapping.get(o.id, o) for o in graph.outputs]


def is_unit_reshape(node: Node) -> bool:
    """A reshape that only inserts or removes size-1 dims: a no-op on the data's order."""
    if node.op != "reshape":
        return False
    a = [s for s in node.inputs[0].shape if s != 1]
    b = [s for s in node.shape if s != 1]
    return a == b


def _realign(operand_shape, src_shape, dst_shape):
    """The shape an operand of an op of shape `src_shape` takes when the op is unit-reshaped to `dst_shape`."""
    padded = (1,) * (len(src_shape) - len(operand_shape)) + tuple(operand_shape)
    src_real = [i for i, s in enumerate(src_shape) if s != 1]
    dst_real = [i for i, s in enumerate(dst_shape) if s != 1]
    out = [1] * len(dst_shape)
    for i, j in zip(src_real, dst_real, strict=True):
        out[j] = padded[i]
    return tuple(out)


def sink_unit_reshapes(graph: Graph) -> None:
    """Push `x[:, None]`-style reshapes of elementwise results down to their sources.

    `(a * 2)[:, None]` becomes `a[:, None] * 2`, so the reshape lands on a tensor the launcher can view
    for free instead of forcing the intermediate into memory. A reshape that restores the dims a reduce
    removed becomes `keepdim=True`.
    """

    def sink(node: Node) -> Node:
        if not is_unit_reshape(node):
            return node
        src = node.inputs[0]
        if src.op in REDUCE_WITH_DIMS and not src.attrs.get("keepdim"):
            kept = tuple(1 if i in src.attrs["dims"] else s for i, s in enumerate(src.inputs[0].shape))
            if tuple(node.shape) == kept:
                return Node(src.op, src.inputs, kept, src.dtype, {**src.attrs, "keepdim": True}, loc=src.loc)
        if src.op in REDUCE_WITH_DIMS and src.attrs.get("keepdim"):
            dropped = tuple(s for i, s in enumerate(src.inputs[0].shape) if i not in src.attrs["dims"])
            if tuple(node.shape) == dropped:
                return Node(src.op, src.inputs, dropped, src.dtype, {**src.attrs, "keepdim": False}, loc=src.loc)
        if src.op in SOURCE_OPS or src.op in ANCHOR_OPS or src.op in VIEWS or src.op == "size":
            return node
        inputs = []
        for inp in src.inputs:
            if inp.rank == 0:
                inputs.append(inp)
                continue
            shape = _realign(inp.shape, src.shape, node.shape)
            inputs.append(sink(Node("reshape", (inp,), shape, inp.dtype, {"shape": shape}, loc=inp.loc)))
        return Node(src.op, tuple(inputs), node.shape, src.dtype, dict(src.attrs), loc=src.loc)

    rewrite(graph, lambda node, _: sink(node) if is_unit_reshape(node) else None)


def drop_identity_reshapes(graph: Graph) -> None:
    rewrite(graph, lambda n, _: n.inputs[0] if n.op == "reshape" and n.shape == n.inputs[0].shape else None)


def cse(graph: Graph) -> None:
    """Merge nodes that compute the same op on the same inputs."""
    seen: dict[tuple, Node] = {}

    def key(node: Node):
        if node.op in ("input", "scalar", "module_tensor"):
            return None
        attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items()))
        return (node.op, tuple(i.id for i in node.inputs), attrs, node.shape)

    def visit(node, _):
        k = key(node)
        if k is None:
            return None
        if k in seen:
            return seen[k]
        seen[k] = node
        return None

    rewrite(graph, visit)


def matvec_as_reduction(graph: Graph) -> None:
    """A matrix-vector product is a row reduction: `A @ v` = `(A * v).sum(-1)`, `v @ A` = `(v[:, None] * A).sum(0)`.

    Memory-bound either way; the reduction kernel reads A once with wide loads instead of padding the
    vector to a 16-wide tile for the tensor cores."""

    def visit(node: Node, _):
        if node.op != "matmul":
            return None
        a, b = node.inputs
        if b.rank == 1 and a.rank >= 2:
            prod = Node("mul", (a, b), a.shape, node.dtype, {"operands": ("x", "y")}, loc=node.loc)
            return Node("sum", (prod,), a.shape[:-1], node.dtype, {"dims": (a.rank - 1,), "keepdim": False},
                        loc=node.loc)
        if a.rank == 1 and b.rank == 2:
            col = Node("reshape", (a,), (a.shape[0], 1), a.dtype, {"shape": (a.shape[0], 1)}, loc=node.loc)
            prod = Node("mul", (col, b), b.shape, node.dtype, {"operands": ("x", "y")}, loc=node.loc)
            return Node("sum", (prod,), b.shape[1:], node.dtype, {"dims": (0,), "keepdim": False}, loc=node.loc)
        return None

    rewrite(graph, visit)


REDUCE_WITH_DIMS = {"sum", "prod", "max", "min", "argmax", "argmin"}
VIEWS = {"reshape", "permute", "expand"}

PASSES: list[tuple[str, Callable[[Graph], None]]] = [
    ("matvec_as_reduction", matvec_as_reduction),
    ("drop_identity_reshapes", drop_identity_reshapes),
    ("sink_unit_reshapes", sink_unit_reshapes),
    ("cse", cse),
]


def run_passes(graph: Graph, passes=None, *, trace: list[str] | None = None) -> Graph:
    for name, fn in passes or PASSES:
        fn(graph)
        check_graph(graph, after=name)
        if trace is not None:
            trace.append(f"after {name}:\n{graph.dump()}")
    return graph
