"""Greedy decoding with and without the weights' draft table, on real held-out units: tokens, model passes,
seconds, and whether both wrote the same tokens (p2t_model/drafts.py).

    python scripts/draft_speed.py --weights model/weights --data DATA [--split valid_random] [--n 8]
                                  [--device cpu|cuda] [--json OUT]

Each unit is decoded plain, then drafted, in one process (the first unit of each also warms up: reported apart).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from p2t_core.llm import pairform
from p2t_core.llm.engine import MAX_NEW_TOKENS, load_decoder
from p2t_core.llm.evaluate import read_split, row_signature, row_unit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid_random")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    decoder = load_decoder(args.weights, args.device)
    model, tok, drafts = decoder.model, decoder.tokenizer, decoder.drafts
    if drafts is None:
        raise SystemExit(f"{args.weights} has no draft table: build one with `python -m p2t_model.drafts DATA WEIGHTS`")
    passes = [0]
    model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    sync = torch.cuda.synchronize if model.rope_cos.is_cuda else (lambda: None)
    per_unit = []
    for row in read_split(args.data, args.split, limit=args.n):
        unit = row_unit(row)
        ranks = [len(p.dims) for p in row_signature(row, unit).tensor_params]
        ids = tok.encode_prompt(pairform.model_prompt(row["prompt"], unit, ranks, decoder.pair_format))
        rec = {"unit": unit, "family": row.get("family")}
        for name, table in (("plain", None), ("drafted", drafts)):
            passes[0] = 0
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(ids, MAX_NEW_TOKENS, stop_id=tok.end_id, drafts=table)[0]
            sync()
            rec[name] = {"s": time.perf_counter() - t0, "passes": passes[0], "tokens": len(out)}
            rec[f"{name}_tokens"] = out
        rec["same"] = rec.pop("plain_tokens") == rec.pop("drafted_tokens")
        per_unit.append(rec)
        p, d = rec["plain"], rec["drafted"]
        print(f"{unit:36s} {p['tokens']:5d} tokens  plain {p['s']:6.2f} s ({p['passes']} passes)  drafted "
              f"{d['s']:6.2f} s ({d['passes']} passes, {d['tokens'] / max(1, d['passes'] - 1):.2f} tokens a pass)  "
              f"{'same' if rec['same'] else 'DIFFERENT'}", flush=True)
    warm = per_unit[1:] or per_unit
    summary = {"weights": args.weights, "device": str(model.rope_cos.device), "units": len(per_unit),
               "drafts": len(drafts), "same_tokens": sum(u["same"] for u in per_unit),
               "median_plain_s": statistics.median(u["plain"]["s"] for u in warm),
               "median_drafted_s": statistics.median(u["drafted"]["s"] for u in warm),
               "speedup_total": sum(u["plain"]["s"] for u in warm) / sum(u["drafted"]["s"] for u in warm),
               "tokens_per_pass": sum(u["drafted"]["tokens"] for u in warm)
               / max(1, sum(u["drafted"]["passes"] - 1 for u in warm)),
               "per_unit": per_unit}
    print(json.dumps({k: v for k, v in summary.items() if k != "per_unit"}, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
