"""Time translating one typical unit in-process (no verification): median of 20 after a warm-up.

    python tests/compiler/measure_translate.py
"""

from __future__ import annotations

import statistics
import time

from p2t_core.engine import compile_units
from p2t_core.plugins import default_plugins

SOURCE = '''import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def bias_gelu(x, b):
    return torch.nn.functional.gelu(x + b)
'''


def main(repeats: int = 20) -> float:
    plugins = default_plugins()
    for _ in range(3):  # warm-up: imports, plugin registry, libcst caches
        compile_units(SOURCE, "typical.py", unit="RMSNorm", plugins=plugins)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = compile_units(SOURCE, "typical.py", unit="RMSNorm", plugins=plugins)
        times.append(time.perf_counter() - start)
        assert result.module_source and not result.errors
    ms = statistics.median(times) * 1e3
    print(f"translate RMSNorm (1 unit, {result.units[0].n_kernels} kernel, no verification): median {ms:.1f} ms "
          f"over {repeats} runs (min {min(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms)")
    return ms


if __name__ == "__main__":
    main()
