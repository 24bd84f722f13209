"""Greedy decoding speed of a MinimalLLM preset with random weights (the speed does not depend on the weights).

    python scripts/decode_speed.py [--preset 50m] [--prompt 100] [--new 32 128] [--device cpu|cuda]

Prints seconds and tokens/s per length; the prompt is prefilled once, each new token is one cached step.
"""

from __future__ import annotations

import argparse
import time

import torch
from p2t_model.config import preset
from p2t_model.model import MinimalLLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="50m")
    ap.add_argument("--prompt", type=int, default=100, help="prompt tokens")
    ap.add_argument("--new", type=int, nargs="+", default=[32, 128], help="new tokens per run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = MinimalLLM(preset(args.preset)[0]).to(args.device).eval()
    prompt = torch.randint(4, model.config.vocab_size, (args.prompt,)).tolist()
    print(f"{args.preset}: {model.num_params():,} parameters on {args.device}, {torch.get_num_threads()} threads")
    model.generate(prompt, 4)  # warm-up
    for n in args.new:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(prompt, n, temperature=0.0)
        if args.device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"{n} new tokens: {dt:.2f} s, {n / dt:.1f} tokens/s")


if __name__ == "__main__":
    main()
