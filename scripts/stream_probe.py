#!/usr/bin/env python3
"""Kernel shapes the compiler does not emit, timed against its own, for two issue-3 units that stay under 0.90 of
the copy bandwidth: the tall-skinny product (65536x1024 @ 1024x64 fp16) and the column sum of 8192x8192 fp32.

    python3 scripts/stream_probe.py --out DIR            # on the GPU machine, after `source scripts/gpu_env.sh`
    TRITON_INTERPRET=1 python3 scripts/stream_probe.py --tiny --out DIR     # CPU: the code paths only

Tall-skinny: A streamed through TMA (host tensor descriptors, `triton.tools.tensor_descriptor`), one row tile per
program or persistent programs (one per SM slot, looping over row tiles); against the pointer-based kernel of the
same tile (what the compiler's template does) and cuBLAS (`torch.mm`).
Column sum: wide programs (a run of BLOCK_I columns, 2-16 KB of each row, read by one program over a chunk of
rows; per-chunk partial sums, then a second kernel adds the chunks), against `torch.sum(x, 0)` and torch.compile.
The compiler's own kernels are timed by `p2t bench --only col_sum,tall_skinny` in the same call
(scripts/gpu_bench.sh). Every variant is checked against torch; timed as `p2t bench` times (its harness's `time_fn`:
do_bench medians; torch.randn inputs), beside its copy ceilings (`time_copy`: 2 GiB, and a copy moving as many bytes as
the unit reads and writes) in the same process.
Writes DIR/stream_probe.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from pathlib import Path

import torch
import triton
import triton.language as tl

from p2t_core.bench.harness import time_copy, time_fn


@triton.jit
def _skinny_ptr_kernel(A_ptr, B_ptr, C_ptr, M, K, A_row_stride, B_row_stride, C_row_stride,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k in tl.range(0, K, BLOCK_K, num_stages=STAGES):
        a = tl.load(A_ptr + rows[:, None] * A_row_stride + (k + ks)[None, :], eviction_policy="evict_first")
        b = tl.load(B_ptr + (k + ks)[:, None] * B_row_stride + cols[None, :])
        acc = tl.dot(a, b, acc)
    tl.store(C_ptr + rows[:, None] * C_row_stride + cols[None, :], acc.to(C_ptr.dtype.element_ty),
             mask=(rows < M)[:, None])


@triton.jit
def _skinny_tma_kernel(a_desc, b_desc, c_desc, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    off_m = tl.program_id(0) * BLOCK_M
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k in tl.range(0, K, BLOCK_K, num_stages=STAGES):
        acc = tl.dot(a_desc.load([off_m, k]), b_desc.load([k, 0]), acc)
    c_desc.store([off_m, 0], acc.to(c_desc.dtype))


@triton.jit
def _skinny_tma_persistent_kernel(a_desc, b_desc, c_desc, M, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                  BLOCK_K: tl.constexpr, STAGES: tl.constexpr, PROGRAMS: tl.constexpr):
    k_steps = tl.cdiv(K, BLOCK_K)
    tiles = tl.cdiv(M, BLOCK_M)
    mine = tl.cdiv(tiles - tl.program_id(0), PROGRAMS)
    # One flat loop over (tile, k step), so the pipeline keeps loading across tile boundaries.
    tile = tl.program_id(0)
    ki = 0
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for _ in tl.range(0, mine * k_steps, num_stages=STAGES):
        acc = tl.dot(a_desc.load([tile * BLOCK_M, ki * BLOCK_K]), b_desc.load([ki * BLOCK_K, 0]), acc)
        ki += 1
        if ki == k_steps:
            c_desc.store([tile * BLOCK_M, 0], acc.to(c_desc.dtype))
            acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
            ki = 0
            tile += PROGRAMS


@triton.jit
def _col_partial_kernel(X_ptr, P_ptr, N_rows, N_cols, X_row_stride, chunk,
                        BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    cols = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    first = tl.program_id(1) * chunk
    acc = tl.zeros((BLOCK_R, BLOCK_I), tl.float32)
    for r in range(first, first + chunk, BLOCK_R):
        rows = r + tl.arange(0, BLOCK_R)
        ok = (rows < N_rows)[:, None] & (cols < N_cols)[None, :]
        acc += tl.load(X_ptr + rows[:, None] * X_row_stride + cols[None, :], mask=ok, other=0.0,
                       eviction_policy="evict_first").to(tl.float32)
    tl.store(P_ptr + tl.program_id(1) * N_cols + cols, tl.sum(acc, 0), mask=cols < N_cols)


@triton.jit
def _col_combine_kernel(P_ptr, Y_ptr, n_chunks, N_cols, BLOCK_C: tl.constexpr, BLOCK_I: tl.constexpr):
    cols = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    chunks = tl.arange(0, BLOCK_C)
    ok = (chunks < n_chunks)[:, None] & (cols < N_cols)[None, :]
    parts = tl.load(P_ptr + chunks[:, None] * N_cols + cols[None, :], mask=ok, other=0.0)
    tl.store(Y_ptr + cols, tl.sum(parts, 0).to(Y_ptr.dtype.element_ty), mask=cols < N_cols)


def skinny_ptr(a, b, c, bm, bk, stages, warps):
    m, k = a.shape
    _skinny_ptr_kernel[(triton.cdiv(m, bm),)](a, b, c, m, k, a.stride(0), b.stride(0), c.stride(0), BLOCK_M=bm,
                                              BLOCK_N=b.shape[1], BLOCK_K=bk, STAGES=stages, num_warps=warps)


def _descriptors(a, b, c, bm, bk):
    from triton.tools.tensor_descriptor import TensorDescriptor
    n = b.shape[1]
    return (TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(b, [bk, n]),
            TensorDescriptor.from_tensor(c, [bm, n]))


def skinny_tma(a, b, c, bm, bk, stages, warps):
    _skinny_tma_kernel[(triton.cdiv(a.shape[0], bm),)](*_descriptors(a, b, c, bm, bk), a.shape[1], BLOCK_M=bm,
                                                       BLOCK_N=b.shape[1], BLOCK_K=bk, STAGES=stages,
                                                       num_warps=warps)


def skinny_tma_persistent(a, b, c, bm, bk, stages, warps, per_sm):
    programs = min(triton.cdiv(a.shape[0], bm), per_sm * _sms(a.device))
    _skinny_tma_persistent_kernel[(programs,)](*_descriptors(a, b, c, bm, bk), a.shape[0], a.shape[1], BLOCK_M=bm,
                                               BLOCK_N=b.shape[1], BLOCK_K=bk, STAGES=stages, PROGRAMS=programs,
                                               num_warps=warps)


def col_sum_wide(x, y, block_i, block_r, n_chunks, warps):
    n_rows, n_cols = x.shape
    chunk = triton.cdiv(triton.cdiv(n_rows, n_chunks), block_r) * block_r
    n_chunks = triton.cdiv(n_rows, chunk)
    partial = torch.empty(n_chunks, n_cols, device=x.device, dtype=torch.float32)
    _col_partial_kernel[(triton.cdiv(n_cols, block_i), n_chunks)](x, partial, n_rows, n_cols, x.stride(0), chunk,
                                                                   BLOCK_R=block_r, BLOCK_I=block_i,
                                                                   num_warps=warps)
    _col_combine_kernel[(triton.cdiv(n_cols, 128),)](partial, y, n_chunks, n_cols,
                                                     BLOCK_C=triton.next_power_of_2(n_chunks), BLOCK_I=128)


def _sms(device) -> int:
    if device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(device).multi_processor_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny", action="store_true", help="small shapes, CPU interpreter: code paths only")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else "cuda")
    torch.manual_seed(0)
    rows: list[dict] = []
    big_bytes = 2 * 2**30 if not args.tiny else 2**20
    ceiling = big_bytes / time_copy(big_bytes, device.type, args.tiny) / 1e6  # GB/s of a copy moving 2 GiB in all
    print(f"copy 2 GiB moved: {ceiling:.0f} GB/s", flush=True)

    def record(unit, variant, ms, n_bytes, ok):
        gbs = n_bytes / ms / 1e6
        rows.append({"unit": unit, "variant": variant, "ms": ms, "GB/s": gbs, "of_copy": gbs / ceiling, "ok": ok})
        print(f"{unit:12s} {variant:44s} {ms:8.4f} ms {gbs:7.0f} GB/s  of 2GiB copy {gbs / ceiling:.3f}"
              f"  {'ok' if ok else 'WRONG'}", flush=True)

    def timed(fn):
        return time_fn(fn, device.type, args.tiny)

    # Tall-skinny product.
    m, k, n = (65536, 1024, 64) if not args.tiny else (256, 64, 16)
    dt = torch.float16 if not args.tiny else torch.float32
    a = torch.randn(m, k, device=device, dtype=dt)
    b = torch.randn(k, n, device=device, dtype=dt)
    ref = (a.float() @ b.float())
    moved = (a.numel() + b.numel() + m * n) * a.element_size()
    record("tall_skinny", f"copy of its own size ({moved / 1e6:.0f} MB)", time_copy(moved, device.type, args.tiny),
           moved, True)
    c = torch.empty(m, n, device=device, dtype=dt)

    def check(out, ref, tol):
        return bool(torch.allclose(out.float(), ref, atol=tol, rtol=tol))

    record("tall_skinny", "cuBLAS (torch.mm)", timed(lambda: torch.mm(a, b, out=c)), moved, check(c, ref, 0.05))
    tiles = [(128, 64, 4, 4), (128, 128, 3, 4), (64, 128, 4, 4), (256, 64, 3, 8), (128, 64, 6, 4), (64, 64, 8, 4)]
    if args.tiny:
        tiles = [(32, 32, 1, 4)]
    for bm, bk, stages, warps in tiles:
        tag = f"{bm}x{n}x{bk} s{stages} w{warps}"
        tile = (a, b, c, bm, bk, stages, warps)
        variants = [("pointers", partial(skinny_ptr, *tile))]
        if not args.tiny:  # TMA descriptors need a GPU
            variants += [("TMA", partial(skinny_tma, *tile))]
            variants += [(f"TMA persistent x{p}", partial(skinny_tma_persistent, *tile, p)) for p in (1, 2)]
        for name, fn in variants:
            c.zero_()
            try:
                fn()
                ok = check(c, ref, 0.05)
                ms = timed(fn)
            except Exception as exc:  # a tile that does not fit shared memory, say: reported, not fatal
                print(f"tall_skinny  {name} {tag}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                continue
            record("tall_skinny", f"{name} {tag}", ms, moved, ok)

    # Column sum.
    side = 8192 if not args.tiny else 96
    x = torch.randn(side, side, device=device)
    y = torch.empty(side, device=device)
    ref = x.double().sum(0).float()
    moved = x.numel() * 4 + side * 4
    record("col_sum", f"copy of its own size ({moved / 1e6:.0f} MB)", time_copy(moved, device.type, args.tiny),
           moved, True)
    record("col_sum", "torch.sum(x, 0)", timed(lambda: torch.sum(x, 0, out=y)), moved, check(y, ref, 1e-3))
    if not args.tiny:
        compiled = torch.compile(lambda t: t.sum(0))
        record("col_sum", "torch.compile", timed(lambda: compiled(x)), moved, check(compiled(x), ref, 1e-3))
    shapes = [(1024, 4, 66, 8), (1024, 8, 66, 8), (2048, 2, 66, 8), (2048, 4, 33, 8), (4096, 2, 33, 16),
              (1024, 4, 132, 8), (512, 8, 132, 4), (2048, 4, 66, 16)]
    if args.tiny:
        shapes = [(32, 4, 5, 4)]
    for block_i, block_r, chunks, warps in shapes:
        fn = partial(col_sum_wide, x, y, block_i, block_r, chunks, warps)
        y.zero_()
        fn()
        record("col_sum", f"wide {block_i} cols x {block_r} rows, {chunks} chunks, w{warps}", timed(fn), moved,
               check(y, ref, 1e-3))

    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "stream_probe.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (interpreter)",
         "copy_2GiB_GBps": ceiling, "interpret": os.environ.get("TRITON_INTERPRET") == "1", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
