"""RoPE for training on CUDA: one Triton kernel rotates q and k straight out of the qkv projection and copies v
out beside them; the same kernel, angle negated, writes the backward's d(qkv) in one pass.

Why a kernel: inductor fuses the backward of `model.apply_rope` with the qkv split into one kernel that gathers the
rolled half of every head element by element for each of its three branches (scalar loads, none vectorized):
242 us a call at B 24 x T 1024 where its ~150 MB need ~40, 11% of a training step (`scripts/rope_probe.py`,
docs/BENCHMARKS.md). Here a program loads whole half-heads, so both directions run near copy speed.

    q, k, v = rope_qkv(qkv, cos, sin, n_head)   # qkv (B, T, 3C); cos, sin (T, hs/2) fp32 -> (B, T, nh, hs) each

Token t of every row takes angle row t of the tables (slice them at the first position). For unpadded training
(`train.unpad`), `rope_qkv_unpadded(qkv, keep, sources, cos, sin, n_head, T)` takes the real tokens' qkv (N, 3C) and
writes the padded (B, T, nh, hs) layout attention runs in, and its backward writes the real tokens' d(qkv) (N, 3C).
`model.apply_rope` stays the reference and the path for the CPU, decoding and packed pairs;
tests/model/test_rope_kernel.py checks that both agree in value and gradient, with this kernel under the Triton
interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate_heads(src, src_row_stride, src_rows, loaded, dst, dst_row_stride, dst_rows, stored, cos, sin,
                  N_HEAD: tl.constexpr, HALF: tl.constexpr):
    """(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) for the halves x1, x2 of each head of BLOCK_ROWS tokens; rows
    not `loaded` rotate zeros."""
    heads = tl.arange(0, N_HEAD)[None, :, None] * (2 * HALF) + tl.arange(0, HALF)[None, None, :]  # (1, nh, hs/2)
    first = src + src_rows[:, None, None] * src_row_stride + heads
    x1 = tl.load(first, mask=loaded[:, None, None], other=0.0).to(tl.float32)
    x2 = tl.load(first + HALF, mask=loaded[:, None, None], other=0.0).to(tl.float32)
    out = dst + dst_rows[:, None, None] * dst_row_stride + heads
    tl.store(out, (x1 * cos - x2 * sin).to(dst.dtype.element_ty), mask=stored[:, None, None])
    tl.store(out + HALF, (x2 * cos + x1 * sin).to(dst.dtype.element_ty), mask=stored[:, None, None])


@triton.jit
def _rope_qkv_kernel(Q_ptr, K_ptr, V_ptr, q_row_stride, k_row_stride, v_row_stride,
                     Q_out_ptr, K_out_ptr, V_out_ptr, out_row_stride, COS_ptr, SIN_ptr, SOURCE_ptr, T, n_rows,
                     SIGN: tl.constexpr, N_HEAD: tl.constexpr, HALF: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                     MAPPED: tl.constexpr, POSITION_OF_SOURCE: tl.constexpr):
    """Output row r reads input row r, or with MAPPED input row SOURCE[r] (none where it is negative: zeros out).
    A row's angle is that of its position in a padded (B, T) layout: the output row's, or with POSITION_OF_SOURCE
    the input row's (the unpadded backward, whose inputs are padded and outputs are not)."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)  # (R,) output rows
    live = rows < n_rows
    if MAPPED:
        sources = tl.load(SOURCE_ptr + rows, mask=live, other=-1)
        loaded = live & (sources >= 0)
        sources = tl.where(loaded, sources, 0)
    else:
        sources = rows
        loaded = live
    slots = sources if POSITION_OF_SOURCE else rows  # (R,) b * T + t
    angle = (slots % T)[:, None] * HALF + tl.arange(0, HALF)[None, :]  # (R, hs/2): one division a token
    cos = tl.load(COS_ptr + angle, mask=live[:, None], other=0.0)[:, None, :]  # (R, 1, hs/2)
    sin = SIGN * tl.load(SIN_ptr + angle, mask=live[:, None], other=0.0)[:, None, :]  # SIGN -1: the inverse
    _rotate_heads(Q_ptr, q_row_stride, sources, loaded, Q_out_ptr, out_row_stride, rows, live, cos, sin, N_HEAD,
                  HALF)
    _rotate_heads(K_ptr, k_row_stride, sources, loaded, K_out_ptr, out_row_stride, rows, live, cos, sin, N_HEAD,
                  HALF)
    cols = tl.arange(0, N_HEAD * 2 * HALF)[None, :]
    v = tl.load(V_ptr + sources[:, None] * v_row_stride + cols, mask=loaded[:, None], other=0.0)
    tl.store(V_out_ptr + rows[:, None] * out_row_stride + cols, v, mask=live[:, None])


