#!/usr/bin/env python3
"""Which operation each operation follows in a corpus split, as the model reads it (issue 5).

    python3 scripts/op_contexts.py DATA [--split train] [--family elementwise] [--every 4] [--ops "pow 1.5,log,sqrt"]

Each row's prompt is put in the model's form (pair format 6: three-address, one operation a line), and every line
`vN = <op>(vK, ...)` counts one (op, the op that made its first operand) pair; an operand that is a parameter counts
as `input`, a constant as `const`. A power is named with its exponent (`pow 1.5`), a method call by its name
(`x.exp()` is `exp`). What it shows: an op seen after only one or two others in training is one the model may tie to
that context. In the 200k corpus of the fifteenth session, every fractional power followed an `add`, and the shipped
weights could not write `exp(x) ** 1.5`. Prints, for each op asked for (default: the 12 most frequent), its count and
its most frequent predecessors.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2t_core.llm.pairform import model_prompt, prompt_unit  # noqa: E402

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.FloorDiv: "floordiv",
          ast.Mod: "mod", ast.MatMult: "matmul"}


def op_name(value: ast.expr) -> tuple[str, ast.expr | None]:
    """(the operation of a three-address line's right-hand side, its first operand)."""
    if isinstance(value, ast.BinOp):
        if isinstance(value.op, ast.Pow):
            exponent = value.right.value if isinstance(value.right, ast.Constant) else "x"
            return f"pow {exponent}", value.left
        return BINOPS.get(type(value.op), type(value.op).__name__.lower()), value.left
    if isinstance(value, ast.UnaryOp):
        return ("neg" if isinstance(value.op, ast.USub) else type(value.op).__name__.lower()), value.operand
    if isinstance(value, ast.Compare):
        return type(value.ops[0]).__name__.lower(), value.left
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        func = value.func
        dotted = ast.unparse(func.value)
        if dotted.split(".")[0] in ("torch", "numpy", "np", "F", "math"):  # torch.exp(x), F.silu(x)
            return func.attr, value.args[0] if value.args else None
        return func.attr, func.value  # a method: x.exp()
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id, value.args[0] if value.args else None
    return type(value).__name__.lower(), None


def contexts(prompt_text: str) -> list[tuple[str, str]]:
    """(op, predecessor op) for each assignment of the prompt's functions, in order."""
    made: dict[str, str] = {}
    pairs = []
    for node in ast.walk(ast.parse(prompt_text)):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if isinstance(node.value, ast.Name | ast.Attribute):  # `a0 = x`: a parameter bound to its load name
            made[name] = "input"
            continue
        op, first = op_name(node.value)
        if isinstance(first, ast.Name):
            before = made.get(first.id, "input")
        elif isinstance(first, ast.Attribute):  # self.weight
            before = "input"
        else:
            before = "const" if isinstance(first, ast.Constant) else "expr"
        made[name] = op
        pairs.append((op, before))
    return pairs


def count(path: Path, family: str | None, every: int, pair_format: int) -> dict[str, collections.Counter]:
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with path.open() as f:
        for i, line in enumerate(f):
            if i % every:
                continue
            row = json.loads(line)
            if family and row["family"] != family:
                continue
            text = model_prompt(row["prompt"], prompt_unit(row["prompt"]), row["ranks"], pair_format)
            for op, before in contexts(text):
                by_op[op][before] += 1
    return by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a `p2t data build` output directory")
    parser.add_argument("--split", default="train")
    parser.add_argument("--family", default="elementwise", help="only this family ('' for all)")
    parser.add_argument("--every", type=int, default=1, help="read every n-th row (a sample of a large split)")
    parser.add_argument("--ops", help="comma-separated ops to show, e.g. 'pow 1.5,log' (default: the most frequent)")
    parser.add_argument("--top", type=int, default=8, help="predecessors shown per op")
    parser.add_argument("--pair-format", type=int, default=6)
    parser.add_argument("--json", type=Path, help="also write every count here")
    args = parser.parse_args()
    by_op = count(args.data / f"{args.split}.jsonl", args.family or None, args.every, args.pair_format)
    ops = ([o.strip() for o in args.ops.split(",")] if args.ops
           else sorted(by_op, key=lambda o: -sum(by_op[o].values()))[:12])
    for op in ops:
        seen = by_op.get(op, collections.Counter())
        total = sum(seen.values())
        shown = ", ".join(f"{b} {n} ({n / total:.0%})" for b, n in seen.most_common(args.top)) if total else "-"
        print(f"{op:>12}  {total:>6}  after: {shown}  [{len(seen)} distinct]")
    if args.json:
        args.json.write_text(json.dumps({op: dict(c) for op, c in by_op.items()}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
