"""Where a CUDA verification's time goes, measured in process with the verifier's own case runner.

    python3 scripts/verify_cost.py --data DATA [--split valid_random] [--n 6] [--json OUT]

For N units of the split (`read_split`'s seeded sample), the compiler's module of each row (the kernels the LLM is
trained to write) is loaded by `p2t_core.verify.worker.CaseRunner` as in a worker, and the unit's float32 cases
(`build_cases`, seed 0, the ones `verify` would run) are run twice in a row. Per pass it reports the seconds of
the cases (GPU synchronized), how many `triton.compile` calls they made and the seconds inside them (a call
that finds its kernel in Triton's cache returns in milliseconds; a miss compiles). The first pass is what one
verification pays in a warm worker; the second shows the cases without compiling.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time

import torch
import triton.compiler

from p2t_core.llm.evaluate import read_split, row_reference, row_signature, row_unit
from p2t_core.verify import DEFAULT_TOLERANCES, cases_job
from p2t_core.verify.cases import build_cases
from p2t_core.verify.worker import CaseRunner


def count_compiles() -> dict:
    """Count `triton.compile` calls and their seconds from now on (JITFunction's binder imports it from the package
    when a kernel is first launched); the returned dict is updated in place."""
    compiles = {"n": 0, "s": 0.0}
    compile_ = triton.compiler.compile

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return compile_(*args, **kwargs)
        finally:
            compiles["n"] += 1
            compiles["s"] += time.perf_counter() - t0

    triton.compiler.compile = timed
    return compiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid_random")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--profile-precompile", action="store_true",
                    help="first compile each unit's kernels ahead (CaseRunner.precompile) under cProfile")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    json_out = args.json_out and os.path.abspath(args.json_out)  # each unit runs in its own working directory
    compiles = count_compiles()
    units = []
    for row in read_split(args.data, args.split, limit=args.n):
        unit = row_unit(row)
        sig = row_signature(row, unit)
        reference = row_reference(row)
        cases = [c.to_dict() for c in build_cases(sig, ("float32",), None, 0, True)]
        job = {**cases_job(reference, row["target"], sig, "cuda", DEFAULT_TOLERANCES, 0), "cases": cases}
        rec = {"unit": unit, "family": row.get("family"), "cases": len(cases)}
        with tempfile.TemporaryDirectory() as work:
            os.chdir(work)  # the runner writes reference.py and candidate.py to its working directory
            runner = CaseRunner(job, lambda **event: None)
            t0 = time.perf_counter()
            error = runner.load()
            rec["load_s"] = time.perf_counter() - t0
            if error:
                rec["error"] = error
                units.append(rec)
                continue
            if args.profile_precompile:  # where the dry run's time goes (cProfile, cumulative)
                profile = cProfile.Profile()
                profile.enable()
                rec["precompile"] = runner.precompile(cases)
                profile.disable()
                print(unit, json.dumps(rec["precompile"]))
                pstats.Stats(profile).sort_stats("cumulative").print_stats(18)
            for name in ("first", "again"):
                compiles.update(n=0, s=0.0)
                t0 = time.perf_counter()
                statuses = [runner.run(case).get("status") for case in cases]
                torch.cuda.synchronize()
                rec[name] = {"s": time.perf_counter() - t0, "compiles": compiles["n"], "compile_s": compiles["s"],
                             "passed": statuses.count("pass")}
        units.append(rec)
        f, a = rec["first"], rec["again"]
        print(f"{unit:32s} {len(cases)} cases  load {rec['load_s']:.2f} s  first {f['s']:.2f} s "
              f"({f['compiles']} compiles, {f['compile_s']:.2f} s)  again {a['s']:.2f} s ({a['compiles']} compiles, "
              f"{a['compile_s']:.2f} s)  {f['passed']}/{len(cases)} pass", flush=True)
    done = [u for u in units if "first" in u]
    summary = {"units": units, "median_first_s": statistics.median(u["first"]["s"] for u in done),
               "median_first_compile_s": statistics.median(u["first"]["compile_s"] for u in done),
               "median_again_s": statistics.median(u["again"]["s"] for u in done)}
    print(json.dumps({k: v for k, v in summary.items() if k != "units"}, indent=2))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
