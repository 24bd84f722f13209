"""The model's prompt in three-address form, numbered like the compiler's kernels (pair formats 3 to 9).

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

Python evaluates operands left to right, so hoisting them into assignments in that order changes nothing the unit
computes. Format 3 keeps the statements in source order. Format 4 comes closer to the kernels in three ways:

- **The graph's order.** A kernel numbers its values in `Graph.nodes` order: a post-order walk from the outputs,
  operands left to right, each value at its first use. Format 4 emits a local where it is first used, not where
  it was assigned (`inner = ...; return 0.5 * x * (1.0 + tanh(inner))` computes `0.5 * x` first), and drops a
  local nothing uses. The units are pure, so the order of evaluation is not observable.
- **Constants folded.** The compiler evaluates operations on constants in Python (`math.sqrt(2.0 / math.pi)` is
  `0.7978845608028654` in the kernel); format 4 folds them the same way, where format 3 hoisted them into
  values the kernel does not have.
- **A call's result picked apart is one operation.** `torch.max(torch.sigmoid(x), -1).values` hoists the sigmoid
  and keeps `torch.max(v1, -1).values` as one value, where format 3 left the whole expression nested.

Format 5 names the loads as well. The kernels load the tensor parameters in the order of their first use and call
them `a0, a1, ...` (`x0, x1, ...` in row kernels); the format-4 model's most common mistake was reading one load in
place of another. So each tensor parameter is bound to its load's name at the top and used under it:

    def unit_fn(x, b, c):                      def unit_fn(x, b, c):
        return torch.sigmoid(c) * b + x   →        a0 = c
                                                   a1 = b
                                                   a2 = x
                                                   v1 = torch.sigmoid(a0)
                                                   v2 = v1 * a1
                                                   v3 = v2 + a2
                                                   return v3

Only functions whose bodies are straight-line (single-name assignments, each name assigned once, a return) are
rewritten, and not `__init__`; loops, branches, augmented assignments, unpacking, lambdas and comprehensions
leave a function as it is, as does a parameter or global already named like `v3` (and, in format 4, a statement
that is not an assignment or the return). Operands that are not operations (names, constants, `-1.0`,
attributes, subscripts, tuples, chained comparisons) stay in place.

Format 9 keeps an activation that a NumPy or loop rendering spells out (`1.0 / (1.0 + numpy.exp(-v2))`) on one
line, as the kernel lowered from the op graph has it (`p2t_core.llm.spelled`).
"""

from __future__ import annotations

import ast
import math
import operator
import re

from p2t_core.llm.spelled import TENSOR_STYLE, match_spelling
from p2t_core.ops import MATH_CONSTANTS

__all__ = ["three_address"]

_LOCAL = re.compile(r"v\d+")
_LOAD = re.compile(r"a\d+")  # format 5's names of the loaded parameters
_OPERATIONS = (ast.Call, ast.BinOp, ast.UnaryOp, ast.Compare)
_BAIL = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr, ast.Await,
         ast.Yield, ast.YieldFrom, ast.Global, ast.Nonlocal)
# What format 4 folds, as the compiler's frontend evaluates it: module constants (MATH_CONSTANTS) and scalar math
# functions
_SCALAR_FUNCTIONS = {f"math.{f}": getattr(math, f) for f in ("sqrt", "exp", "log", "log2", "log10", "sin", "cos",
                                                              "tan", "tanh", "erf", "fabs")}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _fold(node: ast.expr) -> float | int | None:
    """The value of a constant-only expression, evaluated in Python; None where it is not one, or where its value
    is not a finite real number (`math.inf`, `(-8) ** 0.5`)."""
    value = _evaluate(node)
    return value if type(value) in (int, float) and math.isfinite(value) else None


