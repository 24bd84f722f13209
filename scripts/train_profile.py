"""Where a training step's time goes, padded against packed micro-batches: one GPU call answers why packing
(no padding, 22% fewer positions) measured slower than padding (docs/BENCHMARKS.md).

    python3 scripts/train_profile.py --data DIR --tokenizer tokenizer.json --out $OUT [--steps 12] [--modes padded]

For each mode it builds the 50m model (the config of scripts/train_gpu.json), compiles it as `p2t train` does,
runs warm-up steps of 24 x 4 micro-batches of the real corpus (the same steps in both modes), then profiles
`--steps` steps and writes `profile_<mode>.txt`: milliseconds per step, tokens/s, and the CUDA kernels by total
time (attention forward/backward, matmuls, fused elementwise), plus `profile.json` with both summaries.
`--tiny` runs the tiny preset on the CPU (CPU operators instead of kernels): the test of this script.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from p2t_model.config import load_config_file, merge, preset
from p2t_model.data import BatchLoader, load_split
from p2t_model.model import MinimalLLM
from p2t_model.muon import build_optimizers
from p2t_model.tokenizer import P2TTokenizer
from p2t_model.train import accumulate_gradients, amp_dtype

ROOT = Path(__file__).resolve().parents[1]


def profile_mode(pack: bool, args, model_cfg, train_cfg, ds, tokenizer, device) -> dict:
    torch.manual_seed(0)
    model = MinimalLLM(model_cfg).to(device)
    optimizers = build_optimizers(model, train_cfg)
    run = torch.compile(model, dynamic=True) if device.type == "cuda" else model
    loader = BatchLoader(ds, train_cfg.micro_batch, tokenizer.pad_id, model_cfg.context, seed=train_cfg.seed,
                         group=train_cfg.grad_accum, pad_multiple=train_cfg.pad_multiple, packed=pack)
    dtype = amp_dtype(device, train_cfg.dtype)

    def step() -> int:
        batches = [loader.next_batch() for _ in range(train_cfg.grad_accum)]
        accumulate_gradients(run, batches, device, dtype)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return sum(b.n_tokens for b in batches)

    for _ in range(args.warmup):  # compilation and recompilation for new lengths happen here
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    tokens, start = 0, time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            tokens += step()
        sync()
    seconds = time.perf_counter() - start
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=90)
    mode = "packed" if pack else "padded"
    summary = {"mode": mode, "steps": args.steps, "tokens": tokens, "ms_per_step": 1000 * seconds / args.steps,
               "tokens_per_s": tokens / seconds, "note": "profiled: the profiler adds overhead; compare modes"}
    (Path(args.out) / f"profile_{mode}.txt").write_text(json.dumps(summary) + "\n\n" + table)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data directory with train.jsonl")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", default=".")
    parser.add_argument("--steps", type=int, default=12, help="profiled optimizer steps per mode")
    parser.add_argument("--warmup", type=int, default=40, help="steps before profiling (compile, recompiles)")
    parser.add_argument("--rows", type=int, default=30, help="kernels listed per mode")
    parser.add_argument("--modes", default="padded,packed", help="which of padded,packed to profile")
    parser.add_argument("--tiny", action="store_true", help="tiny preset on the CPU")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    config = load_config_file(ROOT / "scripts" / "train_gpu.json")
    if args.tiny:  # the tiny model at the GPU config's context and vocabulary (the corpus's tokenizer)
        model_cfg, train_cfg = merge(*preset("tiny"), {"model": config["model"]})
        device = torch.device("cpu")
    else:
        model_cfg, train_cfg = merge(*preset("50m"), config)
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
    tokenizer = P2TTokenizer.load(args.tokenizer)
    ds = load_split(args.data, "train", tokenizer, model_cfg.context, model_cfg.pair_format)
    modes = args.modes.split(",")
    results = [profile_mode(mode == "packed", args, model_cfg, train_cfg, ds, tokenizer, device) for mode in modes]
    (Path(args.out) / "profile.json").write_text(json.dumps(results, indent=2))
    for r in results:
        print(f"{r['mode']}: {r['ms_per_step']:.1f} ms/step, {r['tokens_per_s']:,.0f} tokens/s (profiled)")


if __name__ == "__main__":
    main()
