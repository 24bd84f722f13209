"""The built-in benchmark suite, as data: one `BenchUnit` per (unit, shape, dtype).

Sizes fill an H100 (80 GB HBM3, 50 MB L2): memory-bound units move hundreds of megabytes per call, so the
L2 cannot hold them and the measured bandwidth is the HBM's. Every unit also carries `tiny_shapes` (a few
elements per dim) for the CPU mode (`p2t bench --tiny`), where the kernels run under the Triton interpreter.

`kind` picks the ceiling a unit is measured against: "memory" (bytes moved / copy bandwidth) or "matmul"
(FLOPs / cuBLAS throughput). Matrix-vector and tall-skinny products are memory-bound on an H100 (their
arithmetic intensity is far below the ridge point), so they count as "memory" units; their FLOP rate is still
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Families (the table's "family" column; the target checks select on them).
ELEMENTWISE = "elementwise"
REDUCTION = "reduction"
SOFTMAX = "softmax"
NORM = "normalization"
LOSS = "loss"
MATMUL = "matmul"


@dataclass(frozen=True)
class BenchUnit:
    name: str  # unique in the suite, e.g. "softmax_8192x8192_bf16"
    family: str
    source: str  # a Python file with the unit (and possibly nothing else)
    unit: str  # the function or Module class to translate
    shapes: dict[str, tuple[int, ...]]  # tensor parameter → shape (GPU sizes)
    dtype: str  # "float32" | "float16" | "bfloat16"
    kind: str  # "memory" | "matmul"
    tiny_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    note: str = ""
    # Target-check selectors: "fused" (fused elementwise / normalization: the ≥ 2× vs eager target),
    # "matmul4096" (the ≥ 0.95 of cuBLAS target), "fused_epilogue" (faster than eager).
    tags: tuple[str, ...] = ()

    def shape_text(self, tiny: bool = False) -> str:
        shapes = self.tiny_shapes if tiny else self.shapes
        return ", ".join("x".join(map(str, s)) or "()" for s in shapes.values())


# -- unit sources -----------------------------------------------------------------------------------------------

EW_CHAIN = '''
import torch


def ew_chain(x, y):
    """A chain of five elementwise ops over two inputs: eager launches five kernels, p2t one."""
    z = x * 2.0 + y
    return torch.relu(z) * torch.sigmoid(y) - 0.5 * x
'''

GELU_TANH = '''
import math

import torch


def gelu_tanh(x):
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
    return 0.5 * x * (1.0 + torch.tanh(inner))
'''

ROW_SUM = '''
import torch


def row_sum(x):
    return x.sum(dim=-1)
'''

COL_SUM = '''
import torch


def col_sum(x):
    return x.sum(dim=0)
'''

MEAN_SQ = '''
import torch


def mean_sq(x):
    return (x * x).mean(dim=-1)
'''

SOFTMAX_SRC = '''
import torch


def softmax(x):
    return torch.softmax(x, dim=-1)
'''

SCALED_SOFTMAX = '''
import torch


def scaled_masked_softmax(scores, mask, scale: float = 0.125):
    return torch.softmax(scores * scale + mask, dim=-1)
'''

RMSNORM = '''
import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(variance + self.eps) * self.weight
'''

LAYER_NORM = '''
import torch


def layer_norm(x, weight, bias, eps: float = 1e-5):
    """LayerNorm written out: a mean, then the variance of the centred rows; two reductions in one kernel."""
    mean = x.mean(-1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdim=True)
    return centred * torch.rsqrt(var + eps) * weight + bias
'''

MSE = '''
import torch.nn.functional as F


def mse(pred, target):
    return F.mse_loss(pred, target)
'''

SMOOTH_L1 = '''
import torch.nn.functional as F


def smooth_l1(pred, target):
    return F.smooth_l1_loss(pred, target, beta=0.5)
'''

MATMUL_SRC = '''
import torch


def matmul(a, b):
    return a @ b
'''

LINEAR_RELU = '''
import torch


def linear_relu(x, weight, bias):
    return torch.relu(x @ weight + bias)
'''

BMM = '''
import torch


def bmm(a, b):
    return torch.bmm(a, b)
'''

MATVEC = '''
import torch


def matvec(a, v):
    return a @ v
'''

E26 = 2**26  # 64 Mi elements: 256 MB in fp32, 128 MB in bf16


def _suite() -> list[BenchUnit]:
    units: list[BenchUnit] = []

    def add(name, family, source, unit, shapes, dtype, kind, tiny, note="", tags=()):
        units.append(BenchUnit(name, family, source, unit, shapes, dtype, kind, tiny, note, tuple(tags)))

    short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
    for dt in ("float32", "bfloat16"):
        add(f"ew_chain_{short[dt]}", ELEMENTWISE, EW_CHAIN, "ew_chain", {"x": (E26,), "y": (E26,)}, dt, "memory",
            {"x": (37,), "y": (37,)}, tags=("fused",))
    add("gelu_tanh_fp32", ELEMENTWISE, GELU_TANH, "gelu_tanh", {"x": (E26,)}, "float32", "memory", {"x": (29,)},
        tags=("fused",))
    add("row_sum_8192x8192_fp32", REDUCTION, ROW_SUM, "row_sum", {"x": (8192, 8192)}, "float32", "memory",
        {"x": (5, 7)})
    add("col_sum_8192x8192_fp32", REDUCTION, COL_SUM, "col_sum", {"x": (8192, 8192)}, "float32", "memory",
        {"x": (5, 7)})
    add("mean_sq_8192x8192_fp32", REDUCTION, MEAN_SQ, "mean_sq", {"x": (8192, 8192)}, "float32", "memory",
        {"x": (4, 9)})
    for rows, cols in ((8192, 8192), (65536, 1024)):
        for dt in ("float32", "bfloat16"):
            add(f"softmax_{rows}x{cols}_{short[dt]}", SOFTMAX, SOFTMAX_SRC, "softmax", {"x": (rows, cols)}, dt,
                "memory", {"x": (3, 11)})
    # short rows: 64 of them (256 bytes each) a program since the sixteenth session, one a program before
    add("softmax_1048576x64_fp32", SOFTMAX, SOFTMAX_SRC, "softmax", {"x": (1048576, 64)}, "float32", "memory",
        {"x": (37, 6)})
    add("scaled_masked_softmax_8192x8192_bf16", SOFTMAX, SCALED_SOFTMAX, "scaled_masked_softmax",
        {"scores": (8192, 8192), "mask": (8192, 8192)}, "bfloat16", "memory", {"scores": (3, 10), "mask": (3, 10)},
        tags=("fused",))
    for dt in ("bfloat16", "float32"):
        add(f"rmsnorm_16384x4096_{short[dt]}", NORM, RMSNORM, "RMSNorm", {"x": (16384, 4096)}, dt, "memory",
            {"x": (4, 16)}, note="Module; weight in the unit's dtype", tags=("fused",))
    add("layer_norm_16384x4096_bf16", NORM, LAYER_NORM, "layer_norm",
        {"x": (16384, 4096), "weight": (4096,), "bias": (4096,)}, "bfloat16", "memory",
        {"x": (4, 16), "weight": (16,), "bias": (16,)}, note="written out: mean, then variance", tags=("fused",))
    add("layer_norm_262144x256_bf16", NORM, LAYER_NORM, "layer_norm",
        {"x": (262144, 256), "weight": (256,), "bias": (256,)}, "bfloat16", "memory",
        {"x": (19, 12), "weight": (12,), "bias": (12,)}, note="short rows: 512 bytes", tags=("fused",))
    add("mse_loss_fp32", LOSS, MSE, "mse", {"pred": (E26,), "target": (E26,)}, "float32", "memory",
        {"pred": (41,), "target": (41,)})
    add("smooth_l1_loss_bf16", LOSS, SMOOTH_L1, "smooth_l1", {"pred": (E26,), "target": (E26,)}, "bfloat16",
        "memory", {"pred": (41,), "target": (41,)})
    for n in (1024, 4096):
        for dt in ("float16", "bfloat16"):
            add(f"matmul_{n}_{short[dt]}", MATMUL, MATMUL_SRC, "matmul", {"a": (n, n), "b": (n, n)}, dt, "matmul",
                {"a": (5, 6), "b": (6, 7)}, tags=("matmul4096",) if n == 4096 else ())
    add("linear_relu_4096_fp16", MATMUL, LINEAR_RELU, "linear_relu",
        {"x": (4096, 4096), "weight": (4096, 4096), "bias": (4096,)}, "float16", "matmul",
        {"x": (5, 6), "weight": (6, 7), "bias": (7,)}, note="matmul + bias + ReLU epilogue",
        tags=("fused_epilogue",))
    add("bmm_32x512_fp16", MATMUL, BMM, "bmm", {"a": (32, 512, 512), "b": (32, 512, 512)}, "float16", "matmul",
        {"a": (2, 5, 6), "b": (2, 6, 7)})
    add("matvec_8192_fp16", MATMUL, MATVEC, "matvec", {"a": (8192, 8192), "v": (8192,)}, "float16", "memory",
        {"a": (5, 6), "v": (6,)}, note="memory-bound: measured against the copy bandwidth")
    add("tall_skinny_65536x1024x64_fp16", MATMUL, MATMUL_SRC, "matmul", {"a": (65536, 1024), "b": (1024, 64)},
        "float16", "memory", {"a": (9, 6), "b": (6, 3)}, note="memory-bound: measured against the copy bandwidth")
    add("matmul_irregular_3001x1999x2777_bf16", MATMUL, MATMUL_SRC, "matmul", {"a": (3001, 1999), "b": (1999, 2777)},
        "bfloat16", "matmul", {"a": (7, 5), "b": (5, 3)})
    return units


SUITES: dict[str, list[BenchUnit]] = {"builtin": _suite()}


def get_suite(name: str = "builtin") -> list[BenchUnit]:
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(SUITES)}") from None


def select(units: list[BenchUnit], only: str | None) -> list[BenchUnit]:
    """Units whose name contains any of the comma-separated substrings in `only` (all when None)."""
    if not only:
        return list(units)
    parts = [p.strip() for p in only.split(",") if p.strip()]
    return [u for u in units if any(p in u.name for p in parts)]
