"""Time loading a data directory's three splits twice: tokenizing (and writing the token cache), then from the cache.

    python scripts/time_token_cache.py DATA model/weights/tokenizer.json [--context 2048]

Delete DATA/.tokens first for a true first load.
"""

from __future__ import annotations

import argparse
import time

from p2t_model.data import SPLITS, load_split
from p2t_model.tokenizer import P2TTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("tokenizer")
    ap.add_argument("--context", type=int, default=2048)
    args = ap.parse_args()
    tok = P2TTokenizer.load(args.tokenizer)
    for attempt in ("first (tokenize + write the cache)", "second (read the cache)"):
        start = time.perf_counter()
        sizes = {s: (len(ds), ds.n_tokens) for s in SPLITS if (ds := load_split(args.data, s, tok, args.context))}
        print(f"{attempt}: {time.perf_counter() - start:.1f} s  (pairs, tokens) {sizes}", flush=True)


if __name__ == "__main__":
    main()
