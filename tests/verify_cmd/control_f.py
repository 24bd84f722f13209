"""A correct candidate for ref_f.f, in the module contract."""

import torch
import triton
import triton.language as tl


@triton.jit
def _f_0_kernel(X_ptr, Out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(X_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    tl.store(Out_ptr + offsets, (x * 2).to(Out_ptr.dtype.element_ty), mask=mask)


def f(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = out.numel()
    if n > 0:
        _f_0_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)
    return out
