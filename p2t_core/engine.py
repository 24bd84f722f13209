"""The compiler engine: source → graphs → passes → schedule → plugin lowering → one Triton module."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from p2t_core.codegen.module import UnitEmitter, emit_module
from p2t_core.errors import P2TError, ShapeError, SourceError
from p2t_core.frontend import build_unit, parse_file
from p2t_core.graph_check import check_graph
from p2t_core.ir import Graph
from p2t_core.passes import run_passes
from p2t_core.plugins import Plugins, default_plugins
from p2t_core.schedule import Schedule, schedule
from p2t_core.signature import Signature


@dataclass
class CompiledUnit:
    name: str
    graph: Graph
    schedule: Schedule
    signature: Signature
    module_source: str  # a module holding this unit alone

    @property
    def n_kernels(self) -> int:
        return len(self.schedule.groups)


@dataclass
class Translation:
    """The result of translating a file: the module (all units) and per-unit details and errors."""

    path: str
    source: str
    module_source: str | None
    units: list[CompiledUnit] = field(default_factory=list)
    errors: list[P2TError] = field(default_factory=list)
    seconds: float = 0.0
    unit_names: list[str] = field(default_factory=list)  # every unit asked for, translated or not, in file order


def parse_shapes(spec: str | None) -> dict[str, tuple[int, ...]]:
    """`x=4x8,w=8` → {"x": (4, 8), "w": (8,)}; a parameter's rank and sizes for verification."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (spec or "").split(",")):
        name, _, dims = item.partition("=")
        try:
            shapes[name.strip()] = tuple(int(d) for d in dims.strip().split("x")) if dims.strip() else ()
        except ValueError:
            raise SourceError(f"bad --shapes item {item!r}; expected NAME=4x8") from None
    return shapes


def compile_units(
    source: str,
    path: str = "<input>",
    *,
    unit: str | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    plugins: Plugins | None = None,
    autotune: bool = True,
    keep_going: bool = True,
) -> Translation:
    """Translate the units of a file (or the one named `unit`). Errors are collected per unit."""
    start = time.perf_counter()
    plugins = plugins or default_plugins()
    parsed = parse_file(source, path)
    targets = [parsed.unit(unit)] if unit else parsed.units
    if not targets:
        raise SourceError("no translation units (top-level functions or nn.Module classes) in the file", path=path)
    result = Translation(path, source, None, unit_names=[u.name for u in targets])
    emitters = []
    for u in targets:
        try:
            graph, sig = build_unit(parsed, u, plugins.registry, ranks={k: len(v) for k, v in (shapes or {}).items()})
            check_graph(graph)
            run_passes(graph)
            sched = schedule(graph)
            if shapes:
                _check_shapes(sig, shapes, path, graph.outputs[0].loc)
            emitter = UnitEmitter(graph, sched, sig, plugins, autotune=autotune)
            single = emit_module([emitter], source_path=path)
            emitters.append(emitter)
            result.units.append(CompiledUnit(u.name, graph, sched, sig, single))
        except P2TError as e:
            if not keep_going:
                raise
            result.errors.append(e)
    if result.units:
        fresh = [UnitEmitter(c.graph, c.schedule, c.signature, plugins, autotune=autotune) for c in result.units]
        result.module_source = emit_module(fresh, source_path=path)
    result.seconds = time.perf_counter() - start
    return result


def _check_shapes(sig: Signature, shapes, path: str, loc) -> None:
    """Explicit shapes must satisfy the unit's size constraints (e.g. `x @ w + x` needs a square w)."""
    from p2t_core.translate import bindings_from_shapes

    try:
        bindings_from_shapes(sig, shapes)
    except ShapeError as e:
        raise ShapeError(f"{e.message} (the unit's shapes must agree: {_dims_text(sig)})", path=path, line=loc[0],
                         col=loc[1]) from None


def _dims_text(sig: Signature) -> str:
    return ", ".join(f"{p.name}: ({', '.join(map(str, p.dims))})" for p in sig.tensor_params)


def compile_unit_source(source: str, unit: str, *, path: str = "<input>", plugins: Plugins | None = None,
                        shapes=None) -> CompiledUnit:
    """One unit, raising its error: the data pipeline's entry point."""
    translation = compile_units(source, path, unit=unit, plugins=plugins, shapes=shapes, keep_going=False)
    return translation.units[0]
