"""A seeded sample of a built corpus, small enough to carry to the GPU machine beside the shipped weights (a call
carries 64 MiB in all; the 200k corpus packs into 27 MiB of xz, the weights take 48 MiB).

    python scripts/sample_corpus.py DATA200 OUT --train 60000 --valid-compositional 3000 [--seed 0] [--tar OUT.tar.xz]

Each split keeps its rows in corpus order; a split given no size (valid_random by default) is copied whole. The
manifest is copied with the sample's counts and a note of what it was sampled from.

`--valid-from SAMPLE` takes the held-out splits whole from another corpus or sample instead (e.g. the one the shipped
weights were judged on, so new weights are judged on the same units) and drops every training row whose hash is in
them. Build such a corpus with `p2t data build --seed N --heldout-from OTHER/manifest.json`, so no training row holds
one of the other corpus's held-out op combinations either.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
from pathlib import Path

SPLITS = ("train", "valid_random", "valid_compositional")


def sample_split(src: Path, dst: Path, n: int | None, rng: random.Random, exclude: frozenset = frozenset()) -> int:
    with src.open() as f:
        rows = [row for row in f if not exclude or json.loads(row)["hash"] not in exclude]
    if n is not None and n < len(rows):
        keep = sorted(rng.sample(range(len(rows)), n))
        rows = [rows[i] for i in keep]
    dst.write_text("".join(rows))
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tar", type=Path, help="also pack OUT as this .tar.xz (xz -6 on every core)")
    parser.add_argument("--valid-from", type=Path, help="copy the held-out splits whole from this corpus or sample, "
                        "and drop the training rows they hold")
    for split in SPLITS:
        parser.add_argument(f"--{split.replace('_', '-')}", type=int, default=None, help=f"rows of {split}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts, held = {}, frozenset()
    if args.valid_from:
        held = frozenset(json.loads(line)["hash"] for split in SPLITS[1:]
                         for line in (args.valid_from / f"{split}.jsonl").open())
    for split in SPLITS:
        rng = random.Random(f"{args.seed}:{split}")
        if args.valid_from and split != "train":
            shutil.copyfile(args.valid_from / f"{split}.jsonl", args.out / f"{split}.jsonl")
            counts[split] = sum(1 for _ in (args.out / f"{split}.jsonl").open())
            continue
        counts[split] = sample_split(args.data / f"{split}.jsonl", args.out / f"{split}.jsonl",
                                     getattr(args, split), rng, held)
    manifest = json.loads((args.data / "manifest.json").read_text())
    manifest["counts"] = counts
    manifest["sampled_from"] = {"data": str(args.data), "seed": args.seed,
                                **({"valid_from": str(args.valid_from)} if args.valid_from else {})}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"sample of {args.data}: {counts}")
    if args.tar:
        files = [f"{split}.jsonl" for split in SPLITS] + ["manifest.json"]
        subprocess.run(["tar", "-C", str(args.out), "-I", "xz -T0 -6", "-cf", str(args.tar), *files], check=True)
        print(f"packed {args.tar}: {args.tar.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
