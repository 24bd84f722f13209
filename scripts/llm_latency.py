"""Latency of one LLM translation: greedy, one candidate, with and without the post-processor chain.

    python scripts/llm_latency.py --weights DIR --data DATA [--split valid_random] [--n 8] [--backend cuda]
                                  [--max-new-tokens 2048] [--compile-step] [--no-drafts] [--no-precompile]
                                  [--no-wait-worker] [--json OUT]

For N units sampled from the split (`read_split`'s seeded sample), one `LLMEngine.translate_unit` with k=1 on the
pair's prompt, signature and reference: decoding is "verification excluded"; decoding plus the chain grammar ->
semantics -> compile -> verification is "included". Each unit starts once the verifier's spare worker is ready
(its imports and, on CUDA, its warm-up done; the wait is reported, not counted), as one translation finds it after
the engine's start: the engine starts that worker while it loads the model (--no-wait-worker: back to back; a
worker whose job ended cleanly serves the next, runner.py). The first unit also pays for warming up
and is reported apart (with --compile-step it also compiles the decoding step, `MinimalLLM.generate(compile_step=
True)`). Prints the medians and, per unit, the tokens decoded and whether the candidate verified. Weights with a
draft table (drafts.safetensors) decode greedily with it unless --no-drafts (the same tokens, p2t_model/drafts.py).
On CUDA the verifier compiles each candidate's kernels ahead, side by side, unless --no-precompile; each unit's
line then ends with the worker's phases (setup, the dry run and compiles ahead, the cases). Set XDG_CACHE_HOME to a
fresh folder for an empty Triton cache (the verifier's cache is XDG_CACHE_HOME/p2t/triton).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import p2t_core.verify
from p2t_core.llm import pairform
from p2t_core.llm.engine import MAX_NEW_TOKENS, LLMEngine, LLMTranslationError
from p2t_core.llm.evaluate import read_split, row_reference, row_signature, row_unit
from p2t_core.verify import resolve_backend
from p2t_core.verify.runner import prestart, wait_for_spare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid_random")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    ap.add_argument("--compile-step", action="store_true", help="torch.compile the decoding step (GPU only)")
    ap.add_argument("--no-drafts", action="store_true", help="ignore the weights' draft table (plain greedy decoding)")
    ap.add_argument("--no-wait-worker", action="store_true",
                    help="start each unit at once, ready worker or not (translations back to back)")
    ap.add_argument("--no-precompile", action="store_true", help="CUDA: compile kernels as the cases launch them")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    p2t_core.verify.PRECOMPILE = not args.no_precompile

    t0 = time.perf_counter()
    engine = LLMEngine(args.weights, args.device)
    decoder = engine.decoder
    decoder.compile_step = args.compile_step
    if args.no_drafts:
        decoder.drafts = None
    load_s = time.perf_counter() - t0
    backend = resolve_backend(args.backend)
    prestart(backend, keep_warm=True)
    rows = read_split(args.data, args.split, limit=args.n)
    per_unit = []
    for row in rows:
        unit = row_unit(row)
        sig = row_signature(row, unit)
        t1 = time.perf_counter()
        # a translation that finds its worker ready, unless measuring translations back to back
        ready = None if args.no_wait_worker else wait_for_spare(backend)
        wait_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        report = None
        try:
            result = engine.translate_unit(
                row["source"], "<latency>", unit, k=1, max_new_tokens=args.max_new_tokens, backend=args.backend,
                verify_dtypes=("float32",), signature=sig, reference_source=row_reference(row),
                prompt=row["prompt"], timeout_s=120.0, seed=0)
            outcome, report = result.outcomes[-1], result.report
        except LLMTranslationError as e:
            outcome = e.outcomes[-1]
        total = time.perf_counter() - t1
        decode_s = total - sum(outcome.seconds.values())  # the rest is the chain: check, then verify
        # the tokens the model wrote: the candidate in the model's own text form (pair format 2: no library helpers)
        written = pairform.model_target(outcome.text, unit, row["prompt"], engine.pair_format)
        tokens = len(decoder.tokenizer.encode(written))
        per_unit.append({"unit": unit, "family": row.get("family"), "tokens": tokens, "worker_ready": ready,
                         "worker_wait_s": wait_s,
                         "decode_s": decode_s, "total_s": total, "chain_s": dict(outcome.seconds),
                         "verified": outcome.ok, "stage": outcome.stage,
                         "cases": len(report.cases) if report else None,
                         # of verify, the worker's own seconds: setup, the compile-ahead, the cases themselves
                         # (reference, candidate, comparison); the rest is waiting for the worker and the pipes
                         "phases": report.phases if report else None})
        cases = f"  ({len(report.cases)} cases)" if report else ""
        if report and report.phases:
            cases += "  " + " ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in report.phases.items()
                                     if k.endswith("_s"))
        print(f"{unit:40s} {tokens:5d} tokens  decode {decode_s:6.2f} s  with the chain "
              f"{total:6.2f} s  {'verified' if outcome.ok else 'stopped at ' + outcome.stage}{cases}", flush=True)
    warm = per_unit[1:] or per_unit
    summary = {"weights": args.weights, "split": args.split, "backend": args.backend, "load_s": load_s,
               "precompile": p2t_core.verify.PRECOMPILE,
               "compile_step": args.compile_step, "drafts": decoder.drafts is not None,
               "first_unit": per_unit[0] if per_unit else None,
               "median_decode_s": statistics.median(u["decode_s"] for u in warm),
               "median_total_s": statistics.median(u["total_s"] for u in warm),
               "median_tokens": statistics.median(u["tokens"] for u in warm),
               "tokens_per_s": sum(u["tokens"] for u in warm) / sum(u["decode_s"] for u in warm),
               "verified": sum(u["verified"] for u in per_unit), "units": len(per_unit), "per_unit": per_unit}
    print(json.dumps({k: v for k, v in summary.items() if k != "per_unit"}, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
