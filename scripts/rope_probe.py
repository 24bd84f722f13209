"""Why the backward of RoPE costs 11% of a training step (249 us a call where its bytes need ~40 us), and what
would shorten it: one attention layer of the 50m model (qkv -> RoPE -> causal SDPA -> proj), forward and backward
under torch.compile, in several spellings, each profiled in one GPU call.

    python3 scripts/rope_probe.py --out $OUT [--batch 24] [--lengths 832,704,1024] [--iters 20]

Spellings: `model` (model.apply_rope on the (B, nh, T, hs) view, `torch.compile(dynamic=True)` as `p2t train`
does), `model_static` (the same, `dynamic=False`), `kernel` (model/rope_kernel.py: q and k rotated and v copied out
of the qkv rows by one Triton kernel; its backward is the same kernel with the angle negated, into d(qkv)). Each is
compiled on the first length and run on the others (dynamic shapes), then profiled at the last. Writes
`rope_probe.txt` (per spelling the CUDA and wall time per iteration and the kernels by CUDA time), `rope_probe.json`
and `rope_sources.tar.gz` (the inductor source of every generated kernel that ran, to read its index arithmetic).
`--cpu` checks the spellings against each other on the CPU (the kernel under TRITON_INTERPRET=1): the script's test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from p2t_model.model import apply_rope, rope_tables  # noqa: E402
from p2t_model.rope_kernel import rope_qkv  # noqa: E402

C, NH, HS = 512, 8, 64


def layer_model(x, w_qkv, w_proj, cos, sin):
    B, T, _ = x.shape
    q, k, v = F.linear(x, w_qkv).split(C, dim=2)
    q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(y.transpose(1, 2).reshape(B, T, C), w_proj)


def layer_kernel(x, w_qkv, w_proj, cos, sin):
    B, T, _ = x.shape
    q, k, v = (t.transpose(1, 2) for t in rope_qkv(F.linear(x, w_qkv), cos, sin, NH))  # (B, nh, T, hs)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(y.transpose(1, 2).reshape(B, T, C), w_proj)


SPELLINGS = {"model": (layer_model, True), "model_static": (layer_model, False), "kernel": (layer_kernel, True)}


def inputs(batch, T, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)  # made on the device: no copies in the profile
    x = torch.randn(batch, T, C, generator=g, device=device).requires_grad_()
    w_qkv = (torch.randn(3 * C, C, generator=g, device=device) * 0.02).requires_grad_()
    w_proj = (torch.randn(C, C, generator=g, device=device) * 0.02).requires_grad_()
    return x, w_qkv, w_proj


def check_cpu() -> None:
    """The spellings agree in value and gradient (CPU, fp32, the Triton kernel interpreted)."""
    cos, sin = rope_tables(HS, 64, 10000.0)
    grads = {}
    for name in ("model", "kernel"):
        x, w_qkv, w_proj = inputs(2, 37, "cpu", 0)
        out = SPELLINGS[name][0](x, w_qkv, w_proj, cos[:37], sin[:37])
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[name] = (out.detach(), x.grad, w_qkv.grad)
    for a, b in zip(grads["model"], grads["kernel"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    print("cpu: the apply_rope and kernel spellings agree (values and gradients)")


def profile(name, args, cos_all, sin_all, source_dir: Path) -> dict:
    fn, dynamic = SPELLINGS[name]
    torch._dynamo.reset()
    run = torch.compile(fn, dynamic=dynamic)
    lengths = [int(t) for t in args.lengths.split(",")]
    if not dynamic:
        lengths = lengths[-1:]

    def one(T, seed):
        x, w_qkv, w_proj = inputs(args.batch, T, "cuda", seed)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = run(x, w_qkv, w_proj, cos_all[:T], sin_all[:T])
        out.float().square().mean().backward()

    for i, T in enumerate(lengths):  # compile, then the other lengths through the same dynamic graph
        for r in range(3):
            one(T, 10 * i + r)
    torch.cuda.synchronize()
    T = lengths[-1]
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for r in range(args.iters):
            one(T, 100 + r)
        torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - t0) / args.iters
    kernels = sorted(((e.key, e.device_time_total / args.iters, e.count // args.iters)
                      for e in prof.key_averages() if e.device_time_total > 0), key=lambda k: -k[1])
    sources = {}  # kernel name -> the inductor cache file that defines it, read once
    for path in Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]).rglob("*.py"):
        text = path.read_text(errors="replace")
        sources.update((kname, text) for kname in re.findall(r"def (triton_\w+)\(", text))
    for kname, _, _ in kernels:
        if kname in sources:
            (source_dir / f"{name}__{kname[:120]}.py").write_text(sources[kname])
    return {"spelling": name, "dynamic": dynamic, "T": T, "batch": args.batch, "wall_ms_per_iter": wall_ms,
            "cuda_us_per_iter": sum(k[1] for k in kernels),
            "kernels": [{"name": k[0], "us_per_iter": round(k[1], 1), "calls": k[2]} for k in kernels[:25]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lengths", default="832,704,1024", help="compiled on the first, profiled at the last")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--spellings", default=",".join(SPELLINGS))
    parser.add_argument("--cpu", action="store_true", help="check the spellings agree on the CPU and stop")
    args = parser.parse_args()
    if args.cpu:
        check_cpu()
        return
    out = Path(args.out)
    source_dir = out / "rope_sources"  # packed into rope_sources.tar.gz at the end
    source_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path("/tmp") / "rope_probe_inductor"))
    cos, sin = (t.cuda() for t in rope_tables(HS, 2048, 10000.0))
    results, lines = [], []
    for name in args.spellings.split(","):
        r = profile(name, args, cos, sin, source_dir)
        results.append(r)
        lines.append(f"== {name} (dynamic={r['dynamic']}, B={r['batch']}, T={r['T']}): "
                     f"{r['cuda_us_per_iter']:.0f} us CUDA, {r['wall_ms_per_iter']:.2f} ms wall per iteration")
        lines += [f"  {k['us_per_iter']:9.1f} us  x{k['calls']}  {k['name'][:140]}" for k in r["kernels"]]
        print("\n".join(lines[-6:]), flush=True)
    (out / "rope_probe.txt").write_text("\n".join(lines) + "\n")
    with tarfile.open(out / "rope_sources.tar.gz", "w:gz") as tar:  # one file: a GPU call returns eight
        tar.add(source_dir, arcname="rope_sources")
    shutil.rmtree(source_dir)
    (out / "rope_probe.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
