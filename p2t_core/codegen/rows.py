"""Lowering of a row group: reductions (and softmax) over dims D of a tensor of shape F, fused with
their elementwise prologue and epilogue.

The launcher views every tensor as (outer, R, inner) around D. One program handles one outer index and
BLOCK_I inner positions, and walks R in tiles of BLOCK_R. Reductions that need another's result (the
variance needs the mean) run in later passes over R; values of the whole tensor that use a reduction
(`x / x.sum(-1, keepdim=True)`) are written in a final pass. When R fits in one tile (`SINGLE`), the
kernel loads each row once and keeps it in registers for every pass.
"""

from __future__ import annotations

from p2t_core.codegen import Kernel, LoweringContext, Writer
from p2t_core.codegen.elementwise import kernel_scalars, pointer_name
from p2t_core.ir import REDUCE_OPS, Node
from p2t_core.schedule import KernelGroup

MAX_SINGLE_R = 16384  # tiles up to this many elements stay in registers (64 KB of fp32 over 16 warps)

# Reductions a split reduction can combine from partial results, with their identity
SPLIT_IDENTITY = {"sum": "0.0", "prod": "1.0", "max": 'float("-inf")', "min": 'float("inf")'}

HELPERS = {
    "_p2t_mul": "@triton.jit\ndef _p2t_mul(a, b):\n    return a * b\n",
}


