"""The compiler's differential corpus (tests/compiler/corpus.py) verified on one backend, in one call.

    python3 scripts/gpu_corpus.py [--backend cuda] [--jobs 8] [--json OUT/corpus_cuda.json] [--limit N] [--skip F]

Each unit is translated, then verified against its own Python with the same shapes and dtypes as
tests/compiler/test_corpus.py, in the verifier's worker processes (`--jobs` at a time: the workers spend most
of their time starting up and compiling, so several share one GPU well). Prints one line per unit and the pass
counts; with `--json`, writes every report. Known-broken units (`KNOWN_BROKEN`) are run and counted apart.
On a CPU machine `--backend interpret --limit 5` is a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `tests.compiler.corpus`

from tests.compiler import test_corpus as tc  # noqa: E402
from tests.compiler.corpus import CORPUS, KNOWN_BROKEN  # noqa: E402


def run_case(case, backend: str) -> dict:
    t0 = time.perf_counter()
    try:
        unit = tc.translate(case)
    except Exception as e:  # noqa: BLE001 - a refusal or crash is this unit's result
        return {"name": case.name, "passed": False, "stage": "translate", "error": f"{type(e).__name__}: {e}"}
    report = tc.case_report(case, unit, backend)
    failed = [c for c in report.cases if c.status == "fail"]
    return {"name": case.name, "passed": report.passed, "stage": "verify", "kernels": unit.n_kernels,
            "cases": len(report.cases), "failed_cases": len(failed), "seconds": round(time.perf_counter() - t0, 2),
            "first_failure": failed[0].message if failed else (report.error or ""), "known_broken": False}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cuda", choices=["cuda", "interpret", "aot"])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--limit", type=int, default=0, help="only the first N units (a smoke test)")
    ap.add_argument("--skip", type=Path, help="a file of unit names (one per line) not to run again, e.g. those "
                    "an earlier, cut-off run already passed")
    args = ap.parse_args()
    skip = set(args.skip.read_text().split()) if args.skip else set()
    cases = [c for c in CORPUS if c.name not in skip]
    cases = cases[: args.limit] if args.limit else cases
    if skip:
        print(f"skipping {len(CORPUS) - len(cases)} units named in {args.skip}", flush=True)
    t0 = time.perf_counter()
    results = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_case, c, args.backend): c for c in cases}
        for f in as_completed(futures):
            r = f.result()
            r["known_broken"] = r["name"] in KNOWN_BROKEN
            results.append(r)
            status = "PASS" if r["passed"] else "FAIL"
            print(f"{status} {r['name']} {r.get('seconds', '')} {r.get('first_failure') or r.get('error') or ''}"[:300],
                  flush=True)
    results.sort(key=lambda r: r["name"])
    known = [r for r in results if r["known_broken"]]
    rest = [r for r in results if not r["known_broken"]]
    summary = {"backend": args.backend, "units": len(results), "passed": sum(r["passed"] for r in rest),
               "failed": [r["name"] for r in rest if not r["passed"]], "known_broken": len(known),
               "known_broken_passed": [r["name"] for r in known if r["passed"]],
               "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "results": results}, indent=2) + "\n")
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
