"""Partition a graph into fusable kernel groups.

Each group is one kernel over one index space:
- `elementwise`: every element of one output shape;
- `reduction` / `softmax` (a "row group"): a tensor of shape F reduced over dims D, with the elementwise
  prologue computed on the fly, several reductions of the same (F, D) sharing the kernel (in passes
  when one needs another's result, as `var` needs the mean), and the epilogue, both per reduced row
  and per element (a normalization: `x / x.sum(-1, keepdim=True)`);
- `matmul`: one (batched) matrix product with its elementwise epilogue.
Values cross between kernels only through memory ("materialized"): unit inputs, group outputs, and
views of those, which the launcher applies with torch for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2t_core.ir import ANCHOR_OPS, REDUCE_OPS, SOURCE_OPS, Graph, Node, Shape

VIEW_OPS = {"reshape", "permute", "expand"}
ROW_ANCHORS = REDUCE_OPS | {"softmax", "log_softmax"}


@dataclass
class KernelGroup:
    kind: str  # "elementwise" | "reduction" | "softmax" | "matmul"
    index: int
    anchors: list[Node] = field(default_factory=list)
    members: list[Node] = field(default_factory=list)  # computed in the kernel, topological order
    inputs: list[Node] = field(default_factory=list)  # materialized tensors and scalars it reads
    outputs: list[Node] = field(default_factory=list)  # members it stores
    shape: Shape = ()  # elementwise: the index space; row group: F, the reduced tensor's shape
    dims: tuple[int, ...] = ()  # row group: the reduced dims of F

    @property
    def anchor(self) -> Node | None:
        return self.anchors[0] if self.anchors else None

    def describe(self) -> str:
        ops = sorted({n.op for n in self.members})
        what = f"{self.kind} over {list(self.shape)}" + (f" reducing dims {list(self.dims)}" if self.dims else "")
        return f"kernel {self.index}: {what}; ops {', '.join(ops)}; {len(self.outputs)} output(s)"


@dataclass
class Schedule:
    graph: Graph
    groups: list[KernelGroup]
    views: list[Node]  # launcher-side views of materialized tensors, topological order

    def describe(self) -> str:
        return "\n".join(g.describe() for g in self.groups)


def aligned(shape: Shape, frame: Shape) -> bool:
    """`shape` broadcasts into `frame` without growing it (each dim equal or 1, right-aligned)."""
    if len(shape) > len(frame):
        return False
    offset = len(frame) - len(shape)
    return all(s == 1 or s == frame[offset + i] for i, s in enumerate(shape))


class Scheduler:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes = graph.nodes()
        self.order = {n.id: i for i, n in enumerate(self.nodes)}
        self.users = graph.users()
        self.group_of: dict[int, KernelGroup] = {}
        self.groups: list[KernelGroup] = []
        self.materialized: set[int] = {n.id for n in self.nodes if n.op in ("input", "module_tensor")}

    # -- classification ---------------------------------------------------------------------------
    def is_free(self, n: Node) -> bool:
        """Scalars: passed to a kernel as arguments or inlined."""
        return n.rank == 0 and n.op in ("const", "scalar", "size")

    def is_elementwise(self, n: Node) -> bool:
        return n.op not in SOURCE_OPS and n.op not in ANCHOR_OPS and n.op not in VIEW_OPS and n.op != "size"

    def is_launcher_view(self, n: Node) -> bool:
        return n.op in VIEW_OPS and (n.inputs[0].id in self.materialized or self.is_launcher_view(n.inputs[0]))

    def ready(self, n: Node) -> bool:
        return n.id in self.materialized or self.is_free(n) or self.is_launcher_view(n)

    # -- the schedule -----------------------------------------------------------------------------
    def run(self) -> Schedule:
        for node in self.nodes:
            if node.op in VIEW_OPS and not self.is_launcher_view(node):
                self.need(node.inputs[0])
            if node.op in ANCHOR_OPS and node.id not in self.group_of:
                if node.op == "matmul":
                    self.matmul_group(node)
                else:
                    self.row_group(node)
            if node.op in VIEW_OPS:
                self.need(node.inputs[0])
        for out in self.graph.outputs:
            self.need(out)
        self.finish_elementwise()
        self.drop_internal_outputs()
        groups = self.ordered_groups()
        for i, g in enumerate(groups):
            g.index = i
        views = [n for n in self.nodes if n.op in VIEW_OPS]
        return Schedule(self.graph, groups, views)

    def need(self, n: Node) -> None:
        """Mark a value as crossing kernels: it must be stored by the group that computes it."""
        if n.op in SOURCE_OPS or n.op in VIEW_OPS or self.is_free(n):
            if n.op in VIEW_OPS:
                self.need(n.inputs[0])
            return
        self.materialized.add(n.id)
        group = self.group_of.get(n.id)
        if group is not None and n not in group.outputs:
            group.outputs.append(n)
            group.outputs.sort(key=lambda o: self.order[o.id])

    def drop_internal_outputs(self) -> None:
        """A row group closes after each anchor joins it, and a member read by a later anchor's prologue or
        epilogue became an output then; once that anchor is in the same kernel, storing it only costs traffic."""
        returned = {o.id for o in self.graph.outputs}
        for g in self.groups:
            member_ids = {n.id for n in g.members}
            g.outputs = [n for n in g.outputs
                         if n.id in returned or any(u.id not in member_ids for u in self.users.get(n.id, ()))]

    def new_group(self, kind: str, shape: Shape, dims=()) -> KernelGroup:
        g = KernelGroup(kind, len(self.groups), shape=shape, dims=tuple(dims))
        self.groups.append(g)
        return g

    def add(self, g: KernelGroup, n: Node) -> None:
        if n.id not in self.group_of:
            self.group_of[n.id] = g
            g.members.append(n)

    # -- matmul -------------------------------------------------------------------------------------
    def matmul_group(self, mm: Node) -> None:
        for operand in mm.inputs:
            self.need(operand)
        g = self.new_group("matmul", mm.shape)
        g.anchors.append(mm)
        self.add(g, mm)
        self.absorb_epilogue(g, lambda n: aligned(n.shape, mm.shape) and n.shape == mm.shape)
        self.close(g)

    # -- row groups ---------------------------------------------------------------------------------
    def row_group(self, anchor: Node) -> None:
        x = anchor.inputs[0]
        frame = x.shape
        dims = anchor.attrs["dims"] if anchor.op in REDUCE_OPS else (anchor.attrs["dim"],)
        if list(dims) != list(range(dims[0], dims[-1] + 1)):
            dims = tuple(dims)  # non-contiguous dims: the lowering permutes the input in the launcher
        kind = "softmax" if anchor.op in ("softmax", "log_softmax") else "reduction"
        target = None
        for g in self.groups:
            if g.kind in ("reduction", "softmax") and g.shape == frame and g.dims == tuple(dims):
                if self.can_join(g, anchor):
                    target = g
        g = target or self.new_group(kind, frame, dims)
        if kind == "softmax":
            g.kind = "softmax"
        g.anchors.append(anchor)
        self.absorb_prologue(g, anchor)
        self.add(g, anchor)
        self.absorb_epilogue(g, lambda n: self.in_row_frame(g, n))
        self.close(g)

    def in_row_frame(self, g: KernelGroup, n: Node) -> bool:
        if aligned(n.shape, g.shape):
            return True
        reduced = tuple(s for i, s in enumerate(g.shape) if i not in g.dims)
        return aligned(n.shape, reduced) and all(
            self.group_of.get(i.id) is g or self.ready(i) or i.rank == 0 for i in n.inputs
        )

    def can_join(self, g: KernelGroup, anchor: Node) -> bool:
        """An anchor joins a same-space group unless it reads the group through another kernel."""
        for n in self.closure(anchor.inputs[0], g):
            if n.id in self.group_of and self.group_of[n.id] is not g:
                if self.depends_on_group(n, g):
                    return False
        return True

    def depends_on_group(self, n: Node, g: KernelGroup) -> bool:
        stack, seen = [n], set()
        while stack:
            cur = stack.pop()
            if cur.id in seen:
                continue
            seen.add(cur.id)
            if self.group_of.get(cur.id) is g:
                return True
            stack.extend(cur.inputs)
        return False

    def closure(self, root: Node, g: KernelGroup) -> list[Node]:
        """Elementwise nodes computable inside g's kernel from `root` back to ready values."""
        out, stack, seen = [], [root], set()
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            out.append(n)
            if self.is_elementwise(n) and n.id not in self.materialized and aligned(n.shape, g.shape):
                stack.extend(n.inputs)
        return out

    def absorb_prologue(self, g: KernelGroup, anchor: Node) -> None:
        for n in sorted(self.closure(anchor.inputs[0], g), key=lambda n: self.order[n.id]):
            if self.group_of.get(n.id) is g or self.ready(n):
                continue
            if self.is_elementwise(n) and aligned(n.shape, g.shape) and self.inputs_available(n, g):
                self.add(g, n)
            else:
                self.need(n)

    def inputs_available(self, n: Node, g: KernelGroup) -> bool:
        return all(self.ready(i) or self.group_of.get(i.id) is g or self.pure(i, g) for i in n.inputs)

    def pure(self, n: Node, g: KernelGroup) -> bool:
        """An elementwise value that g can recompute from ready values (no other kernel involved)."""
        if self.ready(n) or self.group_of.get(n.id) is g:
            return True
        if not self.is_elementwise(n) or n.id in self.group_of or not aligned(n.shape, g.shape):
            return False
        return all(self.pure(i, g) for i in n.inputs)

    def absorb_epilogue(self, g: KernelGroup, fits) -> None:
        changed = True
        while changed:
            changed = False
            for n in self.nodes:
                if n.id in self.group_of or not self.is_elementwise(n) or not fits(n):
                    continue
                if not any(self.group_of.get(i.id) is g for i in n.inputs):
                    continue
                if all(self.pure(i, g) for i in n.inputs):
                    for i in n.inputs:
                        self.absorb_pure(g, i)
                    self.add(g, n)
                    changed = True
        g.members.sort(key=lambda n: self.order[n.id])

    def absorb_pure(self, g: KernelGroup, n: Node) -> None:
        if self.ready(n) or self.group_of.get(n.id) is g:
            return
        for i in n.inputs:
            self.absorb_pure(g, i)
        self.add(g, n)

    def close(self, g: KernelGroup) -> None:
        """Record what crosses g's boundary: members used outside become outputs; outside values inputs."""
        member_ids = {n.id for n in g.members}
        for n in g.members:
            if any(u.id not in member_ids for u in self.users.get(n.id, ())) or n in self.graph.outputs:
                self.need(n)
            for i in n.inputs:
                if i.id not in member_ids:
                    self.need(i)

    # -- elementwise --------------------------------------------------------------------------------
    def finish_elementwise(self) -> None:
        """Every materialized elementwise value not yet in a kernel gets one, merged by shape."""
        pending = [n for n in self.nodes if n.id in self.materialized and n.id not in self.group_of]
        pending = [n for n in pending if self.is_elementwise(n)]
        while pending:
            n = pending.pop(0)
            if n.id in self.group_of:
                continue
            g = next((h for h in self.groups if h.kind == "elementwise" and h.shape == n.shape
                      and not self.would_cycle(h, n)), None)
            g = g or self.new_group("elementwise", n.shape)
            self.pull(g, n)
            g.members.sort(key=lambda m: self.order[m.id])
            self.close(g)
            pending += [m for m in self.nodes if m.id in self.materialized and m.id not in self.group_of
                        and self.is_elementwise(m) and m not in pending]

    def pull(self, g: KernelGroup, n: Node) -> None:
        if n.id in self.group_of or self.ready(n) and n.id not in self.materialized:
            return
        if n.id in self.materialized and not self.is_elementwise(n):
            return
        self.add(g, n)
        for i in n.inputs:
            if i.id in self.materialized and self.group_of.get(i.id) is not g:
                continue
            if self.is_elementwise(i) and aligned(i.shape, g.shape):
                self.pull(g, i)
            elif not self.ready(i):
                self.need(i)

    def would_cycle(self, g: KernelGroup, n: Node) -> bool:
        """Merging n into g must not make g read a kernel that reads g."""
        deps = self.group_deps()
        if any(h is not g and self.reaches(deps, h, g) for h in self.upstream_groups(n)):
            return True
        readers = [h for h in self.groups if any(i is n for m in h.members for i in m.inputs)]
        return any(h is not g and self.reaches(deps, g, h) for h in readers)

    def upstream_groups(self, n: Node) -> list[KernelGroup]:
        out, stack, seen = [], [n], set()
        while stack:
            cur = stack.pop()
            if cur.id in seen:
                continue
            seen.add(cur.id)
            if cur.id in self.group_of and cur is not n:
                out.append(self.group_of[cur.id])
                continue
            stack.extend(cur.inputs)
        return out

    def group_deps(self) -> dict[int, set[int]]:
        deps: dict[int, set[int]] = {}
        for g in self.groups:
            deps[id(g)] = set()
            for n in g.members:
                for i in n.inputs:
                    src = i
                    while src.op in VIEW_OPS:
                        src = src.inputs[0]
                    h = self.group_of.get(src.id)
                    if h is not None and h is not g:
                        deps[id(g)].add(id(h))
        return deps

    def reaches(self, deps, a: KernelGroup, b: KernelGroup) -> bool:
        """True when group a (transitively) reads group b."""
        stack, seen = [id(a)], set()
        while stack:
            cur = stack.pop()
            if cur == id(b) and cur != id(a):
                return True
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(deps.get(cur, ()))
        return False

    def ordered_groups(self) -> list[KernelGroup]:
        for g in self.groups:
            member_ids = {n.id for n in g.members}
            seen: set[int] = set()
            g.inputs = []
            for n in g.members:
                for i in n.inputs:
                    if i.id not in member_ids and i.id not in seen:
                        seen.add(i.id)
                        g.inputs.append(i)
        deps = self.group_deps()
        by_id = {id(g): g for g in self.groups if g.members}
        done: list[KernelGroup] = []
        placed: set[int] = set()
        while len(done) < len(by_id):
            progress = False
            for gid, g in sorted(by_id.items(), key=lambda kv: kv[1].index):
                if gid not in placed and deps[gid] <= placed:
                    done.append(g)
                    placed.add(gid)
                    progress = True
                    break
            if not progress:
                raise AssertionError("cyclic kernel dependencies: " + ", ".join(g.describe() for g in by_id.values()))
        return done


def schedule(graph: Graph) -> Schedule:
    return Scheduler(graph).run()
