"""Can packed training use cuDNN's ragged (varlen) attention on this GPU, and what does attention cost each way?

    python scripts/varlen_probe.py --lengths STEP_LENGTHS.json [--steps 8] [--json OUT.json]

STEP_LENGTHS.json: {"even": [[len, ...] per micro-batch], "least8": [...]}, the token lengths of the pairs of each
micro-batch of an epoch plan (`BatchLoader.epoch_plan`, 24 x 4), as `scripts/padding_report.py DATA --row-multiples 8
--lengths-json STEP_LENGTHS.json` writes them. For the first --steps steps it times attention's
forward + backward (`triton.testing.do_bench`, median) of the same pairs laid out three ways: padded rows (B, nh, T,
hs) through SDPA's cuDNN kernel (what training runs now), and packed end to end (N, nh, hs) through cuDNN's ragged
kernel (`aten._cudnn_attention_forward` with cumulative lengths; torch's `varlen_attn` does not use it yet) and
through FlashAttention-2's varlen kernel (`model.packed_causal_attention`, what `train.pack` runs). First it checks
cuDNN's ragged output and gradients against causal SDPA segment by segment in fp32, also with zero-length segments
padding the offsets to a fixed count (so the compiled graph sees one shape), and whether torch.compile traces it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
import triton.testing
from p2t_model.model import packed_causal_attention
from torch.nn.attention import SDPBackend, sdpa_kernel

N_HEAD, HEAD_DIM, CONTEXT = 8, 64, 2048  # the 50m model's attention


def cudnn_ragged(q, k, v, cu_seqlens, max_len):
    """Causal attention within each segment of packed q, k, v (N, nh, hs), by cuDNN's ragged kernel."""
    return torch.ops.aten._cudnn_attention_forward(q, k, v, None, cu_seqlens, cu_seqlens, max_len, max_len, True,
                                                   0.0, True, False)[0]


