"""Where a training step's time goes, and what it costs: padded against packed micro-batches, and the optimizer step
eager against replayed from one CUDA graph (model/step.py), in one GPU call on the same data.

    python3 scripts/train_profile.py --data DIR --tokenizer tokenizer.json --out $OUT [--modes padded,graph]

Modes: `padded` and `packed` (eager optimizer step), `least` (padded, each step cut where its micro-batches pad least,
`train.least_padding`, instead of into equal counts; `least8`: with rows in multiples of 8, `train.row_multiple`),
`graph` (padded, the optimizer step as a CUDA graph), and `unpad-` before a padded cut (`unpad-padded`,
`unpad-least8`): that cut with only the real tokens computed outside attention (`train.unpad`); `x2-` before those:
the step's pairs in half as many micro-batches of twice the rows (less host work per token), `h2-`: in twice as many
of half the rows (tighter length buckets: less padding, more launches); `cg-` before any of them:
compiled with mode="reduce-overhead" (the forward and backward replayed from CUDA graphs, one per batch shape). For each
mode it builds the 50m model (the config of scripts/train_gpu.json), compiles it as `p2t train` does, runs warm-up
steps of 24 x 4 micro-batches of the real corpus (the same steps in every mode), times `--timed` steps without the
profiler (tokens/s and MFU, the figures a training run logs) `--passes` times over the same batches (a batch shape's
first use costs time that later uses do not; with `--fresh`, over new batches each pass, drawn inside the timing, as a
training run meets them), then profiles `--steps` steps and writes
`profile_<mode>.txt`: milliseconds per step, tokens/s, and the CUDA kernels by total time (attention forward/backward,
matmuls, fused elementwise), plus `profile.json` with every summary.
Modes may repeat: `--modes graph,padded,graph,padded` shows the drift between runs of one process next to the effect.
`--tiny` runs the tiny preset on the CPU (CPU operators instead of kernels, no graph): the test of this script.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch
from p2t_model.config import load_config_file, merge, preset
from p2t_model.data import BatchLoader, load_split
from p2t_model.model import MinimalLLM, flops_per_token
from p2t_model.muon import build_optimizers
from p2t_model.step import OptimizerStep
from p2t_model.tokenizer import P2TTokenizer
from p2t_model.train import accumulate_gradients, amp_dtype, compile_for_training

ROOT = Path(__file__).resolve().parents[1]


def profile_mode(mode: str, args, model_cfg, train_cfg, ds, tokenizer, device) -> dict:
    torch.manual_seed(0)
    model = MinimalLLM(model_cfg).to(device)
    optimizers = build_optimizers(model, train_cfg)
    cut = mode.removeprefix("cg-")
    graphs = cut != mode and device.type == "cuda"  # the compiled forward and backward replayed from CUDA graphs
    stepper = OptimizerStep(model, optimizers, train_cfg.grad_clip, graph=mode == "graph" and device.type == "cuda",
                            grads_in_place=graphs)
    run = compile_for_training(model, graphs) if device.type == "cuda" else model
    # x2-: the step's pairs in half as many micro-batches of twice the rows; h2-: twice as many of half the rows
    micro_batch, accum = train_cfg.micro_batch, train_cfg.grad_accum
    if cut.startswith("x2-"):
        micro_batch, accum = 2 * micro_batch, accum // 2
    elif cut.startswith("h2-"):
        micro_batch, accum = micro_batch // 2, 2 * accum
    cut = cut.removeprefix("x2-").removeprefix("h2-")
    unpad = cut.startswith("unpad-")
    cut = cut.removeprefix("unpad-")
    least = cut.startswith("least")
    loader = BatchLoader(ds, micro_batch, tokenizer.pad_id, model_cfg.context, seed=train_cfg.seed,
                         group=accum, pad_multiple=train_cfg.pad_multiple, packed=cut == "packed",
                         least_padding=least, row_multiple=int(cut.removeprefix("least") or 1) if least else 1,
                         unpad=unpad)
    dtype = amp_dtype(device, train_cfg.dtype)
    n_params = model.num_params()
    flops, norms, losses = [], [], []

    def step(batches=None) -> int:
        batches = batches or [loader.next_batch() for _ in range(accum)]
        losses.append(accumulate_gradients(run, batches, device, dtype, cuda_graphs=graphs))
        norms.append(stepper.step())
        n = sum(b.n_tokens for b in batches)
        span = sum(b.attn_span * b.n_tokens for b in batches) / max(1, n)
        flops.append(flops_per_token(model_cfg, n_params, span) * n)
        return n

    for _ in range(args.warmup):  # compilation, recompilation for new lengths and the graph's capture happen here
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    steps = [] if args.fresh else [[loader.next_batch() for _ in range(accum)] for _ in range(args.timed)]
    passes = []
    for _ in range(args.passes):
        flops.clear()
        tokens, start = 0, time.perf_counter()
        if args.fresh:  # new batches, drawn inside the timing: what a training run meets
            steps = []
        for i in range(args.timed):
            if args.fresh:
                steps.append([loader.next_batch() for _ in range(accum)])
            tokens += step(steps[i])
        sync()
        timed_s = time.perf_counter() - start
        passes.append({"steps": args.timed, "tokens": tokens, "tokens_per_s": tokens / timed_s,
                       "ms_per_step": 1000 * timed_s / args.timed, "mfu": sum(flops) / timed_s / train_cfg.peak_flops})
    shapes = {tuple(b.x.shape) for batches in steps for b in batches}
    timed = {**passes[-1], "passes": passes, "batch_shapes": len(shapes), "micro_batches": accum}
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
    summary = {"mode": mode, "unprofiled": timed, "grad_norm_last": float(norms[-1]),
               "loss_last": float(losses[-1]), "steps": args.steps,
               "tokens": tokens, "ms_per_step": 1000 * seconds / args.steps, "tokens_per_s": tokens / seconds,
               "note": "profiled: the profiler adds overhead; compare modes"}
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
    parser.add_argument("--timed", type=int, default=30, help="unprofiled steps timed per mode")
    parser.add_argument("--passes", type=int, default=1, help="times the timed steps run (the last one is reported)")
    parser.add_argument("--fresh", action="store_true",
                        help="each pass draws new steps from the loader inside the timing (new batch shapes and "
                        "real-token counts, the loader's own time) instead of repeating the same steps")
    parser.add_argument("--modes", default="padded,graph",
                        help="which of padded,least,least8,packed,graph,unpad-<cut>,x2-<cut>,h2-<cut>,cg-<mode> to run")
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
    results = []
    for mode in modes:
        # A mode must not run in what the last one left: in one process each mode ran several ms a step slower than
        # the one before it (H100 and H200, twenty-second session), so its compiled graphs and memory go first
        torch._dynamo.reset()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        try:
            r = profile_mode(mode, args, model_cfg, train_cfg, ds, tokenizer, device)
        except RuntimeError as e:  # a mode that cannot run (out of memory, say) ends only itself
            r = {"mode": mode, "error": f"{type(e).__name__}: {e}"[:2000]}
        results.append(r)
        # written after every mode, so a time limit that cuts the last one keeps the others
        (Path(args.out) / "profile.json").write_text(json.dumps(results, indent=2))
        if "error" in r:
            print(f"{mode}: failed: {r['error'][:300]}", flush=True)
            continue
        t = r["unprofiled"]
        each = " / ".join(f"{p['ms_per_step']:.1f}" for p in t["passes"])
        print(f"{mode}: {t['ms_per_step']:.1f} ms/step, {t['tokens_per_s']:,.0f} tokens/s, MFU {t['mfu']:.1%} "
              f"({t['steps']} steps, {t['batch_shapes']} batch shapes; passes {each} ms/step); "
              f"profiled {r['ms_per_step']:.1f} ms/step", flush=True)


if __name__ == "__main__":
    main()
