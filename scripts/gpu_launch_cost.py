#!/usr/bin/env python3
"""Where a translated module's host time per call goes (issue 3): the launcher's Python against Triton's launch.

    python3 scripts/gpu_launch_cost.py [--out DIR] [--calls 2000] [--only row_sum,smooth_l1]
    TRITON_INTERPRET=1 python3 scripts/gpu_launch_cost.py --tiny --out DIR     # CPU: the code paths only

On the H200 the bench's host-bound units spent 70-126 us of host time per call against ~70 us of kernels. For each
such unit, translated from the bench's source but run at small shapes (kernels of a few microseconds, so the host
alone sets the pace), this script measures, per call, with `perf_counter` over many calls:

1. the whole module;
2. each kernel launch the module makes, replayed with the same arguments three ways:
   - `kernel[grid](*args, **meta)`: Triton's JITFunction (argument binding, specialization, cache lookup);
   - `compiled[grid](*args)`: the CompiledKernel that launch returned (what a launcher caching it would call);
   - `compiled.run(...)`: that kernel's C launcher alone;
3. the time of a pure-Python specialization key over the launch's arguments (what a launcher caching compiled
   kernels would have to compute on every call to stay correct: dtypes, 16-byte alignment, ints equal to 1);
4. cProfile of the module's calls: the functions with the most own time.

Writes DIR/launch_cost.json and DIR/launch_cost.txt. Runs from the source tree on the GPU machine, like the sweep.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time

import gpu_kernel_sweep as sweep  # scripts/ is sys.path[0] when this file runs as a script

UNITS = {  # bench unit -> small shapes (the kernels take a few microseconds on an H200)
    "row_sum_8192x8192_fp32": {"x": (64, 512)},
    "smooth_l1_loss_bf16": {"pred": (100_000,), "target": (100_000,)},
    "col_sum_8192x8192_fp32": {"x": (512, 256)},
    "rmsnorm_16384x4096_bf16": {"x": (64, 512)},
    "softmax_65536x1024_bf16": {"x": (64, 512)},
    "matvec_8192_fp16": {"a": (256, 256), "v": (256,)},
    "matmul_1024_fp16": {"a": (128, 128), "b": (128, 128)},
    "bmm_32x512_fp16": {"a": (4, 64, 64), "b": (4, 64, 64)},
}


class Recorder:
    """Stands in for a module's @triton.jit kernel: launches it and keeps each launch's grid, arguments and result."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.launches = []

    def __getitem__(self, grid):
        def launch(*args, **meta):
            compiled = self.kernel[grid](*args, **meta)
            self.launches.append((grid, args, meta, compiled))
            return compiled

        return launch


def spec_key(args):
    """What Triton specializes a launch on, computed in Python: tensors by dtype and 16-byte alignment, ints by
    being 1, by divisibility by 16 and by width."""
    import torch

    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            key.append((a.dtype, a.data_ptr() % 16 == 0))
        elif type(a) is int:
            key.append((a == 1, a % 16 == 0, -2**31 <= a < 2**31))
        else:
            key.append(type(a))
    return tuple(key)


def positional(kernel, args, meta) -> list:
    """The launch's arguments in the kernel's parameter order, constexprs included (what CompiledKernel.run takes)."""
    names = kernel.arg_names
    return list(args) + [meta[n] for n in names[len(args):]]


def launch_cost(kernel, grid, args, meta, compiled, calls: int, device: str) -> dict:
    """Host us per launch of one recorded launch, replayed through each path."""
    import torch

    grid3 = tuple(grid) + (1,) * (3 - len(grid))
    row = {"kernel": kernel.fn.__name__, "grid": grid3, "args": len(args) + len(meta),
           "jit_us": sweep.per_call_us(lambda: kernel[grid](*args, **meta), calls, device),
           "spec_key_us": sweep.per_call_us(lambda: spec_key(args), calls, "cpu")}
    if device == "cuda" and compiled is not None:
        full = positional(kernel, args, {k: v for k, v in meta.items() if not k.startswith("num_")})
        row["compiled_us"] = sweep.per_call_us(lambda: compiled[grid3](*full), calls, device)
        stream = torch.cuda.current_stream().cuda_stream
        run, function, packed = compiled.run, compiled.function, compiled.packed_metadata
        row["run_us"] = sweep.per_call_us(
            lambda: run(grid3[0], grid3[1], grid3[2], stream, function, packed, None, None, None, *full), calls, device)
    return row


def measure_unit(bench, shapes, args, workdir) -> dict:
    import torch

    from p2t_core.bench.harness import UnitInputs, load_module
    from p2t_core.engine import compile_units

    device = "cpu" if args.tiny else "cuda"
    unit = compile_units(bench.source, f"{bench.name}.py", unit=bench.unit, shapes=shapes).units[0]
    module = load_module(unit.module_source, f"cost_{bench.name}", workdir)
    inputs = UnitInputs(unit.signature, shapes, getattr(torch, bench.dtype), device)
    fn = inputs.instance(getattr(module, bench.unit))
    call_args = inputs.args()
    calls = 3 if args.tiny else args.calls
    module_us = sweep.per_call_us(lambda: fn(*call_args), calls, device)
    result = {"unit": bench.name, "shapes": shapes, "module_us": module_us}
    recorders = {}
    for name in dir(module):
        if name.endswith("_kernel") and hasattr(getattr(module, name), "arg_names"):
            recorders[name] = Recorder(getattr(module, name))
            setattr(module, name, recorders[name])
    fn(*call_args)
    result["launches"] = [launch_cost(r.kernel, *launch, calls, device) for r in recorders.values()
                          for launch in r.launches[:1]]  # each kernel's first launch of the call
    for name, r in recorders.items():
        setattr(module, name, r.kernel)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn(*call_args)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(14)
    result["profile"] = text.getvalue()[-4000:]
    return result


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "launch_cost_out"))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--only", help="comma-separated substrings of unit names")
    parser.add_argument("--tiny", action="store_true", help="CPU under TRITON_INTERPRET=1: the code paths only")
    args = parser.parse_args()
    if args.tiny and os.environ.get("TRITON_INTERPRET") != "1":
        parser.error("--tiny runs the kernels under the interpreter: set TRITON_INTERPRET=1")
    sweep.import_from_source_tree()
    import torch

    from p2t_core.bench.suite import get_suite

    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device; use --tiny on CPU")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    selected = [b for b in get_suite() if b.name in UNITS and (not args.only or any(p in b.name for p in
                                                                                  args.only.split(",")))]
    results, lines = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for bench in selected:
            r = measure_unit(bench, UNITS[bench.name], args, workdir)
            results.append(r)
            lines.append(f"{r['unit']} {r['shapes']}: module {r['module_us']:.1f} us/call")
            for k in r["launches"]:
                parts = [f"{label} {k[key]:.1f}" for label, key in (("jit", "jit_us"), ("compiled", "compiled_us"),
                                                                     ("run", "run_us"), ("spec key", "spec_key_us"))
                         if key in k]
                lines.append(f"  {k['kernel']} grid {k['grid']} ({k['args']} args): " + ", ".join(parts) + " us")
            lines.append(r["profile"])
            print("\n".join(lines[-len(r["launches"]) - 2:]), flush=True)
    meta = {"torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu",
            "cpu": cpu_model()}
    with open(os.path.join(args.out, "launch_cost.json"), "w") as f:
        json.dump({"meta": meta, "units": results}, f, indent=1)
    with open(os.path.join(args.out, "launch_cost.txt"), "w") as f:
        f.write(json.dumps(meta) + "\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
