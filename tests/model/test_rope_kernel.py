"""The training path's RoPE kernel (model/rope_kernel.py) against model.apply_rope: values and gradients.

The kernel runs under the Triton interpreter, which must be switched on before triton is first imported, so each
check runs in a subprocess with TRITON_INTERPRET=1 (as tests/bench do).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CHECK = textwrap.dedent("""
    import sys
    import torch
    from p2t_model.model import apply_rope, rope_tables
    from p2t_model.rope_kernel import rope_qkv

    B, T, nh, hs, start, use_v = (int(a) for a in sys.argv[1:])
    C = nh * hs
    torch.manual_seed(0)
    cos, sin = (t[start:start + T] for t in rope_tables(hs, start + T, 10000.0))
    qkv = torch.randn(B, T, 3 * C, requires_grad=True)
    weights = [torch.randn(B, nh, T, hs) for _ in range(3)]

    def loss(q, k, v):  # (B, nh, T, hs) each; v left out where use_v is 0 (its gradient is then None)
        parts = (q, k, v) if use_v else (q, k)
        return sum((t * w).sum() for t, w in zip(parts, weights))

    q, k, v = (t.transpose(1, 2) for t in rope_qkv(qkv, cos, sin, nh))
    loss(q, k, v).backward()
    ref_in = qkv.detach().clone().requires_grad_()
    rq, rk, rv = (t.view(B, T, nh, hs).transpose(1, 2) for t in ref_in.split(C, dim=2))
    rq, rk = apply_rope(rq, cos, sin), apply_rope(rk, cos, sin)
    loss(rq, rk, rv).backward()
    for got, want in ((q, rq), (k, rk), (v, rv), (qkv.grad, ref_in.grad)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    print("ok")
""")


@pytest.mark.parametrize("B,T,nh,hs,start,use_v", [
    (2, 37, 8, 64, 0, 1),  # the 50m model's heads; 74 tokens: the last block of 8 rows part-filled
    (3, 5, 4, 16, 0, 1),   # the tiny preset's heads, fewer tokens than a block
    (1, 19, 2, 8, 11, 1),  # tables sliced at a later first position
    (2, 9, 4, 16, 0, 0),   # v unused: its gradient arrives as None and counts as zeros
])
def test_rope_kernel_matches_apply_rope_in_value_and_gradient(B, T, nh, hs, start, use_v):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", CHECK, *map(str, (B, T, nh, hs, start, use_v))], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


UNPADDED_CHECK = textwrap.dedent("""
    import sys
    import torch
    from p2t_model.model import apply_rope, rope_tables, scatter_rows
    from p2t_model.rope_kernel import rope_qkv_unpadded

    nh, hs, T = (int(a) for a in sys.argv[1:4])
    lengths = [int(a) for a in sys.argv[4].split(",")]
    B, C = len(lengths), nh * hs
    torch.manual_seed(0)
    cos, sin = rope_tables(hs, T, 10000.0)
    keep = torch.cat([torch.arange(b * T, b * T + n) for b, n in enumerate(lengths)])  # (N,) slots of real tokens
    sources = torch.full((B * T,), -1, dtype=torch.int32).index_copy(0, keep, torch.arange(len(keep),
                                                                                            dtype=torch.int32))
    qkv = torch.randn(len(keep), 3 * C, requires_grad=True)  # the real tokens' projection
    weights = [torch.randn(B, nh, T, hs) for _ in range(3)]

    def loss(q, k, v):
        return sum((t * w).sum() for t, w in zip((q, k, v), weights))

    q, k, v = (t.transpose(1, 2) for t in rope_qkv_unpadded(qkv, keep, sources, cos, sin, nh, T))
    loss(q, k, v).backward()
    ref_in = qkv.detach().clone().requires_grad_()
    padded = scatter_rows(ref_in, keep, B * T).view(B, T, 3 * C)
    rq, rk, rv = (t.view(B, T, nh, hs).transpose(1, 2) for t in padded.split(C, dim=2))
    rq, rk = apply_rope(rq, cos, sin), apply_rope(rk, cos, sin)
    loss(rq, rk, rv).backward()
    for got, want in ((q, rq), (k, rk), (v, rv), (qkv.grad, ref_in.grad)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert q.abs().sum() > 0 and (q.transpose(1, 2).reshape(B * T, C)[sources < 0] == 0).all()  # zeros in padding
    print("ok")
""")


@pytest.mark.parametrize("nh,hs,T,lengths", [
    (8, 64, 21, "21,5,13"),   # the 50m model's heads; one full row, 3 slots of 8 part-filled
    (4, 16, 9, "1,9,0,4"),    # a row with no real token at all
])
def test_unpadded_rope_kernel_matches_scatter_then_apply_rope(nh, hs, T, lengths):
    """rope_qkv_unpadded reads each padded slot's token itself: the same q, k, v and d(qkv) as scattering the real
    tokens' qkv into zeros and rotating that."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", UNPADDED_CHECK, str(nh), str(hs), str(T), lengths], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


def test_the_kernel_takes_power_of_two_heads_and_half_heads_only():
    from p2t_model.rope_kernel import supports

    assert supports(8, 64) and supports(4, 16)
    assert not supports(6, 64) and not supports(8, 48)


def test_the_rope_probe_script_checks_its_spellings_on_the_cpu():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "rope_probe.py")
    run = subprocess.run([sys.executable, script, "--cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "agree" in run.stdout, run.stderr[-3000:]
