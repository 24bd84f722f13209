#!/usr/bin/env python3
"""Python cost of one cached launch through the prelude's `_p2t_fast_launch` (issue 3), on any machine.

    python3 scripts/fast_launch_cost.py [--launches 20000] [--rounds 7]

A matvec-shaped launch (3 tensors and 2 dummies, 15 ints, 5 constexprs, num_warps) through a real `JITFunction`
whose compiled kernel is a stand-in with a no-op launcher, and a driver that names device 0: what is timed is the
helper's own Python (the key over the arguments, the cache lookup, the call), not Triton's C launcher or the GPU.
Prints the best of the rounds in microseconds per launch.
"""

from __future__ import annotations

import argparse
import time

import torch
import triton
import triton.language as tl
from triton.runtime import driver

from p2t_core.codegen.prelude import PRELUDE


def _matvec_like(A, V, Out, n_outer, n_r, n_inner, a_so, a_sr, a_si, v_so, v_sr, v_si, o_so, o_sr, o_si, Part, Sem,
                 n_split, chunk, SPLIT: tl.constexpr, WIDE: tl.constexpr, SINGLE: tl.constexpr, BLOCK_R: tl.constexpr,
                 BLOCK_I: tl.constexpr):
    pass


class _Compiled:
    function, packed_metadata = 0, ()

    def run(self, *args):
        pass


class _Driver:
    def get_current_device(self):
        return 0

    def get_current_stream(self, device):
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    driver._active = _Driver()
    triton.runtime.JITFunction.run = lambda self, *a, grid, warmup, **meta: _Compiled()
    namespace = {"torch": torch, "triton": triton}
    exec(PRELUDE["_p2t_fast_launch"], namespace)
    kernel = namespace["_p2t_fast_launch"](triton.runtime.JITFunction(_matvec_like))
    a, v, out = torch.randn(64, 64), torch.randn(64), torch.empty(64)
    call = (a, v, out, 8192, 8192, 1, 8192, 1, 0, 0, 1, 0, 1, 0, 0, a, a, 1, 8192)
    meta = dict(SPLIT=False, WIDE=False, SINGLE=True, BLOCK_R=8192, BLOCK_I=1, num_warps=8)
    kernel[(8192, 1)](*call, **meta)  # the miss that fills the cache
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.launches):
            kernel[(8192, 1)](*call, **meta)
        best = min(best, (time.perf_counter() - start) / args.launches * 1e6)
    print(f"cached launch, Python only: {best:.2f} us (best of {args.rounds} x {args.launches})")


if __name__ == "__main__":
    main()
