"""The LLM's prompt for one unit, and a unit's signature for the verifier.

The data pipeline (`p2t_core.data.pipeline.make_candidates`) trains on `canonicalize(source)` where
`source` is a file holding one unit and the imports it uses. `unit_prompt` rebuilds such a file from a
user's (possibly multi-unit) file: the imports the unit refers to, then the unit itself, then the same
`canonicalize`. For a one-unit file it gives exactly `canonicalize(source)`.
"""

from __future__ import annotations

import ast

from p2t_core.data.canonical import canonicalize
from p2t_core.errors import SourceError
from p2t_core.signature import ScalarParam, Signature, TensorParam

__all__ = ["unit_source", "unit_prompt", "unit_signature", "fallback_signature", "unit_names"]


def _top_units(tree: ast.Module) -> dict[str, ast.stmt]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def unit_names(source: str) -> list[str]:
    return list(_top_units(ast.parse(source)))


def _bound_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    out = set()
    for a in node.names:
        out.add(a.asname or a.name.split(".")[0])
    return out


def unit_source(source: str, unit: str) -> str:
    """The imports `unit` uses plus the unit's own text (decorators included), as one small file."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise SourceError(f"not valid Python: {e.msg} (line {e.lineno})") from None
    units = _top_units(tree)
    if unit not in units:
        raise SourceError(f"no top-level function or class named {unit!r} (found: {', '.join(units) or 'none'})")
    node = units[unit]
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    lines = source.splitlines(keepends=True)
    parts = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and _bound_names(stmt) & used:
            parts.append(ast.unparse(stmt) + "\n")
    start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno]) - 1
    parts.append("\n\n" + "".join(lines[start:node.end_lineno]))
    return "".join(parts)


def unit_prompt(source: str, unit: str) -> str:
    """The canonical Python of one unit: the model's prompt (exactly as the data pipeline builds it)."""
    return canonicalize(unit_source(source, unit))


def unit_signature(source: str, unit: str, path: str = "<input>", ranks: dict[str, int] | None = None
                   ) -> Signature:
    """The unit's signature from the compiler frontend (it works even where lowering refuses the unit);
    where the frontend cannot read the unit at all, `fallback_signature`."""
    from p2t_core.errors import P2TError
    from p2t_core.frontend import build_unit, parse_file
    from p2t_core.plugins import default_plugins

    try:
        parsed = parse_file(source, path)
        _, sig = build_unit(parsed, parsed.unit(unit), default_plugins().registry, ranks=ranks)
        return sig
    except P2TError as first:
        try:
            return fallback_signature(source, unit)
        except SourceError:
            raise first from None


def fallback_signature(source: str, unit: str, ranks: list[int] | None = None) -> Signature:
    """A coarse signature for a function the frontend cannot read: parameters with a default are scalars
    of the default's type; the others are tensors of rank `ranks[i]` (default 2) whose every dimension is
    the one size variable N (square shapes broadcast, reduce and multiply consistently)."""
    node = _top_units(ast.parse(source)).get(unit)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise SourceError(f"{unit}: no signature (only functions get a fallback signature)")
    a = node.args
    pos = [*a.posonlyargs, *a.args]
    defaults = dict(zip([p.arg for p in pos][len(pos) - len(a.defaults):], a.defaults, strict=True))
    defaults.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None})
    params: list[TensorParam | ScalarParam] = []
    ranks = list(ranks or [])
    for p in [*pos, *a.kwonlyargs]:
        d = defaults.get(p.arg)
        if isinstance(d, ast.Constant) and isinstance(d.value, (bool, int, float)):
            kind = "bool" if isinstance(d.value, bool) else type(d.value).__name__
            params.append(ScalarParam(p.arg, kind, d.value))
        else:
            rank = ranks.pop(0) if ranks else 2
            params.append(TensorParam(p.arg, ("N",) * rank))
    return Signature(unit, "function", tuple(params), 1)
