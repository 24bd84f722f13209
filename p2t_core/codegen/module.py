"""Assembles the generated module: imports, Triton helpers, kernels, launcher helpers, the unit."""

from __future__ import annotations

import re

from p2t_core import __version__
from p2t_core.codegen import Kernel, LauncherEnv, LoweringContext, Writer, literal
from p2t_core.codegen.prelude import FAST_LAUNCH, PRELUDE
from p2t_core.errors import UnsupportedError
from p2t_core.ir import ANCHOR_OPS, Graph, Node
from p2t_core.schedule import VIEW_OPS, Schedule
from p2t_core.signature import Signature

HEADER = "import math\n\nimport torch\nimport triton\nimport triton.language as tl\n"


def size_var_name(sym: str) -> str:
    return f"size_{re.sub(r'[^0-9a-zA-Z_]', '_', sym)}"


class UnitEmitter:
    """Lowers a scheduled unit through the plugins and writes its launcher."""

    def __init__(self, graph: Graph, sched: Schedule, sig: Signature, plugins, *, autotune: bool = True):
        self.graph, self.sched, self.sig, self.plugins = graph, sched, sig, plugins
        self.env = LauncherEnv()
        self.kernels: list[Kernel] = []
        self.helpers: set[str] = set()
        self.autotune = autotune
        self.self_prefix = "self." if graph.kind == "module" else ""

    # -- launcher prologue ------------------------------------------------------------------------
    def bind_inputs(self, w: Writer) -> None:
        env = self.env
        for p in self.graph.params:
            env.used.add(p.name)
            env.exprs[p.id] = p.name
            if p.op == "input":
                env.dtypes[p.name] = f"{p.name}.dtype"
        env.inplace = {node_id: name for node_id, name in self.graph.inplace.items()}
        for t in self.graph.module_tensors:
            env.exprs[t.id] = f"self.{t.name}"
            env.dtypes[f"self.{t.name}"] = f"self.{t.name}.dtype"
        for n in self.graph.nodes():
            if n.op == "scalar" and n.name.startswith("self."):
                env.exprs[n.id] = n.name
        rank_generic = all(g.kind == "elementwise" for g in self.sched.groups) and not self.sched.views and not any(
            n.op == "size" for n in self.graph.nodes()
        )
        if not rank_generic:
            flexible = self.broadcast_only_params()
            for p in self.graph.params:
                if p.op == "input" and p.name not in flexible:
                    w.line(f'_p2t_check_rank("{p.name}", {p.name}, {p.rank})')
                    env.prelude.add("_p2t_check_rank")
            occurrences: dict[str, list[str]] = {}
            for src in [*self.graph.params, *self.graph.module_tensors]:
                if src.op not in ("input", "module_tensor"):
                    continue
                for d, s in enumerate(src.shape):
                    if isinstance(s, str):
                        expr = env.exprs[src.id]
                        if src.name in flexible:  # right-aligned, as broadcasting reads it: 1 where absent
                            occurrences.setdefault(s, []).append(f"_p2t_dim({expr}, {d - src.rank})")
                            env.prelude.add("_p2t_dim")
                        else:
                            occurrences.setdefault(s, []).append(f"{expr}.shape[{d}]")
            for sym, dims in occurrences.items():
                name = env.fresh(size_var_name(sym))
                env.sizes[sym] = name
                w.line(f"{name} = {dims[0]}" if len(dims) == 1 else f"{name} = _p2t_size({', '.join(dims)})")
                if len(dims) > 1:
                    env.prelude.add("_p2t_size")
        for n in self.graph.nodes():
            if n.op == "size":
                env.exprs[n.id] = " * ".join(f"{env.size(s)}" for s in n.attrs["dims"]) or "1"
                if any(isinstance(s, str) and s not in env.sizes for s in n.attrs["dims"]):
                    raise UnsupportedError("a size that depends on a reshape", "sizes of input tensors",
                                           line=n.loc[0], col=n.loc[1])

    def broadcast_only_params(self) -> set[str]:
        """Tensor parameters that only broadcast into elementwise ops beside a tensor that fixes the result's
        rank (a bias, a norm's weight): they may have fewer dims at run time, as in torch."""
        nodes = self.graph.nodes()
        users: dict[int, list[Node]] = {}
        for n in nodes:
            for i in n.inputs:
                users.setdefault(i.id, []).append(n)
        elementwise = {n.id for n in nodes if n.op not in ANCHOR_OPS and n.op not in VIEW_OPS
                       and n.op not in ("input", "scalar", "const", "size", "module_tensor")}

        def reaches_anchor(n: Node, seen: set[int]) -> bool:
            for u in users.get(n.id, ()):
                if u.id in seen:
                    continue
                seen.add(u.id)
                if u.op in ANCHOR_OPS or u.op in VIEW_OPS or (u.id in elementwise and reaches_anchor(u, seen)):
                    return True
            return False

        flexible = set()
        for p in self.graph.params:
            if p.op != "input":
                continue
            uses = users.get(p.id, [])
            if not uses or any(u.id not in elementwise for u in uses) or reaches_anchor(p, set()):
                continue
            if all(any(i is not p and i.rank >= p.rank and i.op != "const" for i in u.inputs) for u in uses):
                flexible.add(p.name)
        return flexible

    def emit_views(self, w: Writer) -> None:
        """Launcher-side views (reshape, permute, expand) of tensors that are ready."""
        env = self.env
        progress = True
        while progress:
            progress = False
            for v in self.sched.views:
                if v.id in env.exprs or v.inputs[0].id not in env.exprs:
                    continue
                src = env.exprs[v.inputs[0].id]
                var = env.fresh("view")
                if v.op == "permute":
                    w.line(f"{var} = {src}.permute({', '.join(map(str, v.attrs['perm']))})")
                elif v.op == "expand":
                    w.line(f"{var} = {src}.expand({', '.join(self.size_arg(s) for s in v.attrs['shape'])})")
                else:
                    args = [self.size_arg(s) for s in v.attrs["shape"]]
                    w.line(f"{var} = {src}.reshape({', '.join(args) or '()'})")
                    for d, s in enumerate(v.attrs["shape"]):
                        if isinstance(s, str) and s not in env.sizes:
                            env.sizes[s] = env.fresh(size_var_name(s))
                            w.line(f"{env.sizes[s]} = {var}.shape[{d}]")
                env.exprs[v.id] = var
                progress = True

    def size_arg(self, s) -> str:
        if isinstance(s, int) or s in self.env.sizes:
            return self.env.size(s)
        return "-1"

    # -- the unit -----------------------------------------------------------------------------------
    def launcher_body(self) -> Writer:
        w = Writer()
        self.bind_inputs(w)
        self.emit_views(w)
        for g in self.sched.groups:
            name = f"_{self.graph.name}_{g.index}_kernel"
            ctx = LoweringContext(self.graph.name, name, self.plugins.registry, self.env, autotune=self.autotune)
            kernel = self.plugins.pm.hook.p2t_lower_group(group=g, ctx=ctx)
            if kernel is None:
                raise UnsupportedError(f"{g.kind} kernel ({g.describe()})", "a plugin that lowers this group",
                                       line=g.anchor.loc[0] if g.anchor else 1)
            self.kernels.append(kernel)
            self.helpers.update(kernel.helpers)
            w.lines_(kernel.launch)
            self.emit_views(w)
        for node_id, name in self.graph.inplace.items():
            w.line(f"_p2t_writeback({name}, {self.env.exprs[node_id]})")
            self.env.prelude.add("_p2t_writeback")
        outs = [self.env.tensor(o) for o in self.graph.outputs]
        if self.graph.returns_none:
            w.line("return None")
        elif self.graph.returns_tuple:
            w.line(f"return {', '.join(outs)}{',' if len(outs) == 1 else ''}")
        else:
            w.line(f"return {outs[0]}")
        return w

    def signature_text(self) -> str:
        parts = []
        for p in self.sig.params:
            if hasattr(p, "kind"):
                default = f" = {literal(p.default)}" if p.default is not None else ""
                parts.append(f"{p.name}: {p.kind}{default}")
            else:
                parts.append(p.name)
        return ", ".join(parts)

    def unit_text(self) -> str:
        body = self.launcher_body()
        w = Writer()
        if self.graph.kind == "function":
            w.line(f"def {self.graph.name}({self.signature_text()}):")
            with w.indent():
                w.lines_(body.lines)
            return w.text()
        w.line(f"class {self.graph.name}(torch.nn.Module):")
        with w.indent():
            init = ", ".join(["self"] + [n + (f"={literal(d)}" if d is not None else "") for n, d in
                                         self.graph.init_params])
            w.line(f"def __init__({init}):")
            with w.indent():
                w.line("super().__init__()")
                for item in self.graph.init_plan:
                    if item[0] == "arg":
                        w.line(f"self.{item[1]} = {item[2]}")
                    elif item[0] == "const":
                        w.line(f"self.{item[1]} = {literal(item[2])}")
                    else:
                        _, attr, dims, kind = item
                        w.line(f"self.{attr} = torch.nn.Parameter(torch.{kind}({', '.join(map(str, dims))}))")
            w.line("")
            sig = self.signature_text()
            w.line(f"def forward(self{', ' if sig else ''}{sig}):")
            with w.indent():
                w.lines_(body.lines)
        return w.text()


