"""Triton 3.6's interpreter on numpy >= 2.4: the one fix it needs, and a check that it suffices on this machine.

NumPy 2.4 stopped converting arrays of more than zero dimensions to Python scalars (`int(np.array([3]))` raises).
The interpreter holds every scalar as a one-element array and converts it with `int()` in `tensor.__index__`, so a
kernel loop over a runtime bound (`for k in range(0, K, BLOCK_K)`, every matmul) raised "only 0-dimensional arrays
can be converted to Python scalars": every matmul candidate failed that way on the GPU machine's numpy 2.5
(docs/BENCHMARKS.md). `patch_interpreter()` converts through `.item()` instead; it is called wherever kernels are
interpreted (the verifier's workers, the data pipeline's batch worker, `p2t bench --tiny`). `self_check()` runs
kernels with the construct numpy 2.4 broke and the common ones beside it (a loop over a runtime bound, `tl.dot`, a
reduction, masked loads) under the patched interpreter in a subprocess, so a machine whose numpy breaks one of those
another way is still told.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

FIXED_FROM = (2, 4)  # the numpy that needs the patch


def numpy_version() -> tuple[int, int]:
    import numpy

    return tuple(int(p) for p in numpy.__version__.split(".")[:2])


def patch_interpreter() -> None:
    """Make the Triton interpreter's scalar-to-int conversion work on numpy >= 2.4; a no-op where the interpreter is
    off (TRITON_INTERPRET unset), below numpy 2.4, or the second time."""
    if os.environ.get("TRITON_INTERPRET") != "1" or numpy_version() < FIXED_FROM:
        return
    from triton.runtime import interpreter

    if getattr(interpreter, "_p2t_patched", False):
        return
    patch_tensor = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))  # restored with the rest

    interpreter._patch_lang_tensor = patched
    interpreter._p2t_patched = True


_CHECK = """
import torch, triton, triton.language as tl
from p2t_core.verify.interpreter_compat import patch_interpreter
patch_interpreter()

@triton.jit
def _mm(A, B, C, M, N, K, BLOCK: tl.constexpr):
    r = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k in range(0, K, BLOCK):  # a loop over a runtime bound: what numpy 2.4 broke
        a = tl.load(A + r[:, None] * K + (k + r)[None, :], mask=(r[:, None] < M) & ((k + r)[None, :] < K), other=0.0)
        b = tl.load(B + (k + r)[:, None] * N + r[None, :], mask=((k + r)[:, None] < K) & (r[None, :] < N), other=0.0)
        acc += tl.dot(a, b)
    tl.store(C + r[:, None] * N + r[None, :], acc, mask=(r[:, None] < M) & (r[None, :] < N))

@triton.jit
def _row_max(X, Y, n, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    x = tl.load(X + row * n + tl.arange(0, BLOCK), mask=tl.arange(0, BLOCK) < n, other=float("-inf"))
    tl.store(Y + row, tl.max(x, axis=0))

a, b = torch.randn(5, 37), torch.randn(37, 7)
c = torch.empty(5, 7)
_mm[(1,)](a, b, c, 5, 7, 37, BLOCK=16)
torch.testing.assert_close(c, a @ b, atol=1e-4, rtol=1e-4)
y = torch.empty(5)
_row_max[(5,)](a, y, 37, BLOCK=64)
torch.testing.assert_close(y, a.max(dim=1).values)
print("ok")
"""


@functools.cache
def self_check() -> str | None:
    """None if the patched interpreter runs the check kernels right on this machine, else what went wrong."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    try:
        run = subprocess.run([sys.executable, "-c", _CHECK], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "the interpreter self-check timed out"
    if run.returncode == 0 and run.stdout.strip().endswith("ok"):
        return None
    return (run.stderr.strip().splitlines() or ["no output"])[-1][:300]
