"""Matrix products (`@`, matmul, mm, bmm, mv, F.linear) with a fused elementwise epilogue.

The kernel is a template: a tiled product over (batch, M, N) with grouped tile ordering for L2 reuse,
fp32 accumulation, and the epilogue (bias, activation, scale, residual) applied to the accumulator
before the one store.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from p2t_core.codegen import Kernel, LoweringContext, Writer
from p2t_core.codegen.elementwise import kernel_scalars, pointer_name
from p2t_core.hookspecs import hookimpl
from p2t_core.ops import OpDef
from p2t_core.validate import function_case


def _matmul(b, x, y):
    return b.matmul(x, y)


def _linear(b, input, weight, bias=None):
    out = b.matmul(input, b.transpose(weight, 0, 1) if weight.rank == 2 else weight)
    return b.elementwise("add", x=out, y=bias) if bias is not None else out


def _addmm(b, input, mat1, mat2, beta=1, alpha=1):
    prod = b.matmul(mat1, mat2)
    if alpha != 1:
        prod = b.elementwise("mul", x=prod, y=b.lift(alpha))
    scaled = input if beta == 1 else b.elementwise("mul", x=input, y=b.lift(beta))
    return b.elementwise("add", x=scaled, y=prod)


def _checked(rank_a, rank_b, name):
    def expand(b, x, y):
        if x.rank != rank_a or y.rank != rank_b:
            raise b.shape_error(f"{name} takes {rank_a}-D and {rank_b}-D tensors, got {x.rank}-D and {y.rank}-D")
        return b.matmul(x, y)

    return expand


OPS = [
    OpDef("matmul", "composite", ("x", "y"), ("operator.matmul", "torch.matmul", "torch.Tensor.matmul",
          "numpy.matmul", "numpy.dot"), expand=_matmul, reference=torch.matmul),
    OpDef("mm", "composite", ("x", "y"), ("torch.mm", "torch.Tensor.mm"), expand=_checked(2, 2, "mm"),
          reference=torch.mm),
    OpDef("bmm", "composite", ("x", "y"), ("torch.bmm", "torch.Tensor.bmm"), expand=_checked(3, 3, "bmm"),
          reference=torch.bmm),
    OpDef("mv", "composite", ("x", "y"), ("torch.mv", "torch.Tensor.mv"), expand=_checked(2, 1, "mv"),
          reference=torch.mv),
    OpDef("linear", "composite", ("input", "weight", "bias"), ("torch.nn.functional.linear",),
          defaults={"bias": None}, expand=_linear, reference=F.linear),
    OpDef("addmm", "composite", ("input", "mat1", "mat2", "beta", "alpha"), ("torch.addmm", "torch.Tensor.addmm"),
          defaults={"beta": 1, "alpha": 1}, expand=_addmm, reference=torch.addmm),
]


def _as3(expr: str, rank: int, role: str) -> str:
    """A 3-D (batch, rows, cols) view of an operand or of the output."""
    if rank == 3:
        return expr
    if rank == 2:
        return f"{expr}.unsqueeze(0)"
    # vectors: the left operand is one row, the right one column, the output follows the one that was 2-D
    return {"a": f"{expr}.view(1, 1, -1)", "b": f"{expr}.view(1, -1, 1)", "out_m": f"{expr}.view(1, -1, 1)",
            "out_n": f"{expr}.view(1, 1, -1)"}[role]


def lower_matmul(group, ctx: LoweringContext) -> Kernel:
    env = ctx.launcher
    mm = group.anchor
    a, b = mm.inputs
    member_ids = {n.id for n in group.members}
    extra: list = []  # tensors the epilogue reads (the product's own operands included, e.g. `x @ w + x`)
    for n in group.members:
        if n is mm:
            continue
        for i in n.inputs:
            if i.id not in member_ids and i not in extra and not (i.rank == 0 and i.op in ("const", "scalar", "size")):
                extra.append(i)
    scalars = kernel_scalars(group)
    eptrs = [pointer_name(k + 2, t) for k, t in enumerate(extra)]
    outs = [f"Out{k}_ptr" for k in range(len(group.outputs))]
    params = ["A_ptr", "B_ptr", *eptrs, *(f"s{k}" for k in range(len(scalars))), *outs, "M", "N", "K",
              "A_sb", "A_sm", "A_sk", "B_sb", "B_sk", "B_sn",
              *(f"{p[:-4]}_s{a}" for p in eptrs + outs for a in "bmn"),
              "ALLOW_TF32: tl.constexpr", "UPCAST: tl.constexpr", "B_PADDED: tl.constexpr", "BLOCK_M: tl.constexpr",
              "BLOCK_N: tl.constexpr", "BLOCK_K: tl.constexpr", "GROUP_M: tl.constexpr"]
    w = Writer()
    w.jit_def(ctx.kernel_name, params)
    with w.indent():
        w.lines_([
            "num_m = tl.cdiv(M, BLOCK_M)",
            "num_n = tl.cdiv(N, BLOCK_N)",
            "# batch and tile share the grid's first axis: CUDA allows the second only 65,535 programs",
            "batch = (tl.program_id(0) // (num_m * num_n)).to(tl.int64)",
            "pid = tl.program_id(0) % (num_m * num_n)",
            "# grouped ordering: GROUP_M row tiles share their B columns while they sit in L2",
            "group = pid // (GROUP_M * num_n)",
            "first_m = group * GROUP_M",
            "group_m = tl.minimum(num_m - first_m, GROUP_M)",
            "pid_m = first_m + (pid % (GROUP_M * num_n)) % group_m",
            "pid_n = (pid % (GROUP_M * num_n)) // group_m",
            "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
            "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
            "rk = tl.arange(0, BLOCK_K)",
            "a_ptrs = A_ptr + batch * A_sb + rm[:, None] * A_sm + rk[None, :] * A_sk",
            "b_ptrs = B_ptr + batch * B_sb + rk[:, None] * B_sk + rn[None, :] * B_sn",
            "acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)",
            "for k in range(0, K, BLOCK_K):",
            "    a = tl.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] < K - k), other=0.0)",
            "    if B_PADDED:  # b's columns are zero-padded in memory: no mask along N, so its loads are 16-byte",
            "        b = tl.load(b_ptrs, mask=rk[:, None] < K - k, other=0.0)",
            "    else:",
            "        b = tl.load(b_ptrs, mask=(rk[:, None] < K - k) & (rn[None, :] < N), other=0.0)",
            "    if UPCAST:  # the interpreter's low-precision dot is wrong: compute in fp32 there",
            "        a = a.to(tl.float32)",
            "        b = b.to(tl.float32)",
            "    if ALLOW_TF32:",
            '        acc = tl.dot(a, b, acc, input_precision="tf32")',
            "    else:",
            '        acc = tl.dot(a, b, acc, input_precision="ieee")',
            "    a_ptrs += BLOCK_K * A_sk",
            "    b_ptrs += BLOCK_K * B_sk",
            "mask = (rm[:, None] < M) & (rn[None, :] < N)",
        ])
        names = {mm.id: "acc"}
        for s, k in zip(scalars, range(len(scalars)), strict=True):
            names[s.id] = f"s{k}"
        for k, (t, p) in enumerate(zip(extra, eptrs, strict=True)):
            addr = f"{p} + batch * {p[:-4]}_sb + rm[:, None] * {p[:-4]}_sm + rn[None, :] * {p[:-4]}_sn"
            w.line(f"e{k} = tl.load({addr}, mask=mask, other=0)" + (".to(tl.float32)" if t.dtype.is_float else ""))
            names[t.id] = f"e{k}"
        emitter = ctx.emitter(names)
        w.lines_(emitter.lines([n for n in group.members if n is not mm]))
        for o, p in zip(group.outputs, outs, strict=True):
            addr = f"{p} + batch * {p[:-4]}_sb + rm[:, None] * {p[:-4]}_sm + rn[None, :] * {p[:-4]}_sn"
            w.line(f"tl.store({addr}, {names[o.id]}.to({p}.dtype.element_ty), mask=mask)")

    # launcher
    ea, eb = env.tensor(a), env.tensor(b)
    lines = [f"a3 = {_as3(ea, a.rank, 'a')}", f"b3 = {_as3(eb, b.rank, 'b')}"]
    lines.append("batch = _p2t_size(a3.shape[0], b3.shape[0])")
    lines.append("m, k, n = a3.shape[1], a3.shape[2], b3.shape[2]")
    out_role = "out_m" if b.rank == 1 else "out_n"
    out_shape = {3: "(batch, m, n)", 2: "(m, n)"}.get(mm.rank, "(m,)" if b.rank == 1 else "(n,)")
    args3 = []
    for o in group.outputs:
        var = env.fresh("out")
        lines.append(env.alloc(o, out_shape, env.dtype(o), f"{ea}.device", var))
        args3.append(_as3(var, mm.rank, out_role))
    for t in extra:
        expanded = f"{env.tensor(t)}.expand({out_shape})"
        args3.append(_as3(expanded, mm.rank, out_role))
    lines.append("if batch * m * n > 0:")
    # On a GPU with autotuning on, the first call for a shape times each candidate tile configuration
    tune = "a3.is_cuda" if ctx.autotune else "False"
    # A batch of 1 is not expanded: _p2t_mm_strides gives it batch stride 0 (an expand costs ~5 us of host time).
    # Below 2**31 multiply-adds a product's kernel takes about as long as the ~10 us of host time that
    # _p2t_mm_padded_operands' check adds to every call (1024^3 fp16: 7.6 us on the H200), so it is skipped there:
    # unaligned operands of such products run unvectorized (3001x1999x2777 bf16: 0.270 ms as given against
    # 0.064 ms of kernel on the copies) rather than paying two copies and their launches.
    body = [
        "b_padded = False",
        "if a3.is_cuda and batch * m * n * k >= 2**31:  # large products: worth copying unvectorizable operands",
        "    a3, b3, k, b_padded = _p2t_mm_padded_operands(a3, b3)",
        f"configs, key = _p2t_mm_configs(m, n, k, batch, a3.dtype, a3.element_size(), {tune})",
        "for block_m, block_n, block_k, warps, stages in configs:",
        "    grid = (_p2t_cdiv(m, block_m) * _p2t_cdiv(n, block_n) * batch,)",
        "    for rep in range(1 if len(configs) == 1 else 3):",
        "        start = _p2t_tic(key, rep > 0)",
    ]
    views = []
    for k, expr in enumerate(args3):
        body.insert(k, f"v{k} = {expr}")
        views.append(f"v{k}")
    n_out = len(group.outputs)
    estrides = [f"*_p2t_mm_strides(v{k})" for k in range(n_out, len(args3))]
    ostrides = [f"*_p2t_mm_strides(v{k})" for k in range(n_out)]
    call = ["a3", "b3", *views[n_out:], *(env.scalar(s) for s in scalars), *views[:n_out], "m", "n", "k",
            "*_p2t_mm_strides(a3)", "*_p2t_mm_strides(b3)", *estrides, *ostrides]
    body += [
        f"        {ctx.kernel_name}[grid](",
        f"            {', '.join(call)},",
        "            ALLOW_TF32=torch.backends.cuda.matmul.allow_tf32, UPCAST=not a3.is_cuda, B_PADDED=b_padded,",
        "            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=8,",
        "            num_warps=warps, num_stages=stages,",
        "        )",
        "        _p2t_toc(key, (block_m, block_n, block_k, warps, stages), start, len(configs))",
    ]
    lines += ["    " + line for line in body]
    env.prelude.update({"_p2t_size", "_p2t_mm_strides", "_p2t_mm_padded_operands", "_p2t_mm_config",
                        "_p2t_mm_configs", "_p2t_tic", "_p2t_toc", "_P2T_TUNING"})
    return Kernel(ctx.kernel_name, w.text(), lines, tuple(sorted(ctx.helpers)))


@hookimpl
def p2t_register_ops(registry):
    for op in OPS:
        registry.add(op)


@hookimpl
def p2t_lower_group(group, ctx):
    if group.kind == "matmul":
        return lower_matmul(group, ctx)
    return None


@hookimpl
def p2t_validation_cases():
    return MATMUL_CASES




def _mm_case(name, body, params="x, w", **kw):
    return function_case(name, body, params, **kw)


MATMUL_CASES = [
    _mm_case("mm", "    return x @ w"),
    _mm_case("linear_relu", "    return torch.relu(x @ w + b)", "x, w, b", shapes=[{"x": (37, 45), "w": (45, 70),
                                                                                     "b": (70,)}]),
    _mm_case("transposed", "    return x.T @ w.t()", shapes=[{"x": (33, 17), "w": (40, 33)}]),
    _mm_case("bmm_scale", "    return torch.bmm(x, w) * 0.5"),
    _mm_case("batched_broadcast", "    return torch.matmul(x, w)", shapes=[{"x": (3, 19, 24), "w": (24, 10)}]),
    _mm_case("mv", "    return torch.mv(x, w)"),
    _mm_case("f_linear_gelu", "    return F.gelu(F.linear(x, w, b))", "x, w, b",
          shapes=[{"x": (20, 32), "w": (48, 32), "b": (48,)}]),
    _mm_case("residual", "    return x @ w + r * 2.0", "x, w, r"),
]


@hookimpl
def p2t_example_units(rng, count):
    """Example units for the data pipeline (built-in generators):
    matmuls with epilogues (bias, activation, scale, residual)."""
    from p2t_core.data.generators import generate_units

    return generate_units(rng, max(1, count // 2), ["matmul"])
