"""Validation-loss curves of the controlled training comparison (scripts/gpu_compare.sh) on one figure.

    python scripts/plot_compare.py LOGS_DIR [LOGS_DIR ...] --out docs/img/train_compare.png

Each LOGS_DIR holds NAME.jsonl train logs (the tarball's logs/); a run found in several takes the last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    runs = {}
    for d in args.logs:
        for f in sorted(d.glob("*.jsonl")):
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            if any("val_valid_random" in r for r in rows):
                runs[f.stem] = rows
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rows in sorted(runs.items()):
        train = [r for r in rows if "loss" in r]
        val = [r for r in rows if "val_valid_random" in r]
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], label=name)
        for ax, split in zip(axes[1:], ("valid_random", "valid_compositional"), strict=True):
            ax.plot([r["step"] for r in val], [r[f"val_{split}"] for r in val], marker=".", label=name)
        print(name, {s: round(val[-1][f"val_{s}"], 4) for s in ("valid_random", "valid_compositional")})
    for ax, title in zip(axes, ("train loss", "validation loss: valid_random", "validation loss: valid_compositional"),
                         strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step (96 pairs)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
