"""Paired comparison of two `p2t eval --json` results on the same rows: pass@1 of each, the units only one of them
passes, and the exact two-sided sign test on those (the test that decides whether new weights are shown better);
where either result checked its rows' targets (`p2t eval --check-targets`), the same again on the rows neither finds
ill-posed.

    python scripts/compare_evals.py eval_new_valid_random.json eval_shipped_valid_random.json [--names new shipped]
        [--targets docs/evals/targets_valid_random_128.json]
    python scripts/compare_evals.py --join JOINED.json PREFIX.json TAIL.json

`--targets` takes the rows' target verdicts from a third result that checked them (a row's own kernel fails or
passes on the same inputs whatever weights are judged), for two results that did not.

`--join` puts an interrupted eval and the eval of the rest of its sample (`p2t eval` on a data directory holding
the rows it did not reach) back together as one result over the whole sample, for the comparison above.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from math import comb


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins against losses at p = 1/2 (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(a: dict, b: dict) -> dict:
    rows_a, rows_b = a["per_row"], b["per_row"]
    n = min(len(rows_a), len(rows_b))  # an interrupted eval holds a prefix of its rows: compare the common prefix
    rows_a, rows_b = rows_a[:n], rows_b[:n]
    if [r["id"] for r in rows_a] != [r["id"] for r in rows_b]:
        raise SystemExit("the two results are not over the same rows (compare evals with the same --data, --split, "
                         "--limit)")
    only_a = [ra for ra, rb in zip(rows_a, rows_b, strict=True) if ra["greedy_ok"] and not rb["greedy_ok"]]
    only_b = [rb for ra, rb in zip(rows_a, rows_b, strict=True) if rb["greedy_ok"] and not ra["greedy_ok"]]
    return {"rows": len(rows_a), "pass_a": sum(r["greedy_ok"] for r in rows_a),
            "pass_b": sum(r["greedy_ok"] for r in rows_b), "only_a": len(only_a), "only_b": len(only_b),
            "p": sign_test(len(only_a), len(only_b)),
            "only_a_families": Counter(r["family"] for r in only_a),
            "only_b_families": Counter(r["family"] for r in only_b)}


def well_posed(a: dict, b: dict) -> tuple[dict, dict] | None:
    """The two results cut to their common prefix and to the rows neither finds ill-posed (the row's own target
    failed its verification: `p2t eval --check-targets`); None where neither checked targets."""
    if not any("target_ok" in r for res in (a, b) for r in res["per_row"]):
        return None
    kept = [(ra, rb) for ra, rb in zip(a["per_row"], b["per_row"], strict=False)
            if ra.get("target_ok") is not False and rb.get("target_ok") is not False]
    return {"per_row": [ra for ra, _ in kept]}, {"per_row": [rb for _, rb in kept]}


def with_targets(result: dict, checked: dict) -> dict:
    """`result` with each row's `target_ok` taken from `checked` (an eval with --check-targets), matched by id."""
    verdicts = {r["id"]: r["target_ok"] for r in checked["per_row"] if r.get("target_ok") is not None}
    return {**result, "per_row": [{**r, "target_ok": verdicts[r["id"]]} if r["id"] in verdicts else r
                                  for r in result["per_row"]]}


def join(parts: list[dict]) -> dict:
    """One result over the rows of `parts` in order (a prefix cut by its budget, then the rest of the sample)."""
    rows = [row for part in parts for row in part["per_row"]]
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit("the parts share rows: join an interrupted eval with the eval of the rows it did not reach")
    passed = sum(row["greedy_ok"] for row in rows)
    first = parts[0]
    return {"split": first.get("split"), "weights": first.get("weights"), "backend": first.get("backend"),
            "rows": len(rows), "passed": passed, "pass@1_greedy": passed / len(rows) if rows else 0.0,
            "joined_from": [{"data": p.get("data"), "rows": len(p["per_row"]), "interrupted": p.get("interrupted")}
                            for p in parts],
            "per_row": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="two results to compare; with --join, the parts in order")
    ap.add_argument("--names", nargs=2, default=("a", "b"))
    ap.add_argument("--join", metavar="OUT", help="write the parts joined as one result to OUT instead")
    ap.add_argument("--targets", metavar="CHECKED.json", help="the rows' target verdicts from an eval with "
                    "--check-targets on the same rows")
    args = ap.parse_args(argv)
    loaded = []
    for path in args.results:
        with open(path) as f:
            loaded.append(json.load(f))
    if args.join:
        joined = join(loaded)
        with open(args.join, "w") as f:
            json.dump(joined, f, indent=1)
        print(f"{args.join}: {joined['passed']}/{joined['rows']} over {len(loaded)} parts")
        return
    if len(loaded) != 2:
        ap.error("compare two results (or --join OUT PART...)")
    if args.targets:
        with open(args.targets) as f:
            checked = json.load(f)
        loaded = [with_targets(res, checked) for res in loaded]
    r = paired(*loaded)
    na, nb, n = *args.names, r["rows"]
    print(f"{n} rows: {na} {r['pass_a']}/{n} = {r['pass_a'] / n:.3f}, {nb} {r['pass_b']}/{n} = {r['pass_b'] / n:.3f}")
    print(f"only {na} passes {r['only_a']} {dict(r['only_a_families'])}; only {nb} passes {r['only_b']} "
          f"{dict(r['only_b_families'])}; two-sided sign test p = {r['p']:.3g}")
    if posed := well_posed(*loaded):
        w = paired(*posed)
        m = w["rows"]
        print(f"well-posed rows {m} of {n}: {na} {w['pass_a']}/{m} = {w['pass_a'] / m:.3f}, {nb} {w['pass_b']}/{m} = "
              f"{w['pass_b'] / m:.3f}; only {na} passes {w['only_a']}, only {nb} passes {w['only_b']}; "
              f"sign test p = {w['p']:.3g}")


if __name__ == "__main__":
    main()
