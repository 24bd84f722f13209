"""The verdicts of shipped weights, as committed in docs/evals: a `p2t eval --json` result cut to its per-row
verdicts (the candidates' texts left out) and labelled with what produced it, so new weights can be judged against
it later without a device (docs/evals/README.md).

    python scripts/record_eval.py EVAL.json docs/evals/shipped_valid_random_128.json \
        --weights "model/weights at commit ABC (pair format 9, int8)" --machine "one NVIDIA H100 80GB HBM3, ...; DATE" \
        --sample "read_split(DATA, 'valid_random', 128, seed=0) of ..." --command "p2t eval --data DATA ..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DROPPED = ("greedy_text",)  # the candidate's text: large, and not what a later comparison reads


def record(result: dict, *, weights: str, machine: str, sample: str, command: str) -> dict:
    rows = [{k: v for k, v in row.items() if k not in DROPPED} for row in result["per_row"]]
    if result.get("interrupted"):
        raise SystemExit("an interrupted eval: join it with the rest of its rows first (compare_evals.py --join)")
    passed = sum(row["greedy_ok"] for row in rows)
    return {"split": result["split"], "weights": weights, "backend": result["backend"], "rows": len(rows),
            "passed": passed, "pass@1_greedy": round(passed / len(rows), 4), "machine": machine, "sample": sample,
            "command": command, "per_row": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path, help="a `p2t eval --json` output")
    parser.add_argument("out", type=Path)
    for field in ("weights", "machine", "sample", "command"):
        parser.add_argument(f"--{field}", required=True)
    args = parser.parse_args()
    out = record(json.loads(args.result.read_text()), weights=args.weights, machine=args.machine, sample=args.sample,
                 command=args.command)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{args.out}: {out['split']} {out['passed']}/{out['rows']} = {out['pass@1_greedy']:.3f}")


if __name__ == "__main__":
    main()
