"""Pair format 3's prompt: a canonical unit in three-address form, numbered like the compiler's kernels.

The shipped format-2 model failed mostly on nested calls (`hardsigmoid(softplus(selu(hardtanh(u))))`): it
dropped or reordered an operation while turning the nesting inside out, and it copied the prompt's line `v5 = ...`
where its kernel's `v5` was another value (the kernels number values from 1 in evaluation order, the canonical
prompt numbers assignments from 0). So the model reads each straight-line function one operation per line, in
Python's evaluation order, with the locals renumbered `v1, v2, ...` in that order:

    def unit_fn(x, y):                         def unit_fn(x, y):
        v0 = torch.relu(torch.exp(x)) + 0.5        v1 = torch.exp(x)
        return torch.tanh(v0) * y        →         v2 = torch.relu(v1)
                                                   v3 = v2 + 0.5
                                                   v4 = torch.tanh(v3)
                                                   v5 = v4 * y
                                                   return v5

which is the order and numbering of the compiler's kernel for it (`Graph.nodes` is a post-order walk, operands
left to right), so each kernel line has a prompt line of the same name to transliterate. Python evaluates
operands left to right, so hoisting them into assignments in that order changes nothing the unit computes.

Only functions whose bodies are straight-line (single-name assignments, each name assigned once, a return) are
rewritten, and not `__init__`; loops, branches, augmented assignments, unpacking, lambdas and comprehensions
leave a function as it is, as does a parameter or global already named like `v3`. Operands that are not
operations (names, constants, `-1.0`, attributes, subscripts, tuples, chained comparisons) stay in place.
"""

from __future__ import annotations

import ast
import re

__all__ = ["three_address"]

_LOCAL = re.compile(r"v\d+")
_OPERATIONS = (ast.Call, ast.BinOp, ast.UnaryOp, ast.Compare)
_BAIL = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr, ast.Await,
         ast.Yield, ast.YieldFrom, ast.Global, ast.Nonlocal)


def _is_operation(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return False  # `-1.0` is a constant
    if isinstance(node, ast.Compare) and len(node.ops) > 1:
        return False  # `a < b < c` evaluates `c` only when `a < b`: hoisting would change that
    return isinstance(node, _OPERATIONS)


class _Hoister:
    """Collects the assignments that hoist nested operations, in evaluation order."""

    def __init__(self):
        self.lines: list[ast.stmt] = []
        self.count = 0

    def temp(self, value: ast.expr) -> ast.Name:
        self.count += 1
        name = f"__t{self.count}"  # placeholder: every local is renumbered afterwards
        self.lines.append(ast.Assign([ast.Name(name, ast.Store())], value))
        return ast.Name(name, ast.Load())

    def operand(self, node: ast.expr) -> ast.expr:
        """A leaf for `node`: an operation becomes a temporary (its own operands hoisted first)."""
        node = self.operands(node)
        return self.temp(node) if _is_operation(node) else node

    def operands(self, node: ast.expr) -> ast.expr:
        """`node` with the operations among its operands hoisted; `node` itself stays."""
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):  # a method's receiver: `(x + 1).exp()`
                node.func.value = self.operand(node.func.value)
            node.args = [a if isinstance(a, ast.Starred) else self.operand(a) for a in node.args]
            for kw in node.keywords:
                kw.value = self.operand(kw.value)
        elif isinstance(node, ast.BinOp):
            node.left = self.operand(node.left)
            node.right = self.operand(node.right)
        elif isinstance(node, ast.UnaryOp) and _is_operation(node):
            node.operand = self.operand(node.operand)
        elif isinstance(node, ast.Compare) and _is_operation(node):
            node.left = self.operand(node.left)
            node.comparators = [self.operand(c) for c in node.comparators]
        return node


def _straight_line(fn: ast.FunctionDef) -> bool:
    assigned: list[str] = []
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                return False
            assigned.append(stmt.targets[0].id)
        elif not isinstance(stmt, (ast.Return, ast.Expr, ast.Pass)):
            return False
    if len(assigned) != len(set(assigned)) or any(isinstance(n, _BAIL) for n in ast.walk(fn)):
        return False
    params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg,
                              fn.args.kwarg) if a is not None}
    outer = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id not in assigned} | params
    return not any(_LOCAL.fullmatch(n) for n in outer)  # new names `v1, v2, ...` must not meet a free one


def _rewrite(fn: ast.FunctionDef) -> bool:
    """Put `fn` in three-address form; whether that changed it (an operation hoisted or a local renamed)."""
    hoist = _Hoister()
    body: list[ast.stmt] = []
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign):
            stmt.value = hoist.operands(stmt.value)
        elif isinstance(stmt, ast.Return) and stmt.value is not None:
            if isinstance(stmt.value, ast.Tuple):
                stmt.value.elts = [hoist.operand(e) for e in stmt.value.elts]
            else:
                stmt.value = hoist.operand(stmt.value)
        body += hoist.lines + [stmt]
        hoist.lines = []
    order = [s.targets[0].id for s in body if isinstance(s, ast.Assign)]
    names = {old: f"v{k}" for k, old in enumerate(order, 1)}
    for node in ast.walk(ast.Module(body, [])):
        if isinstance(node, ast.Name) and node.id in names:
            node.id = names[node.id]
    fn.body = body
    return hoist.count > 0 or any(old != new for old, new in names.items())


def three_address(prompt: str) -> str:
    """`prompt` (canonical Python, `canonical.canonicalize`) with its straight-line functions in three-address
    form; the text unchanged where no function is rewritten."""
    tree = ast.parse(prompt)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    functions += [m for c in tree.body if isinstance(c, ast.ClassDef) for m in c.body
                  if isinstance(m, ast.FunctionDef) and m.name != "__init__"]
    changed = False
    for fn in functions:
        if _straight_line(fn):
            changed |= _rewrite(fn)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if changed else prompt
