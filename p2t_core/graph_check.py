"""The verifier of the IR: structural invariants every pass must keep. A failure is a compiler bug."""

from __future__ import annotations

from p2t_core.ir import REDUCE_OPS, SOURCE_OPS, Graph, broadcast_shapes


class GraphError(AssertionError):
    pass


def check_graph(graph: Graph, *, after: str = "frontend") -> None:
    def fail(node, why):
        raise GraphError(f"invalid graph after {after}: {why}\n  at {node!r}\n{graph.dump()}")

    params = {p.id for p in graph.params} | {t.id for t in graph.module_tensors}
    position: dict[int, int] = {}
    for i, node in enumerate(graph.nodes()):
        position[node.id] = i
        for inp in node.inputs:
            if inp.id not in position:
                fail(node, f"input %{inp.id} is not defined before its use")
        if node.op in ("input", "module_tensor") and node.id not in params:
            fail(node, "an input that is not a parameter of the unit")
        if node.op in SOURCE_OPS and node.inputs:
            fail(node, "a source op with inputs")
        if node.op in REDUCE_OPS:
            dims = node.attrs.get("dims", ())
            (x,) = node.inputs
            if any(not 0 <= d < x.rank for d in dims) or list(dims) != sorted(set(dims)):
                fail(node, f"reduce dims {dims} invalid for rank {x.rank}")
            expect = tuple(
                1 if i in dims else s for i, s in enumerate(x.shape) if node.attrs.get("keepdim") or i not in dims
            )
            if node.shape != expect:
                fail(node, f"reduce shape {node.shape} should be {expect}")
        elif node.op == "reshape":
            a = [s for s in node.inputs[0].shape if s != 1]
            b = [s for s in node.shape if s != 1]
            if a == b:
                continue
        elif node.op not in SOURCE_OPS and node.op not in ("matmul", "permute", "expand", "reshape", "size"):
            shape = ()
            for inp in node.inputs:
                shape = broadcast_shapes(shape, inp.shape)
                if shape is None:
                    fail(node, "operand shapes do not broadcast")
            if node.op not in ("softmax", "log_softmax", "cast") and shape != node.shape:
                fail(node, f"shape {node.shape} is not the broadcast of its operands {shape}")
    if not graph.outputs:
        raise GraphError(f"invalid graph after {after}: no outputs")