def helper_closure(names: set[str], helpers: dict[str, str]) -> list[str]:
    """Helpers in dependency order (a helper's source may call other helpers, or name their module state)."""
    ordered: list[str] = []
    seen: set[str] = set()  # a helper that names one naming it back must not recurse forever

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for other in sorted(helpers):
            if other != name and re.search(rf"\b{other}\b", helpers[name]):
                visit(other)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    return ordered


def prelude_closure(names: set[str], texts: list[str]) -> list[str]:
    """The launcher helpers a module needs, sorted: those asked for, those its launchers name, those these name."""
    named = {n for n in PRELUDE if any(re.search(rf"\b{n}\b", t) for t in texts)}
    return sorted(helper_closure(set(names) | named, PRELUDE))


def with_fast_launch(text: str) -> str:
    """`text` with the launch decorator on every top-level kernel that is only `@triton.jit` (one with other
    decorators is left as it is)."""
    out, before = [], ""  # before: the last non-blank line
    for line in text.splitlines(keepends=True):
        # not under another decorator (one line, or the close of a wrapped call; a signature's close ends in ':')
        under = before.startswith("@") or (before.startswith((")", "]")) and not before.rstrip().endswith(":"))
        if line.rstrip() == "@triton.jit" and not under:
            out.append(f"@{FAST_LAUNCH}\n")
        out.append(line)
        before = line if line.strip() else before
    return "".join(out)


def emit_module(units: list[UnitEmitter], *, source_path: str, engine: str = "compiler") -> str:
    texts = [u.unit_text() for u in units]
    registry = units[0].plugins.registry
    helpers = set().union(*(u.helpers for u in units))
    prelude = set().union(*(u.env.prelude for u in units))
    names = ", ".join(u.graph.name for u in units)
    parts = [f'"""Generated by p2t {__version__} from {source_path} (units: {names}; engine: {engine})."""\n', HEADER]
    parts += [registry.helpers[h] for h in helper_closure(helpers, registry.helpers)]
    kernels = [with_fast_launch(k.source) for u in units for k in u.kernels]
    if kernels:  # the decorator runs as each kernel is defined, so its helper comes first
        parts.append(PRELUDE[FAST_LAUNCH].strip() + "\n")
    parts += kernels
    parts += [PRELUDE[name].strip() + "\n" for name in prelude_closure(prelude, texts)]
    parts += texts
    return "\n\n\n".join(p.rstrip("\n") for p in parts) + "\n"
