"""MFU of each logged interval of training runs against their step, on one figure (runs of scripts/gpu_unpad_ab.sh).

    python scripts/plot_throughput.py "LABEL=LOGS/NAME.jsonl" [...] --out docs/img/train_throughput.png [--goal 0.40]

A log that holds several runs (a run directory reused) is read from its last step 1 on. Prints each run's median
tokens/s and MFU over the intervals from --from-step on.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def last_run(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if "tokens_per_s" in line]
    starts = [i for i, r in enumerate(rows) if r["step"] == 1]
    return rows[starts[-1]:] if starts else rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=PATH of a train_log.jsonl")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--goal", type=float, default=0.40, help="MFU drawn as a line")
    ap.add_argument("--from-step", type=int, default=200, help="first step of the printed medians")
    args = ap.parse_args()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for spec in args.runs:
        label, path = spec.split("=", 1)
        rows = last_run(Path(path))
        ax.plot([r["step"] for r in rows], [100 * r["mfu"] for r in rows], label=label, linewidth=1)
        late = [r for r in rows if r["step"] >= args.from_step]
        print(f"{label}: {len(late)} intervals from step {args.from_step}: median "
              f"{statistics.median(r['tokens_per_s'] for r in late):,.0f} tokens/s, "
              f"MFU {statistics.median(r['mfu'] for r in late):.1%}")
    ax.axhline(100 * args.goal, color="gray", linestyle="--", linewidth=1, label=f"goal {args.goal:.0%}")
    ax.set(xlabel="optimizer step", ylabel="MFU of the logged interval (%)", ylim=(0, None))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
