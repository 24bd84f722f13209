"""A loop-style unit and its tensor-style twin compile to the same op graph (after the compiler's passes)."""

import pytest

from p2t_core.engine import compile_units
from p2t_core.errors import P2TError
from p2t_core.ir import Graph, Node

from .corpus import TWINS


def structure(graph: Graph) -> str:
    """The graph as a nested expression over parameter names: independent of node ids and local names."""
    memo: dict[int, str] = {}

    def text(n: Node) -> str:
        if n.id not in memo:
            if n.op in ("input", "scalar", "module_tensor"):
                memo[n.id] = n.name
            elif n.op == "const":
                value = n.attrs["value"]
                memo[n.id] = repr(value if isinstance(value, bool) else float(value))
            else:
                attrs = ",".join(f"{k}={v}" for k, v in sorted(n.attrs.items()) if k != "operands")
                memo[n.id] = f"{n.op}[{attrs}]({', '.join(text(i) for i in n.inputs)})"
        return memo[n.id]

    return " | ".join(text(o) for o in graph.outputs)


def compiled(source: str, name: str, shapes: dict):
    tensors = {k: tuple(v) for k, v in shapes.items()  # scalars and named sizes are not shapes
               if isinstance(v, (tuple, list)) and all(isinstance(d, int) for d in v)}
    result = compile_units(source, "<twin>", unit=name, shapes=tensors, keep_going=False)
    return result.units[0]


# Twins deliberately written with another spelling of the same math (e.g. `torch.softmax` against the loops'
# max/exp/sum passes): they agree numerically (test_loops.py) and fuse into as many kernels, not node for node.
OTHER_SPELLING = {"one_branch_zeros", "row_l2", "whole_mean", "positive_sum", "softmax_inplace_if",
                  "log_softmax_loops", "LoopRMSNorm"}
# Units the compiler refuses in both forms (torch.full of a scalar, a shape built from a scalar expression):
# a clean error, never a wrong kernel.
TWIN_UNSUPPORTED = {"full_scalar", "count_rows", "broadcast_const"}


@pytest.mark.parametrize("case", TWINS, ids=[t[2] for t in TWINS])
def test_loop_and_tensor_forms_compile_to_the_same_graph(case):
    loop_src, tensor_src, name, shapes = case
    if name in TWIN_UNSUPPORTED:
        for source in (loop_src, tensor_src):
            with pytest.raises(P2TError):
                compiled(source, name, shapes)
        return
    loop_unit, twin_unit = compiled(loop_src, name, shapes), compiled(tensor_src, name, shapes)
    assert loop_unit.n_kernels == twin_unit.n_kernels
    if name not in OTHER_SPELLING:
        assert structure(loop_unit.graph) == structure(twin_unit.graph)
