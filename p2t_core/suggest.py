"""`p2t suggest FILES...`: advice on which functions and Modules p2t would fuse into fewer kernels.

For each translation unit of each file the compiler can translate, the number of kernels an eager PyTorch
run would launch is compared with the number of fused kernels p2t emits; a unit with a gain gets one line

    file.py:LINE: UNIT: N eager kernels -> K fused (p2t translate file.py -f UNIT -o file_triton.py)

It is the `p2t-suggest` pre-commit hook (`.pre-commit-hooks.yaml`): fast (no GPU, no verification),
advice only (exit 0 unless `--strict`), and a unit the compiler cannot take is skipped silently
(`--verbose` says why).

Counting eager kernels (`eager_kernels`), on the unit's op graph after the compiler's passes, as torch
would launch them running the code op by op:

- one kernel per call of a composite op (an op a plugin defines by expansion: `mean`, `var`, `norm`,
  `logsumexp`, the losses, `layer_norm`, ...): torch runs each of these as one (or a few) kernels, so the
  graph nodes of its expansion count once together;
- one kernel per other compute node: an elementwise op (`+`, `exp`, `where`, ...), a reduction, a
  `matmul`, a `softmax`/`log_softmax`, or any op a plugin adds;
- free: sources (parameters, constants, module tensors, sizes), views (`reshape permute expand`: torch
  returns views without a kernel), dtype casts (counting them would flatter p2t), and arithmetic on Python
  scalars only (no tensor operand: no kernel).

The count is an estimate of torch's launches for the same code, not a measurement: it errs low (casts,
composites torch runs as two kernels, such as a loss's pointwise part and its reduction), so a suggestion
never oversells. The fused count is the number of kernels in p2t's module (`CompiledUnit.n_kernels`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

FREE_OPS = {"input", "scalar", "const", "module_tensor", "size", "reshape", "permute", "expand", "cast"}


def eager_kernels(graph, spans=()) -> int:
    """Kernels an op-by-op eager PyTorch run of `graph` would launch (the rule in the module docstring).

    `spans` are the node-id ranges `[start, end)` of composite-op expansions (`counting_plugins` records
    them while the unit is built): the countable nodes of one expansion count as one kernel."""
    outer = _outermost(spans)
    tensor_valued: set[int] = set()  # nodes whose value is a tensor (not a Python scalar)
    composites: set[int] = set()
    count = 0
    for node in graph.nodes():
        if node.op in ("input", "module_tensor"):
            tensor_valued.add(node.id)
            continue
        if not any(i.id in tensor_valued for i in node.inputs):
            continue  # a source, or arithmetic on Python scalars
        tensor_valued.add(node.id)
        if node.op in FREE_OPS:
            continue
        span = next((k for k, (lo, hi) in enumerate(outer) if lo <= node.id < hi), None)
        if span is None:
            count += 1
        elif span not in composites:
            composites.add(span)
            count += 1
    return count


def _outermost(spans) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans, key=lambda s: (s[0], -s[1])):
        if out and lo < out[-1][1]:
            continue  # nested inside the previous span (a composite expanding through another)
        out.append((lo, hi))
    return out


def counting_plugins(base=None):
    """A copy of the plugins whose composite ops record the node-id span of each expansion in `.spans`.

    Node ids come from one global counter, so the nodes an expansion creates have consecutive ids."""
    import copy
    import dataclasses

    from p2t_core import ir
    from p2t_core.ops import OpRegistry
    from p2t_core.plugins import default_plugins

    base = base or default_plugins()
    spans: list[tuple[int, int]] = []

    def tagging(op):
        inner = op.expand

        def expand(b, **operands):
            start = next(ir._ids)  # a marker id: every node the expansion creates comes after it
            try:
                return inner(b, **operands)
            finally:
                spans.append((start, next(ir._ids)))

        return dataclasses.replace(op, expand=expand)

    registry = OpRegistry(helpers=base.registry.helpers)
    wrapped = {name: tagging(op) if op.kind == "composite" and op.expand else op
               for name, op in base.registry.ops.items()}
    registry.ops = wrapped
    registry.by_spelling = {s: wrapped[op.name] for s, op in base.registry.by_spelling.items()}
    plugins = copy.copy(base)
    plugins.registry = registry
    plugins.spans = spans
    return plugins


@dataclass
class Suggestion:
    path: str
    line: int
    unit: str
    eager: int
    fused: int
    output: str

    def render(self) -> str:
        return (f"{self.path}:{self.line}: {self.unit}: {self.eager} eager kernels -> {self.fused} fused "
                f"(p2t translate {self.path} -f {self.unit} -o {self.output})")


def output_path(path: str) -> str:
    """`dir/name.py` → `dir/name_triton.py` (next to the file)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_triton.py"))