def _evaluate(node: ast.expr):
    if isinstance(node, ast.Constant):
        value = node.value
        return value if type(value) in (int, float) else None
    if isinstance(node, ast.Attribute):  # (every name folded is `module.name`)
        return MATH_CONSTANTS.get(ast.unparse(node)) if isinstance(node.value, ast.Name) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return None if value is None else -value if isinstance(node.op, ast.USub) else value
    try:
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left = _evaluate(node.left)
            right = None if left is None else _evaluate(node.right)
            if right is None or isinstance(node.op, ast.Pow) and abs(right) > 64:
                return None  # (a huge power is not worth computing: it is not a scalar the units use)
            return _ARITHMETIC[type(node.op)](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.keywords \
                and isinstance(node.func.value, ast.Name):
            function = _SCALAR_FUNCTIONS.get(ast.unparse(node.func))
            args = [_evaluate(a) for a in node.args] if function else [None]
            return None if None in args else function(*args)
    except (ArithmeticError, ValueError, TypeError):  # 1 / 0, math.log(-1.0), math.sqrt of a complex
        return None
    return None


def _is_operation(node: ast.expr, version: int) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return False  # `-1.0` is a constant
    if isinstance(node, ast.Compare) and len(node.ops) > 1:
        return False  # `a < b < c` evaluates `c` only when `a < b`: hoisting would change that
    if version >= 4 and isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.value, ast.Call):
        return True  # `torch.max(v1, -1).values`, `torch.max(v1, -1)[0]`
    return isinstance(node, _OPERATIONS)


class _Hoister:
    """Collects the assignments that hoist nested operations, in evaluation order. In format 4 it also folds
    constants and emits the unit's locals (`definitions`) where they are first used."""

    def __init__(self, version: int, definitions: dict[str, ast.expr], spelled: tuple[str, ...]):
        self.version = version
        self.spelled = spelled  # the modules whose spelled-out activations format 9 keeps whole
        self.lines: list[ast.stmt] = []
        self.count = 0
        self.definitions = definitions
        self.emitted: dict[str, ast.expr] = {}  # local -> the leaf that stands for its value

    def temp(self, value: ast.expr) -> ast.Name:
        self.count += 1
        name = f"__t{self.count}"  # placeholder: every local is renumbered afterwards
        self.lines.append(ast.Assign([ast.Name(name, ast.Store())], value))
        return ast.Name(name, ast.Load())

    def operand(self, node: ast.expr) -> ast.expr:
        """A leaf for `node`: an operation becomes a temporary (its own operands hoisted first)."""
        node = self.operands(node)
        return self.temp(node) if _is_operation(node, self.version) else node

    def operands(self, node: ast.expr) -> ast.expr:
        """`node` with the operations among its operands hoisted; `node` itself stays."""
        if self.version >= 4:
            value = _fold(node)
            folds = not isinstance(node, ast.Constant | ast.UnaryOp)  # (`-1.0` is already as folded as it gets)
            if folds and value is not None:
                # a negative value as `-c`, as Python writes it: a negative Constant unparses without parentheses
                return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))
            if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.value, ast.Call):
                node.value = self.operands(node.value)
        if self.version >= 9 and (spelled := match_spelling(node, _fold, self.spelled)) is not None:
            # an activation spelled out: one line, as the kernel has it (format 9)
            return spelled.write(self.operand(spelled.operand))
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):  # a method's receiver: `(x + 1).exp()`
                node.func.value = self.operand(node.func.value)
            node.args = [a if isinstance(a, ast.Starred) else self.operand(a) for a in node.args]
            for kw in node.keywords:
                kw.value = self.operand(kw.value)
        elif isinstance(node, ast.BinOp):
            node.left = self.operand(node.left)
            node.right = self.operand(node.right)
        elif isinstance(node, ast.UnaryOp) and _is_operation(node, self.version):
            node.operand = self.operand(node.operand)
        elif isinstance(node, ast.Compare) and _is_operation(node, self.version):
            node.left = self.operand(node.left)
            node.comparators = [self.operand(c) for c in node.comparators]
        elif self.version >= 4:  # a leaf (a name, attribute, subscript, tuple...): the locals in it, left to right
            node = _Locals(self).visit(node)
        return node

    def local(self, name: str) -> ast.expr:
        """The leaf standing for a local's value, its definition emitted at this first use."""
        if name not in self.emitted:
            self.emitted[name] = self.operand(self.definitions[name])
        leaf = self.emitted[name]
        return ast.Name(leaf.id, ast.Load()) if isinstance(leaf, ast.Name) else leaf


class _Locals(ast.NodeTransformer):
    """Puts the leaf standing for each local's value in place of its name (emitting it where it is first used)."""

    def __init__(self, hoist: _Hoister):
        self.hoist = hoist

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.hoist.local(node.id) if node.id in self.hoist.definitions else node


