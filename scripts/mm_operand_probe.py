#!/usr/bin/env python3
"""Where the irregular bench product's time goes (issue 3): its operand copies alone, then the translated module
with its old operand helper against the new one, on one GPU.

    python3 scripts/mm_operand_probe.py [--rounds 3]      # on the GPU machine, after `source scripts/gpu_env.sh`

1. copies: do_bench of the copies the launchers make of a 3001x1999 @ 1999x2777 bf16 product's operands (a
   row-pitch copy of a with K padded; b copied K-major, which transposes it; b row-pitch with N padded);
2. the unit compiled by p2t, its module's `_p2t_mm_padded_operands` swapped between the new helper and the old
   `_p2t_mm_operands` (K-major copies of both), the autotuning table cleared for each: do_bench of one call and of
   the operand helper alone, the tile the autotuner kept, and torch.profiler's kernels (name, launches a call,
   microseconds a call); `--rounds` times, alternating.
The docs' figures (docs/BENCHMARKS.md, twenty-second session) came from this code, run as two scripts.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from triton.testing import do_bench

from p2t_core.bench.harness import load_module
from p2t_core.engine import compile_units

M, K, N = 3001, 1999, 2777


def padded_copy(t: torch.Tensor, cols: int) -> torch.Tensor:
    """t (rows, c) copied into rows of `cols` elements, zeros after: how `_p2t_k_major` copies."""
    buf = torch.empty((t.shape[0], cols), dtype=t.dtype, device=t.device)
    buf[:, t.shape[1]:].zero_()
    buf[:, :t.shape[1]].copy_(t)
    return buf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    for name, fn in [("a row-pitch copy (k -> 2000)", lambda: padded_copy(a, 2000)),
                     ("b transposed K-major copy", lambda: padded_copy(b.t(), 2000)),
                     ("b row-pitch copy (n -> 2784)", lambda: padded_copy(b, 2784)),
                     ("torch.mm", lambda: a @ b)]:
        print(f"{name}: {do_bench(fn, warmup=25, rep=200):.4f} ms", flush=True)

    shapes = {"a": (M, K), "b": (K, N)}
    unit = compile_units("import torch\n\ndef f(a, b):\n    return a @ b\n", "u.py", unit="f", shapes=shapes).units[0]
    module = load_module(unit.module_source, "irregular_mm", tempfile.mkdtemp())
    helpers = {"new (b keeps its layout, N padded)": module._p2t_mm_padded_operands,
               "old (K-major copies)": lambda x, y: module._p2t_mm_operands(x, y) + (False,)}
    for round_ in range(args.rounds):
        for name, helper in helpers.items():
            module._p2t_mm_padded_operands = helper
            module._P2T_TUNING.clear()
            for _ in range(5):  # the autotuner's timed calls
                module.f(a, b)
            torch.cuda.synchronize()
            tuned = {key: v.get("best") for key, v in module._P2T_TUNING.items()}
            call = do_bench(lambda: module.f(a, b), warmup=25, rep=200)
            operands = do_bench(lambda helper=helper: helper(a.unsqueeze(0), b.unsqueeze(0)), warmup=25, rep=200)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    module.f(a, b)
                torch.cuda.synchronize()
            kernels = [(e.key[:40], e.count // 10, round(e.device_time_total / 10, 1))
                       for e in prof.key_averages() if e.device_time_total > 0]
            print(f"round {round_} {name}: call {call:.4f} ms, operands alone {operands:.4f} ms, tuned {tuned}, "
                  f"kernels (name, launches, us a call) {kernels}", flush=True)
    print(f"eager: {do_bench(lambda: a @ b, warmup=25, rep=200):.4f} ms")


if __name__ == "__main__":
    main()
