"""The canonical form of a Python unit: the LLM's prompt, and the key pairs are deduplicated by.

`canonicalize(source)` removes everything that does not change what the code computes or how it reads
to the compiler, deterministically:

- comments, docstrings and all formatting (one layout: Python's own `ast.unparse`, which also writes
  numbers and strings one way: `1e-05`, `'tanh'`);
- alias imports: `import torch as t` becomes `import torch` and `t.exp` becomes `torch.exp`;
  `import numpy as np` → `numpy.*`, `import torch.nn.functional as F` → `torch.nn.functional.*`,
  `from torch import nn` → `torch.nn.*`; what remains is one `import TOP` per top-level package,
  sorted (importing `torch` or `numpy` loads the submodules the units use: `torch.nn.functional`,
  `numpy.linalg`);
- local variables renamed `v0, v1, ...` in order of first assignment within each function (loop
  variables included); parameter, function, class and attribute names are kept.

The same function written with other local names, comments, spacing, docstrings or import aliases
gives the same canonical text. Spellings are not unified (`x.exp()` and `torch.exp(x)` stay different):
they are what the styles teach.

The design calls this "libcst-normalized"; the frontend parses with libcst, but a canonical form needs
no round-tripping of the original layout, so this works on `ast` (faster, and `ast.unparse` gives the
one deterministic layout). It accepts any valid Python; `SyntaxError` propagates.
"""

from __future__ import annotations

import ast
import hashlib


def canonical_hash(text: str) -> str:
    """sha256 hex of a canonical text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _dotted(path: str) -> ast.expr:
    parts = path.split(".")
    node: ast.expr = ast.Name(parts[0], ast.Load())
    for p in parts[1:]:
        node = ast.Attribute(node, p, ast.Load())
    return node


class _Aliases(ast.NodeTransformer):
    """Resolve alias imports to full dotted names."""

    def __init__(self):
        self.map: dict[str, str] = {}
        self.imports: set[str] = set()

    def visit_Import(self, node: ast.Import):
        for a in node.names:
            if a.asname and a.asname != a.name:
                self.map[a.asname] = a.name
            self.imports.add(a.name.split(".")[0])
        return None

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level or not node.module or any(a.name == "*" for a in node.names):
            return node
        for a in node.names:
            self.map[a.asname or a.name] = f"{node.module}.{a.name}"
        self.imports.add(node.module.split(".")[0])
        return None

    def visit_Name(self, node: ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id in self.map:
            return ast.copy_location(_dotted(self.map[node.id]), node)
        return node


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:] or [ast.Pass()]
    return body


def _rename_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    a = fn.args
    params = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
    params |= {p.arg for p in (a.vararg, a.kwarg) if p is not None}
    stores: list[ast.Name] = []
    loads: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                stores.append(node)
            else:
                loads.add(node.id)
    order: dict[str, None] = {}
    for n in sorted(stores, key=lambda n: (n.lineno, n.col_offset)):
        if n.id not in params:
            order.setdefault(n.id)
    taken = params | (loads - set(order))
    mapping: dict[str, str] = {}
    k = 0
    for name in order:
        while f"v{k}" in taken:
            k += 1
        mapping[name] = f"v{k}"
        k += 1
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]


def canonicalize(source: str) -> str:
    tree = ast.parse(source)
    aliases = _Aliases()
    tree = aliases.visit(tree)
    tree.body = _strip_docstring(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = _strip_docstring(node.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _rename_locals(node)
    imports = [ast.Import([ast.alias(name)]) for name in sorted(aliases.imports)]
    rest = [s for s in tree.body if not isinstance(s, ast.Pass)]
    tree.body = imports + rest
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"