def _straight_line(fn: ast.FunctionDef, version: int) -> bool:
    assigned: list[str] = []
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                return False
            assigned.append(stmt.targets[0].id)
        elif version >= 4 and isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Constant):
            return False  # a call evaluated for its effect: emitting values in use order would lose it
        elif not isinstance(stmt, (ast.Return, ast.Expr, ast.Pass)):
            return False
    if len(assigned) != len(set(assigned)) or any(isinstance(n, _BAIL) for n in ast.walk(fn)):
        return False
    params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg,
                              fn.args.kwarg) if a is not None}
    outer = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id not in assigned} | params
    return not any(_LOCAL.fullmatch(n) for n in outer)  # new names `v1, v2, ...` must not meet a free one


def _rewrite(fn: ast.FunctionDef, version: int, spelled: tuple[str, ...]) -> bool:
    """Put `fn` in three-address form; whether that changed it (an operation hoisted or a local renamed)."""
    if version >= 4:  # locals are emitted at their first use, from the return
        definitions = {s.targets[0].id: s.value for s in fn.body if isinstance(s, ast.Assign)}
        statements = [s for s in fn.body if not isinstance(s, ast.Assign)]
    else:
        definitions, statements = {}, fn.body
    hoist = _Hoister(version, definitions, spelled)
    body: list[ast.stmt] = []
    for stmt in statements:
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
    changed = hoist.count > 0 or any(old != new for old, new in names.items()) or len(body) != len(fn.body)
    if version >= 5:
        loads = _load_names(fn, body)
        body = [ast.Assign([ast.Name(a, ast.Store())], ast.Name(p, ast.Load())) for p, a in loads.items()] + body
        changed |= bool(loads)
    fn.body = body
    return changed


def _tensor_params(fn: ast.FunctionDef) -> list[str]:
    """The parameters that are tensors as the compiler's frontend reads them: all but `self`, `*args`/`**kwargs`
    and those whose default is a number (scalars, passed to a kernel as `s0, s1, ...`)."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults = {p.arg: d for p, d in zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True)}
    defaults |= {p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None}
    params = [p.arg for p in (*positional, *a.kwonlyargs) if p.arg != "self"]
    return [p for p in params if p not in defaults or _fold(defaults[p]) is None]


def _load_names(fn: ast.FunctionDef, body: list[ast.stmt]) -> dict[str, str]:
    """Format 5: the tensor parameters renamed `a0, a1, ...` in `body`, in the order of their first use, which is
    the order in which the kernels load them (`In1_B_ptr` loaded as `a1`: the shipped format-4 model most often
    read one load in place of another). Returns parameter -> new name; none where an `aK` is already in use."""
    if any(isinstance(n, ast.Name) and _LOAD.fullmatch(n.id) for n in ast.walk(fn)) \
            or any(_LOAD.fullmatch(a.arg) for a in ast.walk(fn.args) if isinstance(a, ast.arg)):
        return {}
    tensors, order = set(_tensor_params(fn)), []
    for stmt in body:  # (a visitor walks operands left to right, as Python evaluates them)
        for node in _in_evaluation_order(stmt):
            if isinstance(node, ast.Name) and node.id in tensors and node.id not in order:
                order.append(node.id)
    loads = {p: f"a{k}" for k, p in enumerate(order)}
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id in loads:
                node.id = loads[node.id]
    return loads


def _in_evaluation_order(node: ast.AST):
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _in_evaluation_order(child)


def three_address(prompt: str, version: int = 3, spelled: tuple[str, ...] = TENSOR_STYLE) -> str:
    """`prompt` (canonical Python, `canonical.canonicalize`) with its straight-line functions in three-address
    form as pair format `version` (3 to 9; 6 to 8 as 5) writes it; the text unchanged where no function is
    rewritten. Format 9 keeps the activations spelled with the modules in `spelled` whole."""
    tree = ast.parse(prompt)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    functions += [m for c in tree.body if isinstance(c, ast.ClassDef) for m in c.body
                  if isinstance(m, ast.FunctionDef) and m.name != "__init__"]
    changed = False
    for fn in functions:
        if _straight_line(fn, version):
            changed |= _rewrite(fn, version, spelled)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if changed else prompt