def supports(n_head: int, head_dim: int) -> bool:
    """The kernel's blocks span all heads and half a head: tl.arange wants both a power of two."""
    return all(n > 0 and n & (n - 1) == 0 for n in (n_head, head_dim // 2))


def _row_stride(t: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, int]:
    """t (B, T, C), (N, C) or (B, T, nh, hs) whose tokens are rows of one stride and whose heads are packed; the
    stride."""
    packed = t.stride(-1) == 1 and (t.dim() != 4 or t.stride(2) == head_dim)
    if not packed or (t.dim() != 2 and t.shape[0] > 1 and t.stride(0) != t.shape[1] * t.stride(1)):
        t = t.contiguous()
    return t, t.stride(-2 if t.dim() != 4 else 1)


def _launch(srcs, dsts, out_row_stride: int, cos, sin, n_head: int, sign: int, n_rows: int, T: int,
            sources: torch.Tensor | None = None, position_of_source: bool = False) -> None:
    """n_rows output rows; row r reads input row r, or sources[r] (none where negative); angles of position T."""
    head_dim = cos.shape[-1] * 2
    (q, q_stride), (k, k_stride), (v, v_stride) = (_row_stride(s, head_dim) for s in srcs)
    n_in = q.numel() // head_dim // n_head
    assert max(n_in, n_rows) * max(q_stride, k_stride, v_stride, out_row_stride) < 2**31, "int32 offsets"
    block_rows = 8  # 8 tokens x 8 heads x 32 = 2k elements a half: a program's loads stay in registers
    grid = (triton.cdiv(n_rows, block_rows),)
    # SOURCE_ptr is read only when MAPPED: any pointer stands in for it otherwise
    _rope_qkv_kernel[grid](q, k, v, q_stride, k_stride, v_stride, *dsts, out_row_stride, cos.contiguous(),
                           sin.contiguous(), q if sources is None else sources, T, n_rows, SIGN=sign, N_HEAD=n_head,
                           HALF=head_dim // 2, BLOCK_ROWS=block_rows, MAPPED=sources is not None,
                           POSITION_OF_SOURCE=position_of_source, num_warps=4)


@torch.library.custom_op("p2t::rope_qkv", mutates_args=())
def rope_qkv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
             n_head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv (B, T, 3C) -> q, k rotated and v, each (B, T, nh, hs) contiguous."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (qkv.new_empty(B, T, n_head, C // n_head) for _ in range(3))
    _launch((qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]), (q, k, v), C, cos, sin, n_head, 1, B * T, T)
    return q, k, v


@rope_qkv.register_fake
def _(qkv, cos, sin, n_head):
    B, T, C3 = qkv.shape
    return tuple(qkv.new_empty(B, T, n_head, C3 // 3 // n_head) for _ in range(3))


@torch.library.custom_op("p2t::rope_qkv_backward", mutates_args=())
def rope_qkv_backward(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, cos: torch.Tensor,
                      sin: torch.Tensor) -> torch.Tensor:
    """dq, dk, dv (B, T, nh, hs) -> d(qkv) (B, T, 3C): the inverse rotation of dq and dk, dv copied."""
    B, T, nh, hs = dq.shape
    C = nh * hs
    dqkv = dq.new_empty(B, T, 3 * C)
    _launch((dq, dk, dv), (dqkv[..., :C], dqkv[..., C:2 * C], dqkv[..., 2 * C:]), 3 * C, cos, sin, nh, -1, B * T, T)
    return dqkv


@rope_qkv_backward.register_fake
def _(dq, dk, dv, cos, sin):
    B, T, nh, hs = dq.shape
    return dq.new_empty(B, T, 3 * nh * hs)


def _output_grads(ctx, dq, dk, dv) -> list[torch.Tensor]:
    """The gradients of q, k, v, zeros for an output the loss did not use (None)."""
    return [torch.zeros(ctx.out_shape, dtype=ctx.out_dtype, device=ctx.cos.device) if g is None else g
            for g in (dq, dk, dv)]


def _setup_context(ctx, inputs, output):
    _, ctx.cos, ctx.sin, _ = inputs
    ctx.out_shape, ctx.out_dtype = output[0].shape, output[0].dtype


def _backward(ctx, dq, dk, dv):
    return rope_qkv_backward(*_output_grads(ctx, dq, dk, dv), ctx.cos, ctx.sin), None, None, None


rope_qkv.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("p2t::rope_qkv_unpadded", mutates_args=())
def rope_qkv_unpadded(qkv: torch.Tensor, keep: torch.Tensor, sources: torch.Tensor, cos: torch.Tensor,
                      sin: torch.Tensor, n_head: int, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The real tokens' qkv (N, 3C) -> q, k rotated and v in the padded layout, each (B, T, nh, hs), zeros in the
    padding; keep (N,) the padded slot of each token, sources (B * T,) the token of each slot (-1: padding). One
    pass: the kernel reads each slot's token itself, where scattering qkv into a padded copy first costs two."""
    C = qkv.shape[1] // 3
    B = sources.shape[0] // T
    q, k, v = (qkv.new_empty(B, T, n_head, C // n_head) for _ in range(3))
    _launch((qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]), (q, k, v), C, cos, sin, n_head, 1, B * T, T, sources)
    return q, k, v


@rope_qkv_unpadded.register_fake
def _(qkv, keep, sources, cos, sin, n_head, T):
    B = sources.shape[0] // T
    return tuple(qkv.new_empty(B, T, n_head, qkv.shape[1] // 3 // n_head) for _ in range(3))


@torch.library.custom_op("p2t::rope_qkv_unpadded_backward", mutates_args=())
def rope_qkv_unpadded_backward(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, keep: torch.Tensor,
                               cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """dq, dk, dv (B, T, nh, hs) -> d(qkv) (N, 3C) of the real tokens at slots keep (N,): the inverse rotation."""
    B, T, nh, hs = dq.shape
    C = nh * hs
    dqkv = dq.new_empty(keep.shape[0], 3 * C)
    _launch((dq, dk, dv), (dqkv[:, :C], dqkv[:, C:2 * C], dqkv[:, 2 * C:]), 3 * C, cos, sin, nh, -1, keep.shape[0],
            T, keep, position_of_source=True)
    return dqkv


@rope_qkv_unpadded_backward.register_fake
def _(dq, dk, dv, keep, cos, sin):
    return dq.new_empty(keep.shape[0], 3 * dq.shape[2] * dq.shape[3])


def _setup_unpadded_context(ctx, inputs, output):
    _, ctx.keep, _, ctx.cos, ctx.sin, _, _ = inputs
    ctx.out_shape, ctx.out_dtype = output[0].shape, output[0].dtype


def _unpadded_backward(ctx, dq, dk, dv):
    dqkv = rope_qkv_unpadded_backward(*_output_grads(ctx, dq, dk, dv), ctx.keep, ctx.cos, ctx.sin)
    return dqkv, None, None, None, None, None, None


rope_qkv_unpadded.register_autograd(_unpadded_backward, setup_context=_setup_unpadded_context)
