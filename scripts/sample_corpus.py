"""A seeded sample of a built corpus, small enough to carry to the GPU machine beside the shipped weights (a call
carries 64 MiB in all; the 200k corpus packs into 27 MiB of xz, the weights take 48 MiB).

    python scripts/sample_corpus.py DATA200 OUT --train 60000 --valid-compositional 3000 [--seed 0] [--tar OUT.tar.xz]

Each split keeps its rows in corpus order; a split given no size (valid_random by default) is copied whole. The
manifest is copied with the sample's counts and a note of what it was sampled from.

`--valid-from SAMPLE` takes the held-out splits whole from another corpus or sample instead (e.g. the one the shipped
weights were judged on, so new weights are judged on the same units) and drops every training row whose hash is in
them. Build such a corpus with `p2t data build --seed N --heldout-from OTHER/manifest.json`, so no training row holds
one of the other corpus's held-out op combinations either.

`--add-train DIR` (repeatable) appends all of another corpus's training rows to the sampled ones, less those held
out (by hash, with `--valid-from`) and those already there: e.g. a corpus of long elementwise chains (`p2t data build
--families elementwise,multi_output --min-ops 7 --heldout-from ...`) beside a sample of the usual mix.

`--slim` drops from the training rows the fields training does not read (`source`, the rendering before
canonicalization, and `reference`, what its target was verified against): 70,835 rows packed into 8.4 MiB of xz instead
of 10.7, which leaves room beside the weights. The held-out splits keep every field (the evaluation reads them).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from pathlib import Path

SPLITS = ("train", "valid_random", "valid_compositional")
UNREAD_BY_TRAINING = ("source", "reference")


def sample_split(src: Path, dst: Path, n: int | None, rng: random.Random, exclude: frozenset = frozenset()
                 ) -> tuple[int, int]:
    """Rows kept, and rows dropped because their hash is in `exclude`."""
    with src.open() as f:
        read = f.readlines()
    rows = [row for row in read if json.loads(row)["hash"] not in exclude] if exclude else read
    dropped = len(read) - len(rows)
    if n is not None and n < len(rows):
        keep = sorted(rng.sample(range(len(rows)), n))
        rows = [rows[i] for i in keep]
    dst.write_text("".join(rows))
    return len(rows), dropped


def add_train(dst: Path, src: Path, held: frozenset) -> tuple[int, int]:
    """Append `src`'s rows to `dst` but those whose hash is held out or already in `dst`: (appended, dropped)."""
    have = {json.loads(row)["hash"] for row in dst.read_text().splitlines()}
    rows = src.read_text().splitlines(keepends=True)
    kept = []
    for row in rows:
        h = json.loads(row)["hash"]
        if h not in held and h not in have:
            have.add(h)
            kept.append(row if row.endswith("\n") else row + "\n")
    with dst.open("a") as f:
        f.writelines(kept)
    return len(kept), len(rows) - len(kept)


def slim_rows(path: Path) -> None:
    rows = [json.loads(row) for row in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in row.items() if k not in UNREAD_BY_TRAINING}) + "\n"
                            for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tar", type=Path, help="also pack OUT as this .tar.xz (xz -6 on every core)")
    parser.add_argument("--valid-from", type=Path, help="copy the held-out splits whole from this corpus or sample, "
                        "and drop the training rows they hold")
    parser.add_argument("--slim", action="store_true", help="drop the fields training does not read "
                        f"({', '.join(UNREAD_BY_TRAINING)}) from the training rows")
    parser.add_argument("--add-train", type=Path, action="append", default=[], metavar="DIR",
                        help="also append this corpus's training rows (less held-out and repeated hashes)")
    for split in SPLITS:
        parser.add_argument(f"--{split.replace('_', '-')}", type=int, default=None, help=f"rows of {split}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts, dropped = {}, 0
    held_rows = {split: (args.valid_from / f"{split}.jsonl").read_text().splitlines(keepends=True)
                 for split in SPLITS[1:]} if args.valid_from else {}
    held = frozenset(json.loads(row)["hash"] for rows in held_rows.values() for row in rows)
    for split in SPLITS:
        if split in held_rows:
            (args.out / f"{split}.jsonl").write_text("".join(held_rows[split]))
            counts[split] = len(held_rows[split])
            continue
        counts[split], n_dropped = sample_split(args.data / f"{split}.jsonl", args.out / f"{split}.jsonl",
                                                getattr(args, split), random.Random(f"{args.seed}:{split}"), held)
        dropped += n_dropped
    added = [add_train(args.out / "train.jsonl", extra / "train.jsonl", held) for extra in args.add_train]
    counts["train"] += sum(n for n, _ in added)
    if args.slim:
        slim_rows(args.out / "train.jsonl")
    manifest = json.loads((args.data / "manifest.json").read_text())
    manifest["counts"] = counts
    manifest["sampled_from"] = {"data": str(args.data), "seed": args.seed, **(
        {"valid_from": str(args.valid_from), "dropped_as_held_out": dropped} if args.valid_from else {})}
    if args.slim:
        manifest["slim_train"] = list(UNREAD_BY_TRAINING)
    if added:  # by_family and the other counts above are the sampled corpus's; these rows come on top
        manifest["added_train"] = [{"data": str(extra), "rows": n, "dropped": d}
                                   for extra, (n, d) in zip(args.add_train, added, strict=True)]
        print("added training rows: " + ", ".join(f"{a['data']}: {a['rows']} ({a['dropped']} dropped)"
                                                  for a in manifest["added_train"]))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"sample of {args.data}: {counts}" + (f"; {dropped} rows dropped as held out" if args.valid_from else ""))
    if args.tar:
        files = [f"{split}.jsonl" for split in SPLITS] + ["manifest.json"]
        subprocess.run(["tar", "-C", str(args.out), "-I", "xz -T0 -6", "-cf", str(args.tar), *files], check=True)
        print(f"packed {args.tar}: {args.tar.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
