#!/usr/bin/env python3
"""Do L2 eviction hints speed up p2t's row and split reductions (issue 3)? Inductor marks the loads a reduction
streams once `evict_first` and the loads it reuses (a broadcast vector) `evict_last`.

    python3 scripts/gpu_eviction_probe.py --out DIR [--only matvec,row_sum] [--rounds 3]
    TRITON_INTERPRET=1 python3 scripts/gpu_eviction_probe.py --tiny --out DIR      # CPU: the code paths only

Each unit of the bench suite is translated once; each variant edits the generated kernels' `tl.load(...)` calls
and nothing else: `generated` (as the compiler writes them: since this probe, hints on matvec-like reductions),
`none` (no hints), `first` (every load `evict_first`), `first_last` (`evict_first`, but `evict_last` on the loads of
the inputs the unit broadcasts over its rows). Every variant's output is checked
against eager, then the variants are timed the bench's way (do_bench median, warm-up 25 ms, rep 100 ms) in
`--rounds` interleaved rounds, beside torch.compile. Writes DIR/eviction.json and DIR/eviction.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile

import gpu_kernel_sweep as sweep  # scripts/ is sys.path[0] when this file runs as a script

# bench unit -> (tiny CPU shapes, kernel pointer prefixes of the inputs it broadcasts over its rows)
UNITS = {
    "matvec_8192_fp16": ({"a": (37, 100), "v": (100,)}, ("In1_",)),
    "row_sum_8192x8192_fp32": ({"x": (37, 100)}, ()),
    "mean_sq_8192x8192_fp32": ({"x": (37, 100)}, ()),
    "col_sum_8192x8192_fp32": ({"x": (67, 300)}, ()),
    "softmax_8192x8192_bf16": ({"x": (37, 100)}, ()),
    "smooth_l1_loss_bf16": ({"pred": (5001,), "target": (5001,)}, ()),
}
LOAD = re.compile(r"tl\.load\((\w+)")


HINT = re.compile(r', eviction_policy="\w+"')


def with_hints(source: str, variant: str, broadcast: tuple[str, ...]) -> str:
    """The module with an eviction policy on each kernel load of an input pointer (partials left alone)."""
    if variant == "generated":
        return source
    source = HINT.sub("", source)
    if variant == "none":
        return source

    def hint(match: re.Match) -> str:
        ptr = match.group(1)
        if not ptr.startswith("In"):
            return match.group(0)
        last = variant == "first_last" and ptr.startswith(broadcast)
        return f'tl.load(eviction_policy="{"evict_last" if last else "evict_first"}", pointer={ptr}'

    out = []
    for line in source.splitlines(keepends=True):
        # tl.load(ptr, mask=...) takes its pointer positionally: name it once a keyword comes first
        out.append(LOAD.sub(hint, line) if "tl.load(" in line else line)
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "eviction_out"))
    ap.add_argument("--only", help="comma-separated substrings of unit names")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="CPU under TRITON_INTERPRET=1: the code paths only")
    args = ap.parse_args()
    sweep.import_from_source_tree()
    import torch

    from p2t_core.bench.harness import load_module
    from p2t_core.bench.suite import get_suite
    from p2t_core.engine import compile_units

    if not args.tiny and not torch.cuda.is_available():
        ap.error("no CUDA device; use --tiny on CPU")
    device = "cpu" if args.tiny else "cuda"
    os.makedirs(args.out, exist_ok=True)
    lines, results = [], []

    def echo(text):
        print(text, flush=True)
        lines.append(text)

    def timed(fn):
        if args.tiny:
            return sweep.time_ms(fn, device)
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))

    with tempfile.TemporaryDirectory(prefix="p2t-eviction-") as workdir:  # the loaded modules' files
        for u in get_suite():
            if u.name not in UNITS or (args.only and not any(p in u.name for p in args.only.split(","))):
                continue
            tiny_shapes, broadcast = UNITS[u.name]
            shapes = tiny_shapes if args.tiny else u.shapes
            inputs = [torch.randn(s, device=device, dtype=getattr(torch, u.dtype)) for s in shapes.values()]
            namespace = {}
            exec(u.source, namespace)
            reference = namespace[u.unit]
            expected = reference(*inputs)
            source = compile_units(u.source, f"{u.name}.py", unit=u.unit, shapes=shapes).units[0].module_source
            calls, errors = {}, {}
            for variant in ("generated", "none", "first", "first_last"):
                module = load_module(with_hints(source, variant, broadcast), f"evict_{u.name}_{variant}", workdir)
                fn = getattr(module, u.unit)
                out = fn(*inputs)
                err = errors[variant] = sweep.rel_error(out, expected)
                echo(f"{u.name:32s} {variant:12s} rel err {err:.1e}")
                calls[variant] = lambda fn=fn, inputs=inputs: fn(*inputs)
            if not args.tiny:
                compiled = torch.compile(reference)
                compiled(*inputs)
                calls["torch.compile"] = lambda compiled=compiled, inputs=inputs: compiled(*inputs)
            samples = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    samples[name].append(timed(call))
            medians = {name: statistics.median(v) for name, v in samples.items()}
            row = {"unit": u.name, "ms": medians, "samples": samples, "rel_error": errors}
            results.append(row)
            echo(f"{u.name:32s} " + "  ".join(f"{n} {ms:.4f}" for n, ms in row["ms"].items()))
            with open(os.path.join(args.out, "eviction.json"), "w") as f:
                json.dump({"device": device, "rounds": args.rounds, "units": results}, f, indent=1)
            with open(os.path.join(args.out, "eviction.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