class RowLowering:
    def __init__(self, group: KernelGroup, ctx: LoweringContext, *, online_softmax: bool = True):
        self.g, self.ctx, self.online = group, ctx, online_softmax
        self.F = group.shape
        self.dims = group.dims
        self.reduced = tuple(s for i, s in enumerate(self.F) if i not in self.dims)
        self.members = group.members
        self.member_ids = {n.id for n in self.members}
        self.order = {n.id: i for i, n in enumerate(self.members)}
        self.tensors = [i for i in group.inputs if not (i.rank == 0 and i.op in ("const", "scalar", "size"))]
        self.scalars = kernel_scalars(group)
        self.rframe = self.reduced_frame()
        self.full = self.classify()
        self.depth = self.depths()
        self.stats: dict[int, tuple[str, str]] = {}  # softmax anchor -> (row max, row sum) variable names
        # softmax anchor -> its exp(x - max) tile, while the row is in registers: the result reuses it, so each
        # element costs one exp and a multiply, not two exps and a division (the 8192-wide bf16 softmax is bound
        # by the special-function unit's throughput as much as by memory with three of them per element)
        self.exp_tiles: dict[int, str] = {}
        self.anchors = [n for n in self.members if self.is_anchor(n)]
        # Few long rows (a whole-tensor loss): split R over many programs, then combine the partial results.
        self.splittable = bool(self.anchors) and all(
            a.op in SPLIT_IDENTITY and self.depth[a.id] == 0 for a in self.anchors
        ) and not any(o.id in self.full for o in self.g.outputs)
        # Every row reads one same input on the way to its reduction (matvec's vector): the rows' once-read loads
        # get an eviction hint and the launcher asks _p2t_row_config for the wider tile it takes.
        self.shared_input = any(t.id in self.full and not self.varies_across_rows(t) and self.feeds_reduction(t)
                                for t in self.tensors)

    # -- analysis ---------------------------------------------------------------------------------
    def reduced_frame(self) -> set[int]:
        """Nodes (and inputs) shaped like a reduction without keepdim: they broadcast against the reduced
        shape, not against F, so `x.sum(-1) + c` indexes c by row even when F is square."""
        frame: set[int] = set()
        leading = tuple(self.dims) == tuple(range(len(self.dims)))  # then the reduced shape right-aligns into F
        if leading:
            return frame
        reduced_rank = len(self.reduced)
        for n in self.members:
            if n.op in REDUCE_OPS and not n.attrs.get("keepdim"):
                frame.add(n.id)
            elif (not self.is_anchor(n) and any(i.id in frame for i in n.inputs) and n.rank == reduced_rank
                  and all(i.rank <= reduced_rank for i in n.inputs)):
                frame.add(n.id)
                frame.update(i.id for i in n.inputs if i.rank > 0 and i.id not in self.member_ids)
        return frame

    def varies_at(self, n: Node, dims) -> bool:
        """Whether n's F-aligned shape is not 1 at one of `dims` (dims of F that n lacks count as 1)."""
        pad = len(self.F) - n.rank
        return any(i - pad >= 0 and n.shape[i - pad] != 1 for i in dims)

    def varies_along_r(self, n: Node) -> bool:
        """An input varies along R when its F-aligned shape is not 1 at a reduced dim."""
        if n.id in self.rframe:
            return False  # reduced-frame input: one value per row
        return self.varies_at(n, self.dims)

    def varies_across_rows(self, n: Node) -> bool:
        """An input varies across rows when its F-aligned shape is not 1 at some dim that is not reduced: each of
        its elements is read by one row. One that does not (a weight vector along R) is read by every row."""
        return self.varies_at(n, [i for i in range(len(self.F)) if i not in self.dims])

    def feeds_reduction(self, t: Node) -> bool:
        """Whether input t is read on the way to one of the group's reductions (not only after them)."""
        todo, seen = list(self.anchors), set()
        while todo:
            for i in todo.pop().inputs:
                if i.id == t.id:
                    return True
                if i.id in self.member_ids and i.id not in seen:
                    seen.add(i.id)
                    todo.append(i)
        return False

    def classify(self) -> set[int]:
        full = {t.id for t in self.tensors if self.varies_along_r(t)}
        for n in self.members:
            if n.op in REDUCE_OPS:
                continue
            if n.op in ("softmax", "log_softmax") or any(i.id in full for i in n.inputs):
                full.add(n.id)
        return full

    def depths(self) -> dict[int, int]:
        """Pass index of each anchor: one more than the deepest anchor its inputs need."""
        depth: dict[int, int] = {}
        need: dict[int, int] = {}  # for every member: passes that must finish before it can be computed

        def ready_after(n: Node) -> int:
            if n.id not in self.member_ids:
                return 0
            return need[n.id]

        for n in self.members:
            before = max((ready_after(i) for i in n.inputs), default=0)
            if self.is_anchor(n):
                depth[n.id] = before
                need[n.id] = before + (2 if n.op in ("softmax", "log_softmax") and not self.online else 1)
            else:
                need[n.id] = before
        return depth

    def tag(self, n: Node) -> int:
        """A member's position in the group: stable variable names, whatever the process-wide node ids are."""
        return self.order[n.id]

    @staticmethod
    def is_anchor(n: Node) -> bool:
        return n.op in REDUCE_OPS or n.op in ("softmax", "log_softmax")

    # -- kernel -----------------------------------------------------------------------------------
    def lower(self) -> Kernel:
        ctx = self.ctx
        self.ptrs = [pointer_name(k, t) for k, t in enumerate(self.tensors)]
        self.outs = [f"Out{k}_ptr" for k in range(len(self.g.outputs))]
        scalar_args = [f"s{k}" for k in range(len(self.scalars))]
        strides = [f"{p[:-4]}_s{a}" for p in self.ptrs + self.outs for a in "ori"]
        self.parts = [f"Part{k}_ptr" for k in range(len(self.anchors))] if self.splittable else []
        split_args = [*self.parts, "Sem_ptr", "n_split", "chunk", "SPLIT: tl.constexpr"] if self.splittable else []
        params = [*self.ptrs, *scalar_args, *self.outs, "n_outer", "n_r", "n_inner", *strides, *split_args,
                  "WIDE: tl.constexpr", "SINGLE: tl.constexpr", "BLOCK_R: tl.constexpr", "BLOCK_I: tl.constexpr"]
        w = Writer()
        w.jit_def(ctx.kernel_name, params)
        with w.indent():
            self.program_position(w)
            self.scalar_names = dict(zip((s.id for s in self.scalars), scalar_args, strict=True))
            if self.splittable:
                w.line("if SPLIT:")
                with w.indent():
                    self.split_body(w)
                w.line("elif SINGLE:")
            else:
                w.line("if SINGLE:")
            with w.indent():
                self.body(w, single=True)
            w.line("else:")
            with w.indent():
                self.body(w, single=False)
        source = w.text()
        ctx.helpers.update(h for h in HELPERS if h in source)
        return Kernel(ctx.kernel_name, source, self.launcher(), tuple(sorted(ctx.helpers)))

    @staticmethod
    def program_position(w: Writer) -> None:
        """The program's outer index and its BLOCK_I inner positions."""
        w.line("o = tl.program_id(0).to(tl.int64)")
        w.line("offs_i = (tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I))[None, :]")
        w.line("mask_i = offs_i < n_inner")

    def row_loads(self, w: Writer, names: dict) -> None:
        """One value per row: inputs that do not vary along R."""
        for k, t in enumerate(self.tensors):
            if t.id not in self.full:
                var = f"row{k}"
                w.line(f"{var} = tl.load({self.addr(self.ptrs[k], None)}, mask=mask_i, other=0)" + self.upcast(t))
                names[t.id] = var

    def split_body(self, w: Writer) -> None:
        """A split reduction in one launch: each of n_split programs per tile reduces one chunk of R into a partial
        result, and the tile's last program to finish reduces the partial results and runs the epilogue.

        That last step was a second launch until the sixteenth session (torch.compile's split reductions launch
        twice too); on the H200, col_sum, smooth_l1 and mse_loss then stayed 8-10 us slower than a copy of their
        bytes, the one-launch row reductions of the same size 3.5-4 us (docs/BENCHMARKS.md). The partial results
        are published with a barrier (every thread has stored its part) and a release-acquire count per tile at GPU
        scope; the last program reads them past L1 and resets the count for the next launch on its stream
        (_p2t_semaphores)."""
        w.line("lo = tl.program_id(2) * chunk")
        names: dict = dict(self.scalar_names)
        self.row_loads(w, names)
        self.emit_rows(w, names, self.ctx.emitter(names))
        for a in self.anchors:
            self.init_acc(w, a)
        w.line("for start in range(lo, lo + chunk, BLOCK_R):")
        with w.indent():
            full_names = dict(names)
            fe = self.ctx.emitter(full_names)
            fe.counter = 3000
            self.loop_header(w)
            self.load_full(w, full_names)
            for a in self.anchors:
                self.update_acc(w, a, self.value_of(a, full_names, fe, w))
        part_at = "o * n_inner + offs_i"
        for k, a in enumerate(self.anchors):
            self.finish_acc(w, a, names)
            w.line(f"tl.store({self.parts[k]} + tl.program_id(2) * (n_outer * n_inner) + {part_at}, {names[a.id]}, "
                   "mask=mask_i)")
        w.line("tl.debug_barrier()")
        w.line("tile = o * tl.num_programs(1) + tl.program_id(1)")
        w.line('if tl.atomic_add(Sem_ptr + tile, 1, sem="acq_rel", scope="gpu") == n_split - 1:')
        with w.indent():
            w.line("tl.store(Sem_ptr + tile, 0)")
            # the partial results in tiles of the chunks' shape: no more registers than the loop above
            for a in self.anchors:
                self.init_acc(w, a)
            w.line("for start in range(0, n_split, BLOCK_R):")
            with w.indent():
                w.line("offs_s = (start + tl.arange(0, BLOCK_R))[:, None]")
                w.line("mask = (offs_s < n_split) & mask_i")
                for k, a in enumerate(self.anchors):
                    identity = SPLIT_IDENTITY[a.op]
                    w.line(f"part = tl.load({self.parts[k]} + offs_s * (n_outer * n_inner) + {part_at}, mask=mask, "
                           f"other={identity}, cache_modifier=\".cg\")")
                    self.update_acc(w, a, "part")
            for a in self.anchors:  # the per-row values of the prologue are still in `names`
                self.finish_acc(w, a, names)
            self.emit_rows(w, names, self.ctx.emitter(names))
            for o in self.g.outputs:
                self.store(w, o, names[o.id], full=False)

    def addr(self, ptr: str, r: str | None) -> str:
        base = f"{ptr} + o * {ptr[:-4]}_so + offs_i * {ptr[:-4]}_si"
        return base if r is None else f"{base} + {r} * {ptr[:-4]}_sr"

    def body(self, w: Writer, single: bool) -> None:
        self.exp_tiles = {}
        names: dict[int, str] = dict(self.scalar_names)
        emitter = self.ctx.emitter(names)
        self.row_loads(w, names)
        anchors = self.anchors
        n_passes = max((self.depth[a.id] + 1 for a in anchors), default=0)
        full_outputs = [o for o in self.g.outputs if o.id in self.full]
        if single:
            w.line("offs_r = tl.arange(0, BLOCK_R)[:, None]")
            w.line("offs_r = offs_r.to(tl.int64) if WIDE else offs_r")
            w.line("mask = (offs_r < n_r) & mask_i")
            full_names = dict(names)
            fe = self.ctx.emitter(full_names)
            fe.counter = 1000
            self.load_full(w, full_names, feeding=True)
            for p in range(n_passes):
                self.emit_rows(w, names, emitter)
                for a in (a for a in anchors if self.depth[a.id] == p):
                    self.single_anchor(w, a, names, full_names, fe)
                full_names.update(names)
            self.emit_rows(w, names, emitter)
            full_names.update(names)
            # Inputs read only after the reductions (a norm's weight and bias) are loaded here, not with the rest: a
            # load is not moved across the reductions' barriers, so loaded first they held their registers through
            # both (LayerNorm 16384x4096 bf16: 46 registers a thread, 5 programs a SM; scripts/kernel_anatomy.py)
            self.load_full(w, full_names, feeding=False)
            for o in full_outputs:
                self.emit_full(w, [o], full_names, fe)
                self.store(w, o, full_names[o.id], full=True)
        else:
            for p in range(n_passes):
                self.emit_rows(w, names, emitter)
                pass_anchors = [a for a in anchors if self.depth[a.id] == p]
                for a in pass_anchors:
                    self.init_acc(w, a)
                w.line("for start in range(0, n_r, BLOCK_R):")
                with w.indent():
                    full_names = dict(names)
                    fe = self.ctx.emitter(full_names)
                    fe.counter = 1000 + 100 * p
                    self.loop_header(w)
                    self.load_full(w, full_names)
                    for a in pass_anchors:
                        self.update_acc(w, a, self.value_of(a, full_names, fe, w))
                for a in pass_anchors:
                    self.finish_acc(w, a, names)
            self.emit_rows(w, names, emitter)
            if full_outputs:
                w.line("for start in range(0, n_r, BLOCK_R):")
                with w.indent():
                    full_names = dict(names)
                    fe = self.ctx.emitter(full_names)
                    fe.counter = 2000
                    self.loop_header(w)
                    self.load_full(w, full_names)
                    for o in full_outputs:
                        self.emit_full(w, [o], full_names, fe)
                        self.store(w, o, full_names[o.id], full=True)
        for o in self.g.outputs:
            if o.id not in self.full:
                self.store(w, o, names[o.id], full=False)

    def loop_header(self, w: Writer) -> None:
        w.line("offs_r = (start + tl.arange(0, BLOCK_R))[:, None]")
        w.line("offs_r = offs_r.to(tl.int64) if WIDE else offs_r")
        w.line("mask = (offs_r < n_r) & mask_i")

    def upcast(self, t: Node) -> str:
        return ".to(tl.float32)" if t.dtype.is_float else ""

    def load_full(self, w: Writer, names: dict[int, str], feeding: bool | None = None) -> None:
        """Load the per-element inputs: all of them, or (feeding True / False) those read on the way to a reduction /
        only after the reductions."""
        # Beside an input every row reads on the way to its reduction (matvec's vector), the inputs read once are
        # streamed past the cache so that it keeps the shared one: matvec 8192x8192 fp16 0.0441 -> 0.0387 ms on
        # the H200 (scripts/gpu_eviction_probe.py). Reductions without such an input did not change, and RMSNorm,
        # whose shared weight only scales the result, got 4% slower: neither gets the hint.
        for k, t in enumerate(self.tensors):
            if t.id in self.full and (feeding is None or self.feeds_reduction(t) == feeding):
                var = f"x{k}"
                hint = ', eviction_policy="evict_first"' if self.shared_input and self.varies_across_rows(t) else ""
                w.line(f"{var} = tl.load({self.addr(self.ptrs[k], 'offs_r')}, mask=mask, other=0{hint})"
                       + self.upcast(t))
                names[t.id] = var

    def emit_rows(self, w: Writer, names: dict[int, str], emitter) -> None:
        """Per-row members whose inputs are all known by now."""
        for n in self.members:
            if n.id in names or n.id in self.full or self.is_anchor(n):
                continue
            if all(i.id in names or i.op == "const" for i in n.inputs):
                w.lines_(emitter.lines([n]))

    def full_closure(self, roots: list[Node], names: dict[int, str]) -> list[Node]:
        out: list[Node] = []
        seen: set[int] = set()

        def visit(n: Node):
            if n.id in seen or n.id in names or n.op == "const" or n.id not in self.member_ids:
                return
            seen.add(n.id)
            for i in n.inputs:
                visit(i)
            out.append(n)

        for r in roots:
            visit(r)
        return out

    def store(self, w: Writer, o: Node, value: str, full: bool) -> None:
        k = self.g.outputs.index(o)
        ptr = self.outs[k]
        if full:
            w.line(f"tl.store({self.addr(ptr, 'offs_r')}, {value}.to({ptr}.dtype.element_ty), mask=mask)")
        else:
            w.line(f"tl.store({self.addr(ptr, None)}, {value}.to({ptr}.dtype.element_ty), mask=mask_i)")

    # -- reductions in loops ----------------------------------------------------------------------
    def acc(self, a: Node) -> str:
        return f"acc{self.tag(a)}"

    def init_acc(self, w: Writer, a: Node) -> None:
        acc = self.acc(a)
        shape = "[BLOCK_R, BLOCK_I]"
        init = {"sum": "0.0", "prod": "1.0", "max": 'float("-inf")', "min": 'float("inf")',
                "argmax": 'float("-inf")', "argmin": 'float("inf")'}
        if a.op in ("softmax", "log_softmax"):
            w.line(f"{acc}_m = tl.full({shape}, float(\"-inf\"), tl.float32)")
            w.line(f"{acc}_s = tl.zeros({shape}, tl.float32)")
            return
        w.line(f"{acc} = tl.full({shape}, {init[a.op]}, tl.float32)")
        if a.op in ("argmax", "argmin"):
            w.line(f"{acc}_i = tl.zeros({shape}, tl.int32)")

    def emit_full(self, w: Writer, roots: list[Node], names: dict[int, str], fe) -> None:
        """Per-element members needed for `roots`; a softmax is spelled from its row statistics."""
        for n in self.full_closure(roots, names):
            if n.op in ("softmax", "log_softmax"):
                m, s = self.stats[n.id]
                x = fe.operand(n.inputs[0])
                var = f"sm{self.tag(n)}"
                if n.op == "softmax" and n.id in self.exp_tiles:
                    w.line(f"{var} = {self.exp_tiles[n.id]} * (1.0 / {s})")
                elif n.op == "softmax":
                    w.line(f"{var} = tl.exp({x} - tl.where({m} == float(\"-inf\"), 0.0, {m})) * (1.0 / {s})")
                else:
                    w.line(f"{var} = {x} - tl.where({m} == float(\"-inf\"), 0.0, {m}) - tl.log({s})")
                names[n.id] = var
            else:
                w.lines_(fe.lines([n]))

    def value_of(self, a: Node, names, fe, w) -> str:
        (x,) = a.inputs
        self.emit_full(w, [x], names, fe)
        v = fe.operand(x)
        if x.id not in self.full:  # a per-row value reduced over R: broadcast it first
            v = f"({v} + tl.zeros([BLOCK_R, BLOCK_I], tl.float32))"
        return v

    def update_acc(self, w: Writer, a: Node, v: str) -> None:
        acc = self.acc(a)
        if a.op == "sum":
            w.line(f"{acc} += tl.where(mask, {v}, 0.0)")
        elif a.op == "prod":
            w.line(f"{acc} *= tl.where(mask, {v}, 1.0)")
        elif a.op in ("max", "min"):
            fill = '"-inf"' if a.op == "max" else '"inf"'
            fn = "tl.maximum" if a.op == "max" else "tl.minimum"
            w.line(f"{acc} = {fn}({acc}, tl.where(mask, {v}, float({fill})), propagate_nan=tl.PropagateNan.ALL)")
        elif a.op in ("argmax", "argmin"):
            cmp = ">" if a.op == "argmax" else "<"
            w.line(f"val = tl.where(mask, {v}, {acc})")
            w.line(f"take = mask & ((val {cmp} {acc}) | ((val != val) & ({acc} == {acc})))")
            w.line(f"{acc} = tl.where(take, val, {acc})")
            w.line(f"{acc}_i = tl.where(take, offs_r.to(tl.int32) + tl.zeros([BLOCK_R, BLOCK_I], tl.int32), {acc}_i)")
        else:  # online softmax: running max and rescaled running sum per lane
            w.line(f"val = tl.where(mask, {v}, float(\"-inf\"))")
            w.line(f"m_new = tl.maximum({acc}_m, val)")
            w.line("safe = tl.where(m_new == float(\"-inf\"), 0.0, m_new)")
            w.line(f"{acc}_s = {acc}_s * tl.exp({acc}_m - safe) + tl.exp(val - safe)")
            w.line(f"{acc}_m = m_new")

    def finish_acc(self, w: Writer, a: Node, names: dict[int, str]) -> None:
        acc, out = self.acc(a), f"red{self.tag(a)}"
        if a.op == "sum":
            w.line(f"{out} = tl.sum({acc}, axis=0)[None, :]")
        elif a.op == "prod":
            w.line(f"{out} = tl.reduce({acc}, 0, _p2t_mul)[None, :]")
        elif a.op in ("max", "min"):
            fn = "tl.max" if a.op == "max" else "tl.min"
            w.line(f"{out} = {fn}({acc}, axis=0)[None, :]")
            any_nan = f"tl.max(({acc} != {acc}).to(tl.int32), axis=0)[None, :] > 0"
            w.line(f"{out} = tl.where({any_nan}, float(\"nan\"), {out})")
        elif a.op in ("argmax", "argmin"):
            fn = "tl.max" if a.op == "argmax" else "tl.min"
            w.line(f"has_nan = tl.max(({acc} != {acc}).to(tl.int32), axis=0)[None, :] > 0")
            w.line(f"best = {fn}({acc}, axis=0)[None, :]")
            w.line(f"hit = tl.where(has_nan, {acc} != {acc}, {acc} == best)")
            w.line(f"{out} = tl.min(tl.where(hit, {acc}_i, 2147483647), axis=0)[None, :].to(tl.int64)")
        else:
            w.line(f"{out}_m = tl.max({acc}_m, axis=0)[None, :]")
            w.line(f"safe = tl.where({out}_m == float(\"-inf\"), 0.0, {out}_m)")
            w.line(f"{out}_s = tl.sum({acc}_s * tl.exp({acc}_m - safe), axis=0)[None, :]")
            self.stats[a.id] = (f"{out}_m", f"{out}_s")
            return
        names[a.id] = out

    # -- reductions on a tile in registers --------------------------------------------------------
    def single_anchor(self, w: Writer, a: Node, names, full_names, fe) -> None:
        out = f"red{self.tag(a)}"
        v = self.value_of(a, full_names, fe, w)
        if a.op == "sum":
            w.line(f"{out} = tl.sum(tl.where(mask, {v}, 0.0), axis=0)[None, :]")
        elif a.op == "prod":
            w.line(f"{out} = tl.reduce(tl.where(mask, {v}, 1.0), 0, _p2t_mul)[None, :]")
        elif a.op in ("max", "min", "argmax", "argmin"):
            self.init_acc(w, a)
            self.update_acc(w, a, v)
            self.finish_acc(w, a, names)
            return
        else:
            w.line(f"val = tl.where(mask, {v}, float(\"-inf\"))")
            w.line(f"{out}_m = tl.max(val, axis=0)[None, :]")
            w.line(f"safe = tl.where({out}_m == float(\"-inf\"), 0.0, {out}_m)")
            w.line(f"{out}_e = tl.exp(val - safe)")
            w.line(f"{out}_s = tl.sum({out}_e, axis=0)[None, :]")
            self.stats[a.id] = (f"{out}_m", f"{out}_s")
            if a.op == "softmax":
                self.exp_tiles[a.id] = f"{out}_e"
            return
        names[a.id] = out

    # -- launcher ---------------------------------------------------------------------------------
    def launcher(self) -> list[str]:
        env = self.ctx.launcher
        lines: list[str] = []
        F = f"({', '.join(env.size(s) for s in self.F)}{',' if len(self.F) == 1 else ''})"
        dims = f"({', '.join(map(str, self.dims))}{',' if len(self.dims) == 1 else ''})"
        lines.append(f"shape = {F}")
        lines.append(f"dims = {dims}")
        views = []
        for t in self.tensors:
            src = env.tensor(t)
            if t.id in self.rframe:  # reduced-frame input: restore the reduced dims as size 1
                src = f"_p2t_keepdim({src}, shape, dims)"
                env.prelude.add("_p2t_keepdim")
            views.append(src)
        device = f"{env.tensor(self.tensors[0])}.device"
        outs = []
        for o in self.g.outputs:
            var = env.fresh("out")
            oshape = f"({', '.join(env.size(s) for s in o.shape)}{',' if o.rank == 1 else ''})"
            if o.id in self.full and o.id not in env.inplace:
                lines.append(f"{var} = _p2t_empty_rows(shape, dims, {env.dtype(o)}, {device})")
                env.prelude.add("_p2t_empty_rows")
                env.exprs[o.id] = var
            else:
                lines.append(env.alloc(o, oshape, env.dtype(o), device, var))
            keep = o.id not in self.rframe  # full, or reduced with keepdim
            view = var if keep else f"_p2t_keepdim({var}, shape, dims)"
            if not keep:
                env.prelude.add("_p2t_keepdim")
            outs.append(view)
        lines.append("n_outer, n_r, n_inner = _p2t_row_sizes(shape, dims)")
        lines.append("if n_outer * n_inner > 0:")
        body = []
        args = []
        for k, src in enumerate(views + outs):
            body.append(f"t{k}, st{k} = _p2t_rows({src}, shape, dims)")
            args.append(f"t{k}")
        stride_lists = [f"st{k}" for k in range(len(views) + len(outs))]
        stride_tuple = f"({', '.join(stride_lists)}{',' if len(stride_lists) == 1 else ''})"
        body.append(f"n_outer, n_inner, {stride_tuple} = _p2t_short_rows(")
        body.append(f"    n_outer, n_r, n_inner, t0.element_size(), {stride_tuple})")
        strides = [f"*{st}" for st in stride_lists]
        shared = ", shared=True" if self.shared_input else ""
        row_config = ("block_r, block_i, single, warps = "
                      f"_p2t_row_config(n_outer, n_r, n_inner, {MAX_SINGLE_R}, t0.element_size(){shared})")
        call = [*args[: len(views)], *(env.scalar(s) for s in self.scalars), *args[len(views):], "n_outer", "n_r",
                "n_inner", *strides]
        wide = "WIDE=n_outer * n_r * n_inner >= 2**31"
        if self.splittable:
            body.append("n_split, chunk, block_s, block_c, warps_s = "
                        "_p2t_split_config(n_outer, n_r, n_inner, t0.element_size())")
            body.append("if n_split > 1:")
            for k in range(len(self.parts)):
                body.append(f"    part{k} = torch.empty((n_split, n_outer, n_inner), dtype=torch.float32, "
                            f"device={device})")
            body.append(f"    sem = _p2t_semaphores(n_outer * _p2t_cdiv(n_inner, block_c), {device})")
            body.append(f"    {self.ctx.kernel_name}[(n_outer, _p2t_cdiv(n_inner, block_c), n_split)](")
            body.append(f"        {', '.join([*call, *(f'part{k}' for k in range(len(self.parts))), 'sem'])},")
            body.append(f"        n_split, chunk, SPLIT=True, SINGLE=False, {wide}, BLOCK_I=block_c, BLOCK_R=block_s,")
            body.append("        num_warps=warps_s,")
            body.append("    )")
            body.append("else:")
            body.append(f"    {row_config}")
            dummies = [args[0]] * (len(self.parts) + 1)
            body.append(f"    {self.ctx.kernel_name}[(n_outer, _p2t_cdiv(n_inner, block_i))](")
            body.append(f"        {', '.join([*call, *dummies, '1', 'n_r'])},")
            body.append(f"        SPLIT=False, SINGLE=single, {wide}, BLOCK_I=block_i, BLOCK_R=block_r,")
            body.append("        num_warps=warps,")
            body.append("    )")
            env.prelude.update({"_p2t_split_config", "_p2t_semaphores"})
        else:
            body.append(row_config)
            body.append(f"{self.ctx.kernel_name}[(n_outer, _p2t_cdiv(n_inner, block_i))](")
            body.append(f"    {', '.join(call)},")
            body.append(f"    SINGLE=single, {wide}, BLOCK_I=block_i, BLOCK_R=block_r, num_warps=warps,")
            body.append(")")
        lines += ["    " + b for b in body]
        env.prelude.update({"_p2t_rows", "_p2t_row_sizes", "_p2t_row_config", "_p2t_short_rows"})
        return lines
