"""Pair format 9: the activations that NumPy and loop renderings spell out, kept whole in the model's prompt.

The data pipeline lowers a pair's target from the op graph that generated it (DESIGN.md), so a `sigmoid` node is
one kernel line, `1.0 / (1.0 + tl.exp(-v1))`, however the prompt spells it. A NumPy rendering has no `sigmoid`
and writes `1.0 / (1.0 + numpy.exp(-v))`; a loop rendering writes `1.0 / (1.0 + math.exp(-x[i]))`, which the loop
rewrite turns into the same with `torch`. Three-address form then cut that into four prompt lines for one kernel
line, the pattern behind the format-7 weights' `unknown name 'v5'` failures. Format 9 keeps an expression that
matches one of the spellings below as one prompt line, so prompt and kernel count their values alike again: of the
916 single elementwise kernels among the first 3,000 training rows of a 6,000-pair corpus, 163 had a line spelling
several prompt lines in format 8 and 11 in format 9 (`scripts/align_report.py DATA --split train --limit 3000`).

Only NumPy spellings are matched in a prompt written with tensors, `torch` ones only in a prompt the loop rewrite
wrote: a generator may build a GELU out of multiplications and a `tanh` itself, and the torch rendering of that
graph reads like the spelling while its kernel spells it out too (on the same rows, a variant of the match that
took `torch` spellings everywhere turned 43 more targets into kernels that spell one prompt line in several, 19 of
them outside loops; measured once while choosing, not kept as a command).

A spelling is Python with `X` for the operand (any expression, the same at each place) and `C` for any number;
`M.` stands for both `numpy.` and `torch.` (the canonical prompt spells modules out). Numbers match by value, as
the compiler folds them (`x / math.sqrt(2.0)` is the erf-GELU's `x / 1.4142135623730951`). A matched expression is
written back in the spelling's own text, the operand hoisted before it like any other.

The match reads text, not the graph, so it can be wrong: over the same rows (`--spellings`), the kernel has one
line for most activations kept whole (sigmoid 56 of the 61 aligned, hardswish 19 of 25; elu, selu, softsign,
leaky_relu, rsqrt always), but it spells out a GELU in 8 of 14 and two clamps read as a hardtanh in 8 of 14: a
generator composed them from several nodes. The shipped weights were trained on these spellings as they are; a
change to the list is a new pair format.
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["SPELLINGS", "TENSOR_STYLE", "LOOP_STYLE", "Spelling", "match_spelling"]

TENSOR_STYLE = ("numpy",)  # the modules whose spellings are matched in a prompt written with tensors
LOOP_STYLE = ("numpy", "torch")  # and in a prompt the loop rewrite wrote

_ELU_NUMPY = "numpy.where(X > 0, X, C * numpy.expm1(numpy.minimum(X, 0.0)))"
_ELU_LOOP = "torch.relu(X) + torch.clamp(C * (torch.exp(X) - 1.0), max=0.0)"
_SELU_ALPHA, _SELU_SCALE = "1.6732632423543772", "1.0507009873554805"

SPELLINGS: dict[str, list[str]] = {  # op -> how the renderings (render.np_unary, the loop rewrite) spell it
    "selu": [f"{_SELU_SCALE} * {_ELU_NUMPY.replace('C', _SELU_ALPHA)}",
             f"{_SELU_SCALE} * ({_ELU_LOOP.replace('C', _SELU_ALPHA)})"],
    "elu": [_ELU_NUMPY, _ELU_LOOP],
    "mish": ["X * numpy.tanh(numpy.logaddexp(0.0, X))", "X * torch.tanh(torch.log1p(torch.exp(X)))"],
    "gelu": ["0.5 * X * (1.0 + M.tanh(0.7978845608028654 * (X + 0.044715 * X ** 3)))",
             "0.5 * X * (1.0 + torch.erf(X / 1.4142135623730951))"],
    "hardswish": ["X * numpy.clip(X + 3.0, 0.0, 6.0) / 6.0", "X * torch.clamp(torch.relu(X + 3.0), max=6.0) / 6.0"],
    "hardsigmoid": ["numpy.clip(X / 6.0 + 0.5, 0.0, 1.0)", "torch.clamp(torch.relu(X / 6.0 + 0.5), max=1.0)"],
    "hardtanh": ["torch.clamp(torch.clamp(X, min=C), max=C)"],
    "leaky_relu": ["numpy.where(X >= 0, X, X * C)", "torch.relu(X) + C * torch.clamp(X, max=0.0)"],
    "silu": ["X / (1.0 + M.exp(-X))"],
    "sigmoid": ["1.0 / (1.0 + M.exp(-X))"],
    "softsign": ["X / (1.0 + M.abs(X))"],
    "softplus": ["torch.log1p(torch.exp(X))"],
    "rsqrt": ["1.0 / M.sqrt(X)"],
}


class Spelling(NamedTuple):
    op: str  # the activation spelled
    operand: ast.expr  # what `X` matched
    write: Callable[[ast.expr], ast.expr]  # the spelling written back around the operand's leaf


def _patterns() -> dict[str, list[tuple[str, ast.expr]]]:
    """The spellings parsed, with their op, by the module they call."""
    texts = {t.replace("M.", f"{m}."): op for op, ts in SPELLINGS.items() for t in ts for m in ("numpy", "torch")}
    out: dict[str, list[tuple[str, ast.expr]]] = {"numpy": [], "torch": []}
    for text, op in texts.items():
        out["numpy" if "numpy." in text else "torch"].append((op, ast.parse(text, mode="eval").body))
    return out


_PATTERNS = _patterns()


def _match(node: ast.AST, pattern: ast.AST, bound: dict, fold: Callable) -> bool:
    """Whether `node` has `pattern`'s shape; `bound` collects the operand (`X`) and the numbers `C` matched, in the
    order a NodeTransformer visits them."""
    if isinstance(pattern, ast.Name) and pattern.id == "X":
        if "X" not in bound:
            bound["X"] = node
            return True
        return ast.dump(bound["X"]) == ast.dump(node)
    if isinstance(pattern, ast.Name) and pattern.id == "C":
        value = fold(node)
        bound.setdefault("C", []).append(value)
        return value is not None
    if isinstance(pattern, ast.Constant):
        return fold(node) == pattern.value
    if type(node) is not type(pattern):
        return False
    for field in pattern._fields:
        if field == "ctx":
            continue
        want, have = getattr(pattern, field), getattr(node, field, None)
        if isinstance(want, list):
            if not isinstance(have, list) or len(want) != len(have):
                return False
            if not all(_match(h, w, bound, fold) for h, w in zip(have, want, strict=True)):
                return False
        elif isinstance(want, ast.AST):
            if not isinstance(have, ast.AST) or not _match(have, want, bound, fold):
                return False
        elif want != have:
            return False
    return True


class _Instance(ast.NodeTransformer):
    """A matched spelling written back: `X` as the hoisted operand, each `C` as the number it matched."""

    def __init__(self, operand: ast.expr, numbers: list):
        self.operand, self.numbers = operand, iter(numbers)

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id == "X":
            return copy.deepcopy(self.operand)
        if node.id == "C":
            value = next(self.numbers)
            return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))
        return node


def match_spelling(node: ast.expr, fold: Callable, modules: tuple[str, ...]) -> Spelling | None:
    """The activation `node` spells with one of `modules`, if any. `fold` gives a constant expression's number (None
    for anything else)."""
    for op, pattern in itertools.chain(*(_PATTERNS[m] for m in modules)):
        bound: dict = {}
        if _match(node, pattern, bound, fold):
            numbers = bound.get("C", [])
            return Spelling(op, bound["X"],
                            lambda leaf, p=pattern, n=numbers: _Instance(leaf, n).visit(copy.deepcopy(p)))
    return None
