"""Lowering of an elementwise region: one program per BLOCK_SIZE output elements.

Inputs are read through broadcast strides over (at most) four collapsed dims; when every input is
contiguous with the output's shape the kernel takes the flat path (a constexpr branch), which is the
common case and moves 16-byte vectors.
"""

from __future__ import annotations

from p2t_core.codegen import Kernel, LoweringContext, Writer
from p2t_core.ir import Node

MAX_DIMS = 4


def pointer_name(i: int, node: Node) -> str:
    base = (node.name or f"t{i}").replace("self.", "").capitalize()
    return f"In{i}_{base}_ptr"


def kernel_scalars(group) -> list[Node]:
    """Scalar values the kernel takes as arguments (scalar parameters and runtime sizes)."""
    return [i for i in group.inputs if i.rank == 0 and i.op in ("scalar", "size")]


def lower_elementwise(group, ctx: LoweringContext) -> Kernel:
    env = ctx.launcher
    tensors = [i for i in group.inputs if not (i.rank == 0 and i.op in ("const", "scalar", "size"))]
    scalars = kernel_scalars(group)
    ptrs = [pointer_name(k, t) for k, t in enumerate(tensors)]
    outs = [f"Out{k}_ptr" for k in range(len(group.outputs))]
    scalar_args = [f"s{k}" for k in range(len(scalars))]
    stride_args = [f"{p[:-4]}_stride{d}" for p in ptrs for d in range(MAX_DIMS)]
    size_args = [f"size{d}" for d in range(1, MAX_DIMS)]

    w = Writer()
    w.jit_def(ctx.kernel_name, [*ptrs, *scalar_args, *outs, "n_elements", *size_args, *stride_args,
                                "CONTIGUOUS: tl.constexpr", "BLOCK_SIZE: tl.constexpr"])
    with w.indent():
        w.line("pid = tl.program_id(0)")
        w.line("offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)")
        w.line("mask = offsets < n_elements")
        if tensors:
            w.line("if CONTIGUOUS:")
            with w.indent():
                for p in ptrs:
                    w.line(f"{p[:-4].lower()}_offsets = offsets")
            w.line("else:")
            with w.indent():
                w.line(f"rest = offsets // size{MAX_DIMS - 1}")
                w.line(f"i{MAX_DIMS - 1} = offsets % size{MAX_DIMS - 1}")
                for d in range(MAX_DIMS - 2, 0, -1):
                    w.line(f"i{d} = rest % size{d}")
                    w.line(f"rest = rest // size{d}")
                w.line("i0 = rest")
                for p in ptrs:
                    terms = " + ".join(f"i{d} * {p[:-4]}_stride{d}" for d in range(MAX_DIMS))
                    w.line(f"{p[:-4].lower()}_offsets = {terms}")
        names: dict[int, str] = {}
        for k, (t, p) in enumerate(zip(tensors, ptrs, strict=True)):
            var = f"a{k}"
            load = f"tl.load({p} + {p[:-4].lower()}_offsets, mask=mask, other=0)"
            w.line(f"{var} = {load}" + (".to(tl.float32)" if t.dtype.is_float else ""))
            names[t.id] = var
        for s, arg in zip(scalars, scalar_args, strict=True):
            names[s.id] = arg
        emitter = ctx.emitter(names)
        w.lines_(emitter.lines(group.members))
        for out, optr in zip(group.outputs, outs, strict=True):
            w.line(f"tl.store({optr} + offsets, {names[out.id]}.to({optr}.dtype.element_ty), mask=mask)")

    # launcher
    assert tensors, "an elementwise kernel reads at least one tensor"
    launch: list[str] = []
    tensor_exprs = [env.tensor(t) for t in tensors]
    launch.append(f"shape = torch.broadcast_shapes({', '.join(f'{e}.shape' for e in tensor_exprs)})")
    out_vars = []
    for out in group.outputs:
        var = env.fresh("out")
        launch.append(env.alloc(out, "shape", env.dtype(out), f"{tensor_exprs[0]}.device", var))
        out_vars.append(var)
    launch.append(f"n_elements = {out_vars[0]}.numel()")
    launch.append("if n_elements > 0:")
    trailing = "," if len(tensor_exprs) == 1 else ""
    launch.append(f"    ins, sizes, strides, contiguous = _p2t_layout(shape, [{', '.join(tensor_exprs)}{trailing}])")
    block = 1024
    call_args = [
        *(f"ins[{k}]" for k in range(len(tensors))),
        *(env.scalar(s) for s in scalars),
        *out_vars,
        "n_elements",
        "*sizes[1:]",
        "*strides",
    ]
    launch.append(f"    grid = (_p2t_cdiv(n_elements, {block}),)")
    launch.append(f"    {ctx.kernel_name}[grid](")
    launch.append(f"        {', '.join(call_args)},")
    launch.append(f"        CONTIGUOUS=contiguous, BLOCK_SIZE={block}, num_warps=4,")
    launch.append("    )")
    env.prelude.add("_p2t_layout")
    return Kernel(ctx.kernel_name, w.text(), launch, tuple(sorted(ctx.helpers)))
