"""What a training epoch computes besides its real tokens, for each way to cut a step into micro-batches.

    python scripts/padding_report.py DATA [--tokenizer model/weights/tokenizer.json] [--micro-batch 24 --accum 4]

For the even cut and least-padding cuts (`train.least_padding`, rows in multiples of `train.row_multiple`) of epochs
of DATA's training split, as `p2t train` plans it (`BatchLoader`, the 50m model's context, pad multiple 64):
computed positions per real token, attention's T^2 work against the pairs' own (and the attention span per token that
MFU counts, `Batch.attn_span`, beside the padded one it counted before), the distinct (rows, length) batch
shapes, the seconds to plan it, and under `train.unpad` the distinct real-token counts of its micro-batches (each a
new matmul shape and, under `train.cuda_graphs`, a new recording), exact and rounded up as `collate` rounds them
(`data.UNPAD_STEPS`), with the tokens computed outside attention per real token, and the host time `collate` takes
per micro-batch, padded and unpadded (over the first 200 of the plan).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from p2t_model.config import ModelConfig, TrainConfig
from p2t_model.data import UNPAD_STEPS, BatchLoader, collate, load_split, padded_length, unpadded_count
from p2t_model.tokenizer import P2TTokenizer


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--tokenizer", default="model/weights/tokenizer.json")
    ap.add_argument("--micro-batch", type=int, default=TrainConfig.micro_batch)
    ap.add_argument("--accum", type=int, default=TrainConfig.grad_accum)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--row-multiples", default="1,8", help="least-padding cuts to report, by their row multiple")
    ap.add_argument("--epochs", type=int, default=1, help="epochs planned; shapes count over all of them")
    ap.add_argument("--lengths-json", help="also write each cut's micro-batches as lists of pair lengths, "
                    '{"even": [...], "least8": [...]} (the input of scripts/varlen_probe.py)')
    args = ap.parse_args(argv)
    tokenizer = P2TTokenizer.load(args.tokenizer)
    context, multiple = ModelConfig.context, TrainConfig.pad_multiple
    ds = load_split(args.data, "train", tokenizer, context)
    cuts = [(False, 1)] + [(True, int(m)) for m in args.row_multiples.split(",")]
    plans = {}
    for least_padding, row_multiple in cuts:
        start = time.perf_counter()
        loader = BatchLoader(ds, args.micro_batch, tokenizer.pad_id, context, seed=args.seed, group=args.accum,
                             pad_multiple=multiple, least_padding=least_padding, row_multiple=row_multiple)
        plan = [batch for epoch in range(args.epochs) for batch in loader.epoch_plan(epoch)]
        seconds = time.perf_counter() - start
        lengths = [[ds.lengths[i] for i in batch] for batch in plan]
        plans[f"least{row_multiple}" if least_padding else "even"] = lengths
        padded = [padded_length(max(ls), multiple, context) for ls in lengths]
        real = sum(map(sum, lengths))
        positions = sum(t * len(ls) for t, ls in zip(padded, lengths, strict=True))
        attention = sum(t * t * len(ls) for t, ls in zip(padded, lengths, strict=True))
        own = sum(n * n for ls in lengths for n in ls)
        padded_span = sum(t * sum(ls) for t, ls in zip(padded, lengths, strict=True))  # MFU's span until 2026-12-07
        shapes = {(len(ls), t) for t, ls in zip(padded, lengths, strict=True)}
        counts = [sum(ls) for ls in lengths]
        rounded = [unpadded_count(n, t * len(ls)) for n, t, ls in zip(counts, padded, lengths, strict=True)]
        unpadded_shapes = {(len(ls), t, n) for t, ls, n in zip(padded, lengths, rounded, strict=True)}
        collate_ms = []
        for unpad in (False, True):
            start = time.perf_counter()
            for batch in plan[:200]:
                collate(ds, batch, tokenizer.pad_id, multiple, context, unpad=unpad)
            collate_ms.append(1000 * (time.perf_counter() - start) / len(plan[:200]))
        name = f"least padding, rows x{row_multiple}" if least_padding else "even cut"
        print(f"{name:>24}: {positions / real:.3f} positions per real token, attention {attention / own:.3f} of the "
              f"pairs' own (span per token {own / real:.0f}, {padded_span / real:.0f} over padded rows), "
              f"{len(shapes)} batch shapes, rows {min(map(len, lengths))}-{max(map(len, lengths))}, "
              f"{len(plan)} batches planned in {seconds:.2f} s; unpadded: {len(set(counts))} distinct real-token "
              f"counts, {len(set(rounded))} rounded up to a 1/{UNPAD_STEPS} step of the slots ({len(unpadded_shapes)} "
              f"(rows, length, count) shapes), {sum(rounded) / real:.4f} computed per real token; collate "
              f"{collate_ms[0]:.2f} ms padded, {collate_ms[1]:.2f} ms unpadded")
    if args.lengths_json:
        Path(args.lengths_json).write_text(json.dumps(plans))


if __name__ == "__main__":
    main()