def suggest_file(path: str, *, plugins=None, note=None) -> tuple[list[Suggestion], list]:
    """Suggestions for one file, and the compiled units they refer to. `note(message)` hears why units are
    skipped or bring no gain (the `--verbose` output); nothing here raises for bad input."""
    from p2t_core.engine import compile_units
    from p2t_core.errors import P2TError, SourceError
    from p2t_core.frontend import parse_file
    from p2t_core.plugins import default_plugins

    note = note or (lambda message: None)
    try:
        source = Path(path).read_bytes().decode("utf-8")
        parsed = parse_file(source, path)
    except (OSError, UnicodeDecodeError, P2TError, RecursionError) as e:
        note(f"{path}: skipped: {_reason(e)}")
        return [], []
    plugins = counting_plugins(plugins or default_plugins())
    suggestions, compiled = [], []
    for unit in parsed.units:
        where = f"{path}:{unit.line}: {unit.name}"
        plugins.spans.clear()
        try:
            cu = compile_units(source, path, unit=unit.name, plugins=plugins, keep_going=False).units[0]
        except SourceError as e:
            note(f"{where}: skipped: {e.message}")
            continue
        except Exception as e:  # advice only: a compiler bug must never break a commit
            note(f"{where}: skipped: {_reason(e)}")
            continue
        eager, fused = eager_kernels(cu.graph, plugins.spans), cu.n_kernels
        if fused < eager:
            suggestions.append(Suggestion(path, unit.line, unit.name, eager, fused, output_path(path)))
            compiled.append(cu)
        else:
            note(f"{where}: no gain ({eager} eager kernel(s), {fused} fused)")
    return suggestions, compiled


def _reason(e: BaseException) -> str:
    from p2t_core.errors import P2TError

    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.start})"
    if isinstance(e, OSError):
        return f"cannot read: {e.strerror}"
    if isinstance(e, RecursionError):
        return "input nested too deeply"
    if isinstance(e, P2TError):
        return str(e)
    return f"internal error ({type(e).__name__}: {e})"


def write_module(path: str, compiled: list, plugins=None) -> str:
    """Write the suggested units of `path`, translated, to `name_triton.py` next to it."""
    from p2t_core.codegen.module import UnitEmitter, emit_module
    from p2t_core.plugins import default_plugins

    plugins = plugins or default_plugins()
    emitters = [UnitEmitter(c.graph, c.schedule, c.signature, plugins) for c in compiled]
    out = output_path(path)
    Path(out).write_text(emit_module(emitters, source_path=path))
    return out


@click.command("suggest")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--strict", is_flag=True, help="Exit 1 when there are suggestions (default: advice only, exit 0).")
@click.option("--write", is_flag=True, help="Write the suggested units, translated, to NAME_triton.py next to each "
                                            "file (unverified: run `p2t translate` to verify).")
@click.option("-v", "--verbose", is_flag=True, help="Also say why units are skipped or bring no gain.")
def suggest(files, strict, write, verbose):
    """Suggest functions and Modules that p2t fuses into fewer kernels than eager PyTorch launches.

    One line per unit with a gain: FILE:LINE: UNIT: N eager kernels -> K fused (the translate command).
    Fast (no GPU, no verification); units the compiler cannot take are skipped (--verbose: why).
    It is the `p2t-suggest` pre-commit hook.

    \b
    Examples:
      p2t suggest model.py layers/*.py
      p2t suggest --strict --verbose examples/rmsnorm.py
    """
    note = (lambda message: click.echo(message, err=True)) if verbose else None
    total = 0
    for path in files:
        suggestions, compiled = suggest_file(path, note=note)
        for s in suggestions:
            click.echo(s.render())
        total += len(suggestions)
        if write and compiled:
            try:
                out = write_module(path, compiled)
            except Exception as e:  # advice only
                click.echo(f"{path}: not written: {_reason(e)}", err=True)
            else:
                click.echo(f"{path}: wrote {out} (unverified; `p2t translate` verifies)", err=True)
    sys.exit(1 if strict and total else 0)


def main():
    suggest(prog_name="p2t suggest")


if __name__ == "__main__":
    main()