def reference(q, k, v, cu_seqlens):
    """fp32 causal SDPA segment by segment: (N, nh, hs)."""
    bounds = cu_seqlens.tolist()
    out = [F.scaled_dot_product_attention(*(t[a:b].float().transpose(0, 1) for t in (q, k, v)), is_causal=True)
           for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return torch.cat(out, dim=1).transpose(0, 1)


def offsets(lengths, pad_to: int | None = None) -> torch.Tensor:
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    cu += [cu[-1]] * ((pad_to or 0) - len(lengths))  # zero-length segments: a fixed count of offsets
    return torch.tensor(cu, dtype=torch.int32, device="cuda")


def packed_qkv(n: int):
    return [torch.randn(n, N_HEAD, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            for _ in range(3)]


def check(fn, lengths, pad_to=None) -> dict:
    """Max abs error of output and gradients against the fp32 reference, over the reference's largest value."""
    torch.manual_seed(0)
    cu = offsets(lengths, pad_to)
    q, k, v = packed_qkv(sum(lengths))
    grad = torch.randn(sum(lengths), N_HEAD, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    try:
        out = fn(q, k, v, cu, CONTEXT)
        got = [out, *torch.autograd.grad(out, (q, k, v), grad)]
    except Exception as exc:  # noqa: BLE001 — the probe reports what fails, whatever it is
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = reference(qf, kf, vf, cu)
    want = [ref, *torch.autograd.grad(ref, (qf, kf, vf), grad.float())]
    return {name: round(((g.float() - w).abs().max() / w.abs().max()).item(), 5)
            for name, g, w in zip(("out", "dq", "dk", "dv"), got, want, strict=True)}


def fwd_bwd_ms(fn, *inputs) -> float:
    def step():
        out = fn(*inputs)
        out.backward(torch.ones_like(out))
    return triton.testing.do_bench(step, warmup=5, rep=40)


def padded_ms(lengths, backend) -> float:
    t = -(-max(lengths) // 64) * 64
    q, k, v = [torch.randn(len(lengths), N_HEAD, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16,
                           requires_grad=True) for _ in range(3)]
    with sdpa_kernel(backend):
        return fwd_bwd_ms(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)


def packed_ms(fn, lengths, pad_tokens: int, pad_segments: int) -> tuple[float, float]:
    """(first call's wall ms, median ms) for the pairs packed into ceil(N / pad_tokens) * pad_tokens positions,
    the remainder one more segment."""
    n = -(-sum(lengths) // pad_tokens) * pad_tokens
    segs = list(lengths) + ([n - sum(lengths)] if n > sum(lengths) else [])
    q, k, v = packed_qkv(n)
    cu = offsets(segs, pad_segments)
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn(q, k, v, cu, CONTEXT).sum().backward()
    torch.cuda.synchronize()
    first = (time.perf_counter() - start) * 1e3
    return first, fwd_bwd_ms(fn, q, k, v, cu, CONTEXT)


def compile_check() -> str:
    def loss(q, k, v, cu):
        return cudnn_ragged(q, k, v, cu, CONTEXT).float().square().mean()
    try:
        compiled = torch.compile(loss, fullgraph=True)
        q, k, v = packed_qkv(4096)
        cu = offsets([1000, 2000, 1096], 8)
        compiled(q, k, v, cu).backward()
        eager = [t.grad.clone() for t in (q, k, v)]
        for t in (q, k, v):
            t.grad = None
        loss(q, k, v, cu).backward()
        err = max((a - t.grad).abs().max().item() for a, t in zip(eager, (q, k, v), strict=True))
        return f"ok (compiled vs eager grads max abs diff {err:.2e})"
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc)[:400]}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--pad-tokens", type=int, default=1024, help="packed length rounded up to this")
    ap.add_argument("--pad-segments", type=int, default=64, help="offsets padded to this count + 1")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                    "cudnn": torch.backends.cudnn.version()}
    cases = {"mixed": [300, 1000, 5, 1, 700], "one": [2048], "real": json.load(open(args.lengths))["even"][2]}
    report["check"] = {f"{impl} {case}{' +zero segments' if pad else ''}": check(fn, lengths, pad)
                       for impl, fn in (("cudnn_ragged", cudnn_ragged), ("flash_varlen", packed_causal_attention))
                       for case, lengths in cases.items() for pad in (None, 64)}
    for name, result in report["check"].items():
        print(f"check {name}: {result}")
    report["compile"] = compile_check()
    print("torch.compile:", report["compile"])
    plans = json.load(open(args.lengths))
    for plan_name in ("even", "least8"):
        batches = plans[plan_name][: 4 * args.steps]
        rows = {"padded cudnn": 0.0, "padded flash": 0.0, "packed cudnn": 0.0, "packed flash": 0.0,
                "packed cudnn first": 0.0, "packed flash first": 0.0}
        positions = sum(-(-max(b) // 64) * 64 * len(b) for b in batches)
        for lengths in batches:
            rows["padded cudnn"] += padded_ms(lengths, SDPBackend.CUDNN_ATTENTION)
            rows["padded flash"] += padded_ms(lengths, SDPBackend.FLASH_ATTENTION)
            for impl, fn in (("cudnn", cudnn_ragged), ("flash", packed_causal_attention)):
                try:
                    first, median = packed_ms(fn, lengths, args.pad_tokens, args.pad_segments)
                except Exception as exc:  # noqa: BLE001
                    rows[f"packed {impl}"] = float("nan")
                    print(f"packed {impl}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                rows[f"packed {impl}"] += median
                rows[f"packed {impl} first"] += first
        real = sum(map(sum, batches))
        report[plan_name] = {"steps": args.steps, "real_tokens": real, "padded_positions": positions,
                             **{k: round(v / args.steps, 2) for k, v in rows.items()}}
        print(f"{plan_name}: ms of attention fwd+bwd per layer per step (4 micro-batches), positions per real token "
              f"{positions / real:.3f}:", {k: round(v / args.steps, 2) for k, v in rows.items()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
