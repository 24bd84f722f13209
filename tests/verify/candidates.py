"""Hand-written references and candidate modules (in the generated-module contract) for the verifier tests.

Each candidate is a template: `bug(NAME, **subs)` returns the correct source with one planted bug.
"""

from __future__ import annotations

from p2t_core.signature import InitArg, ModuleTensor, ScalarParam, Signature, TensorParam

# ---------------------------------------------------------------------------------------------------------
# Elementwise: y = x * sigmoid(x) + alpha * y
ELEMENTWISE_REF = '''
import torch


def silu_axpy(x, y, alpha: float = 0.5):
    return x * torch.sigmoid(x) + alpha * y
'''

ELEMENTWISE_SIG = Signature(
    unit="silu_axpy", kind="function",
    params=(TensorParam("x", ("M", "N")), TensorParam("y", ("M", "N")), ScalarParam("alpha", "float", 0.5)),
)

ELEMENTWISE_CAND = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _silu_axpy_0_kernel(X, Y, OUT, n_elements, N, sxm, sxn, sym, syn, alpha, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    row = offs // N
    col = offs % N
    x = tl.load(X + row * sxm + col * sxn, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(Y + row * sym + col * syn, mask=mask, other=0.0).to(tl.float32)
    out = x * (1.0 / (1.0 + tl.exp(-x))) + alpha * y
    tl.store(OUT + offs, out.to(OUT.dtype.element_ty), mask=mask)  #STORE


def silu_axpy(x, y, alpha: float = 0.5):
    #PRELUDE
    M, N = x.shape
    out = torch.empty((M, N), dtype=x.dtype, device=x.device)  #ALLOC
    n = M * N
    if n == 0:
        return out
    BLOCK = 256
    grid = (triton.cdiv(n, BLOCK),)
    _silu_axpy_0_kernel[grid](x, y, out, n, N, x.stride(0), x.stride(1), y.stride(0), y.stride(1), alpha,
                              BLOCK=BLOCK)
    return out  #RETURN
'''

# ---------------------------------------------------------------------------------------------------------
# Row-sum reduction over the last dim.
ROWSUM_REF = '''
import torch


def rowsum(x):
    return x.sum(-1)
'''

ROWSUM_SIG = Signature(unit="rowsum", kind="function", params=(TensorParam("x", ("M", "N")),))

ROWSUM_CAND = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _rowsum_0_kernel(X, OUT, N, sxm, sxn, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(X + row * sxm + cols * sxn, mask=cols < N, other=0.0)
        acc += x.to(tl.float32)
    tl.store(OUT + row, tl.sum(acc, axis=0).to(OUT.dtype.element_ty))


def rowsum(x):
    M, N = x.shape
    out = torch.empty((M,), dtype=x.dtype, device=x.device)
    if M == 0:
        return out
    _rowsum_0_kernel[(M,)](x, out, N, x.stride(0), x.stride(1), BLOCK=256)
    return out
'''

# ---------------------------------------------------------------------------------------------------------
# A Module: RMSNorm with eps and a weight Parameter.
RMSNORM_REF = '''
import torch


class RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight
'''

RMSNORM_SIG = Signature(
    unit="RMSNorm", kind="module", params=(TensorParam("x", ("M", "D")),),
    init_args=(InitArg("dim", "int", size_var="D"), InitArg("eps", "float", 1e-6)),
    module_tensors=(ModuleTensor("weight", ("D",)),),
)

RMSNORM_CAND = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _RMSNorm_0_kernel(X, W, OUT, D, sxm, sxd, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < D
    x = tl.load(X + row * sxm + cols * sxd, mask=mask, other=0.0).to(tl.float32)
    var = tl.sum(x * x, axis=0) / D
    y = x * (1.0 / tl.sqrt(var + eps))
    w = tl.load(W + cols, mask=mask, other=0.0)
    y = y.to(OUT.dtype.element_ty).to(tl.float32) * w.to(tl.float32)
    tl.store(OUT + row * D + cols, y.to(OUT.dtype.element_ty), mask=mask)


class RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        M, D = x.shape
        out = torch.empty((M, D), dtype=torch.promote_types(x.dtype, self.weight.dtype), device=x.device)
        if M == 0 or D == 0:
            return out
        w = self.weight if self.weight.stride(0) == 1 else self.weight.contiguous()
        BLOCK = triton.next_power_of_2(D)
        _RMSNorm_0_kernel[(M,)](x, w, out, D, x.stride(0), x.stride(1), self.eps, BLOCK=BLOCK)
        return out
'''


def bug(source: str, **subs: str) -> str:
    """Replace the line ending in `#KEY` (or holding `KEY` literally when no marker matches)."""
    lines = source.splitlines()
    for key, new in subs.items():
        hits = [i for i, line in enumerate(lines) if line.rstrip().endswith("#" + key)]
        assert hits, key
        for i in hits:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = "\n".join(indent + part for part in new.splitlines())
    return "\n".join(lines) + "\n"
