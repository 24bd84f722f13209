"""Frontend: Python source → one op graph and call signature per translation unit."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from p2t_core.errors import UnsupportedError
from p2t_core.frontend.lower import Frontend
from p2t_core.frontend.units import ParsedFile, Unit, parse_file
from p2t_core.ir import Graph
from p2t_core.ops import OpRegistry
from p2t_core.signature import Signature

__all__ = ["ParsedFile", "Unit", "parse_file", "build_unit", "infer_ranks"]

DEFAULT_RANK = 2  # an unconstrained tensor parameter is treated as a matrix; kernels are rank-generic anyway


def build_unit(parsed: ParsedFile, unit: Unit, registry: OpRegistry, ranks: dict[str, int] | None = None
               ) -> tuple[Graph, Signature]:
    """`ranks` overrides the inferred rank of named tensor parameters (from `--shapes`)."""
    if unit.name in parsed.loop_errors:
        raise parsed.loop_errors[unit.name]
    try:
        inferred = infer_ranks(unit)
    except UnsupportedError as e:  # located at the unit: infer_ranks sees only the unit's tree
        e.path, e.line = parsed.path, unit.line
        raise
    return Frontend(parsed, registry, {**inferred, **(ranks or {})}).build(unit)


def infer_ranks(unit: Unit) -> dict[str, int]:
    """Guess each tensor parameter's rank from how the body uses it.

    The graph needs a rank per input to infer shapes; Python does not say it. Exact hints come from
    subscripts (`x[:, None]` means rank 1); otherwise the largest dim literal used anywhere (`dim=2`)
    raises the default, and `bmm`/`mv` fix their operands.
    """
    hints: dict[str, int] = {}
    if unit.original is not None:  # loop-style source: element reads `x[i, j]`, `b[j]` give exact ranks
        hints.update(_element_ranks(_forward(unit.original, unit.kind)))
    fn = _forward(unit.node, unit.kind)
    names = {p.name.value for p in fn.params.params}
    max_dim = [DEFAULT_RANK - 1]

    class Scan(cst.CSTVisitor):
        def visit_Subscript(self, node: cst.Subscript) -> None:
            if m.matches(node.value, m.Name()) and node.value.value in names:
                items = [e.slice for e in node.slice]
                if any(m.matches(i, m.Index(value=m.Ellipsis())) for i in items):
                    return
                real = sum(1 for i in items if m.matches(i, m.Slice()))
                if real and all(m.matches(i, m.Slice() | m.Index(value=m.Name("None"))) for i in items):
                    hints[node.value.value] = real

        def visit_Arg(self, node: cst.Arg) -> None:
            if node.keyword is not None and node.keyword.value in ("dim", "axis", "dim0", "dim1"):
                for v in _int_literals(node.value):
                    max_dim[0] = max(max_dim[0], v if v >= 0 else -v - 1)

        def visit_Call(self, node: cst.Call) -> None:
            callee = node.func
            name = callee.attr.value if m.matches(callee, m.Attribute()) else getattr(callee, "value", "")
            if name in ("sum", "mean", "amax", "amin", "max", "min", "prod", "softmax", "log_softmax", "var",
                        "std", "argmax", "argmin", "transpose", "unsqueeze", "logsumexp", "norm", "squeeze"):
                for a in (a for a in node.args if a.keyword is None):  # the tensor operand is never a literal
                    for v in _int_literals(a.value):
                        max_dim[0] = max(max_dim[0], v if v >= 0 else -v - 1)
            operands = [a.value.value for a in node.args if m.matches(a.value, m.Name()) and a.value.value in names]
            if name in ("bmm", "baddbmm"):
                for o in operands:
                    hints.setdefault(o, 3)
            elif name == "mv" and len(operands) == 2:
                hints.setdefault(operands[0], 2)
                hints.setdefault(operands[1], 1)

    fn.visit(Scan())
    default = max(DEFAULT_RANK, max_dim[0] + 1)
    return {n: hints.get(n, default) for n in names}


def _forward(node, kind: str):
    if kind == "module":
        for s in node.body.body:
            if m.matches(s, m.FunctionDef(name=m.Name("forward"))):
                return s
        raise UnsupportedError(f"Module class {node.name.value} without forward()", "a forward(self, ...) method")
    return node


def _element_ranks(fn) -> dict[str, int]:
    """Ranks of parameters read element by element: `x[i, j]` and `x[i][j]` are rank 2."""
    names = {p.name.value for p in fn.params.params}
    ranks: dict[str, int] = {}

    class Scan(cst.CSTVisitor):
        def visit_Subscript(self, node: cst.Subscript) -> bool:
            depth, base = 0, node
            while m.matches(base, m.Subscript()):
                if not all(m.matches(e.slice, m.Index()) for e in base.slice):
                    return True
                depth += len(base.slice)
                base = base.value
            if m.matches(base, m.Name()) and base.value in names:
                ranks[base.value] = max(ranks.get(base.value, 0), depth)
                return False
            return True

    fn.visit(Scan())
    return ranks


def _int_literals(expr) -> list[int]:
    if m.matches(expr, m.Integer()):
        return [int(expr.value)]
    if m.matches(expr, m.UnaryOperation(operator=m.Minus(), expression=m.Integer())):
        return [-int(expr.expression.value)]
    if m.matches(expr, m.Tuple() | m.List()):
        return [v for e in expr.elements for v in _int_literals(e.value)]
    return []
