#!/usr/bin/env python3
"""Why `p2t bench` and scripts/gpu_kernel_sweep.py time the same translated kernels differently (issue 3).

    python3 scripts/gpu_timing_probe.py [--out DIR] [--only matvec,col_sum] [--budget 180] [--no-compile]
    TRITON_INTERPRET=1 python3 scripts/gpu_timing_probe.py --tiny --out DIR     # CPU: the code paths only

On an H200 the two tools disagreed by up to 2.8x, in both directions, on the same sources, shapes and dtypes. For
each weak unit of the bench suite this script translates the unit once and times that one module:

1. bench order: the bench's own sequence (harness._Unit.run): its inputs, the eager and p2t agreement calls,
   torch.compile's first call, then harness.time_fn on p2t, eager and torch.compile (its rotating closure, under
   torch.no_grad);
2. sweep order: the sweep's sequence (gpu_kernel_sweep.sweep_unit): fresh torch.randn inputs, grad mode on, eager,
   torch.compile (its first call here is a grad-mode recompilation), the sweep's host_us and graph_ms on memory
   units, then p2t from a cleared matmul tuning table, each through the sweep's time_ms (do_bench warmup 10, rep 40);
3. settled: both methods again, alternating, with every do_bench sample kept (spread, first against last quarter);
4. diagnostics of p2t, eager and torch.compile: kernel-only time per call from torch.profiler (each kernel's name,
   grid, block, registers, shared memory), CUDA-graph replay, host time of one call, calls queued back to back
   without the L2 flush; and, once, the GPU time of do_bench's L2 flush (a 256 MB memset ahead of every timed call:
   host time beyond it lands inside do_bench's timed window);
5. for matvec and tall-skinny, the sweep's winning launch configurations, timed the bench's way.

Every timing row carries its seconds since torch.compile's first call returned, the median host time of a call
during the timing, the CPU cores other processes kept busy meanwhile (inductor's compile workers) and an nvidia-smi
sample taken while it ran (clocks, power, throttle reasons): enough to tell a method from a state of the machine.

Writes DIR/probe.json and DIR/probe.txt (rewritten after each unit, so a cut-off run keeps what it measured);
DIR defaults to $OUT, else ./probe_out. Like the sweep, it runs from the source tree on the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict

import gpu_kernel_sweep as sweep  # scripts/ is sys.path[0] when this file runs as a script

# The bench's weak units, the largest bench/sweep disagreements first (a budget cut drops the tail).
WEAK_UNITS = ("matvec_8192_fp16", "smooth_l1_loss_bf16", "col_sum_8192x8192_fp32", "tall_skinny_65536x1024x64_fp16",
              "rmsnorm_16384x4096_bf16", "softmax_8192x8192_bf16", "softmax_65536x1024_bf16",
              "row_sum_8192x8192_fp32", "mean_sq_8192x8192_fp32")
# The sweep's winners where it disagreed most with the bench (4 warps "beat" the default 8 by 2.6x; the tile that
# matched the bench's tall-skinny time), re-timed the bench's way next to the default.
VARIANTS = {"matvec_8192_fp16": {"single_4w": sweep.row_config(*sweep.MATVEC_VARIANTS["single_4w"])},
            "tall_skinny_65536x1024x64_fp16": {"64x64x64x4x4": sweep.mm_config(64, 64, 64, 4, 4)}}
BENCH_ARGS = {"warmup": 25, "rep": 100}  # harness.time_fn's do_bench arguments
SWEEP_ARGS = {"warmup": 10, "rep": 40}  # gpu_kernel_sweep.time_ms's
PROFILED_CALLS = 10
GPU_CATEGORIES = ("kernel", "gpu_memset", "gpu_memcpy")
SMI_FIELDS = ("clocks.sm", "clocks.mem", "power.draw", "temperature.gpu", "clocks_event_reasons.active")


# -- the machine's state while a timing runs ----------------------------------------------------------------------

def cpu_counters():
    """(busy jiffies of the machine, jiffies of this process, wall seconds), or None without /proc."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(cpu) - cpu[3] - cpu[4], int(own[11]) + int(own[12]), time.perf_counter()  # all but idle, iowait


def other_cores(before, after) -> float | None:
    """CPU cores that other processes (compile workers, ...) kept busy between two cpu_counters()."""
    if before is None or after is None or after[2] - before[2] < 0.05:  # jiffies are 10 ms: too coarse below
        return None
    jiffies = max(0, (after[0] - before[0]) - (after[1] - before[1]))  # the two files are read apart: noise
    return round(jiffies / os.sysconf("SC_CLK_TCK") / (after[2] - before[2]), 2)


def smi_start(device: str, fields=SMI_FIELDS):
    """An nvidia-smi query started now; it lands inside the timing that follows (read it with smi_read)."""
    if device != "cuda":
        return None
    try:
        return subprocess.Popen(["nvidia-smi", "-i", "0", "--query-gpu=" + ",".join(fields),
                                 "--format=csv,noheader,nounits"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def smi_read(proc, fields=SMI_FIELDS) -> dict | None:
    if proc is None:
        return None
    out, _ = proc.communicate(timeout=30)
    values = [v.strip() for v in out.strip().split(",")]
    return dict(zip(fields, values, strict=True)) if proc.returncode == 0 and len(values) == len(fields) else None


def smi_fields(device: str) -> tuple[str, ...]:
    """SMI_FIELDS, less the throttle reasons where the driver predates their name (nvidia-smi then fails whole)."""
    return SMI_FIELDS if device != "cuda" or smi_read(smi_start(device)) is not None else SMI_FIELDS[:-1]


# -- timers ---------------------------------------------------------------------------------------------------------

def do_bench_samples(fn, device: str, warmup: int, rep: int) -> list[float]:
    """Every timed call of do_bench (its median is what the tool reports); on CPU three perf_counter runs."""
    if device == "cuda":
        from triton.testing import do_bench

        return [float(t) for t in do_bench(fn, warmup=warmup, rep=rep, return_mode="all")]
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def spread(samples: list[float]) -> dict:
    """Quantiles of the samples, and the medians of their first and last quarters (a drift within the timing)."""
    ordered = sorted(samples)
    quarter = max(1, len(samples) // 4)
    return {"n": len(samples), "min": ordered[0], "p10": ordered[len(ordered) // 10],
            "p90": ordered[(9 * len(ordered)) // 10], "max": ordered[-1],
            "first_quarter": statistics.median(samples[:quarter]),
            "last_quarter": statistics.median(samples[-quarter:])}


def event_ms(fn) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def back_to_back_ms(fn, calls: int = 50) -> float:
    """Per call, calls queued back to back without a flush: max(host, GPU) per call once launches pipeline."""
    import torch

    fn()
    torch.cuda.synchronize()

    def loop():
        for _ in range(calls):
            fn()

    return event_ms(loop) / calls


def gpu_events(fn, calls: int, flush=None) -> list[dict]:
    """The GPU activities (kernels, memsets, copies) of `calls` calls of fn, from a torch.profiler trace."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            if flush is not None:
                flush()
            fn()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    return [e for e in events if e.get("cat") in GPU_CATEGORIES]


def kernel_profile(fn, flush: dict) -> dict:
    """Kernel-only milliseconds per call (do_bench's flush ahead of each call, its kernels left out) and each
    kernel: launches per call, microseconds per launch, grid, block, registers, shared memory."""
    events = gpu_events(fn, PROFILED_CALLS, flush["call"])
    kernels: dict[str, dict] = {}
    for e in events:
        if e["name"] in flush["kernels"]:
            continue
        args = e.get("args", {})
        k = kernels.setdefault(e["name"], {"name": e["name"][:160], "kind": e["cat"], "launches": 0, "total_us": 0.0,
                                           "grid": args.get("grid"), "block": args.get("block"),
                                           "registers": args.get("registers per thread"),
                                           "shared_memory": args.get("shared memory")})
        k["launches"] += 1
        k["total_us"] += float(e.get("dur", 0.0))
    listed = [{**{k: v for k, v in kernel.items() if k not in ("launches", "total_us")},
               "launches_per_call": kernel["launches"] / PROFILED_CALLS,
               "us_per_launch": round(kernel["total_us"] / kernel["launches"], 2)} for kernel in kernels.values()]
    total_us = sum(kernel["total_us"] for kernel in kernels.values())
    return {"kernel_ms": total_us / PROFILED_CALLS / 1e3, "kernels": listed}


def measure_flush(device: str) -> dict:
    """do_bench's L2 flush: its GPU time and kernel names, and a callable running it (CUDA only)."""
    if device != "cuda":
        return {"call": None, "kernels": [], "us": None}
    from triton import runtime

    driver = runtime.driver.active
    cache = driver.get_empty_cache_for_benchmark()

    def call():
        driver.clear_cache(cache)

    call()
    us = statistics.median(event_ms(call) for _ in range(20)) * 1e3
    return {"call": call, "kernels": sorted({e["name"] for e in gpu_events(call, 1)}), "us": round(us, 2)}


# -- one unit -------------------------------------------------------------------------------------------------------

def tuning_picks(module) -> list:
    """The matmul autotuner's choices (empty for modules without a matmul, or before tuning finished)."""
    return [list(v["best"]) for v in getattr(module, "_P2T_TUNING", {}).values() if "best" in v]


class Rows:
    """The timing rows of one unit, each with the state of the machine while it ran."""

    def __init__(self, unit: str, moved: int, copy_gbps: float | None, opts, echo):
        self.unit, self.moved, self.copy_gbps, self.opts, self.echo = unit, moved, copy_gbps, opts, echo
        self.t0 = time.perf_counter()  # reset when torch.compile's first call returns
        self.rows: list[dict] = []

    def rates(self, ms: float | None) -> dict:
        if not ms or ms <= 0:
            return {"gbps": None, "frac": None}
        gbps = self.moved / (ms * 1e-3) / 1e9
        return {"gbps": round(gbps, 1), "frac": round(gbps / self.copy_gbps, 3) if self.copy_gbps else None}

    def time(self, phase: str, impl: str, method: str, fn, timer) -> dict:
        """timer(fn) gives milliseconds or a list of samples. The bench times under torch.no_grad, the sweep with
        grad mode on: `method` picks which."""
        import torch

        host: list[float] = []

        def call():
            start = time.perf_counter()
            out = fn()
            host.append(time.perf_counter() - start)
            return out

        row = {"phase": phase, "impl": impl, "method": method, "t_s": round(time.perf_counter() - self.t0, 2)}
        smi, cpu = smi_start(self.opts.device, self.opts.smi_fields), cpu_counters()
        try:
            with torch.set_grad_enabled(method == "sweep"):
                result = timer(call)
        except Exception as e:  # a failed timing (e.g. a recompilation error) is a row, not a dead probe
            result, row["error"] = None, f"{type(e).__name__}: {str(e)[:300]}"
        row["other_cores"], row["gpu"] = other_cores(cpu, cpu_counters()), smi_read(smi, self.opts.smi_fields)
        if isinstance(result, list):
            row["ms"], row["spread"] = statistics.median(result), spread(result)
        else:
            row["ms"] = result
        row["host_us"] = round(statistics.median(host) * 1e6, 1) if host else None
        row.update(self.rates(row["ms"]))
        self.rows.append(row)
        self.echo(format_row(self.unit, row))
        return row


def probe_unit(u, opts, copy_gbps: float | None, flush: dict, workdir: str, echo) -> dict:
    import torch

    from p2t_core.bench.harness import UnitInputs, load_module, nbytes, rel_error, rotating, time_fn
    from p2t_core.engine import compile_units

    device, tiny = opts.device, opts.tiny
    shapes = u.tiny_shapes if tiny else u.shapes
    dtype = getattr(torch, u.dtype)
    result: dict = {"unit": u.name, "dtype": u.dtype, "kind": u.kind, "shapes": {k: list(v) for k, v in shapes.items()},
                    "status": "ok", "errors": {}, "tuning": {}}
    start = time.perf_counter()
    translated = compile_units(u.source, f"{u.name}.py", unit=u.unit, shapes=shapes, autotune=True).units[0]
    result["translate_s"], result["module_kernels"] = round(time.perf_counter() - start, 2), translated.n_kernels
    sig = translated.signature
    ref_module = load_module(u.source, f"probe_{u.name}_ref", workdir)
    p2t_module = load_module(translated.module_source, f"probe_{u.name}_p2t", workdir)
    inputs = UnitInputs(sig, shapes, dtype, device)  # as the bench builds them: one set, every probed unit's
    args, module_tensors = inputs.args(), inputs.module_tensors  # inputs exceed the L2 (the bench rotates below it)
    ref_fn = inputs.instance(getattr(ref_module, u.unit))
    p2t_fn = inputs.instance(getattr(p2t_module, u.unit))
    bench_time = lambda fn: time_fn(fn, device, tiny)  # noqa: E731
    sweep_time = lambda fn: sweep.time_ms(fn, device)  # noqa: E731
    bench_samples = lambda fn: do_bench_samples(fn, device, **BENCH_ARGS)  # noqa: E731
    sweep_samples = lambda fn: do_bench_samples(fn, device, **SWEEP_ARGS)  # noqa: E731
    result["gpu_before"] = smi_read(smi_start(device, opts.smi_fields), opts.smi_fields)

    # 1. the bench's order: agreement calls, torch.compile's first call, then p2t, eager, compile
    compiled_fn = None
    with torch.no_grad():
        ref_out = ref_fn(*args)
        p2t_out = p2t_fn(*args)
        result["errors"]["p2t"] = rel_error(p2t_out, ref_out)[0]
        moved = nbytes(args) + nbytes([t for _, t in module_tensors]) + nbytes([ref_out])
        result["bytes"] = moved
        if not opts.no_compile:
            compiled_fn = torch.compile(ref_fn, backend=opts.compile_backend)
            start = time.perf_counter()
            compile_out = compiled_fn(*args)
            if device == "cuda":
                torch.cuda.synchronize()
            result["compile_s"] = round(time.perf_counter() - start, 2)
            result["errors"]["compile"] = rel_error(compile_out, ref_out)[0]
        del ref_out, p2t_out
    rows = Rows(u.name, moved, copy_gbps, opts, echo)
    impls = [("p2t", p2t_fn), ("eager", ref_fn)] + ([("compile", compiled_fn)] if compiled_fn is not None else [])
    for impl, fn in impls:
        rows.time("bench_order", impl, "bench", rotating(fn, [args]), bench_time)
    result["tuning"]["bench"] = tuning_picks(p2t_module)

    # 2. the sweep's order: its inputs, grad mode on, eager, compile, [host_us, graph_ms], p2t from a fresh table
    sweep_args = [torch.randn(s, device=device, dtype=dtype) for s in shapes.values()]
    sweep_ref = ref_fn(*sweep_args)
    rows.time("sweep_order", "eager", "sweep", lambda: ref_fn(*sweep_args), sweep_time)
    if compiled_fn is not None:  # (an OptimizedModule's truth value asks the Module for its len())
        start = time.perf_counter()
        compiled_fn(*sweep_args)  # grad mode fails the guards of the no_grad graph: a recompilation
        result["grad_mode_recompile_s"] = round(time.perf_counter() - start, 2)
        rows.time("sweep_order", "compile", "sweep", lambda: compiled_fn(*sweep_args), sweep_time)
    sweep_p2t = lambda: p2t_fn(*sweep_args)  # noqa: E731
    getattr(p2t_module, "_P2T_TUNING", {}).clear()
    if u.kind == "memory" and u.unit != "matmul":  # the sweep runs these two before timing its default
        result["sweep_host_us"], result["sweep_graph_ms"] = sweep.host_us(sweep_p2t, device), sweep.graph_ms(
            sweep_p2t, device)
    result["errors"]["p2t_sweep"] = rel_error(sweep_p2t(), sweep_ref)[0]
    rows.time("sweep_order", "p2t", "sweep", sweep_p2t, sweep_time)
    result["tuning"]["sweep"] = tuning_picks(p2t_module)

    # 3. settled: the two methods alternating (p2t twice each: a drift shows as unequal pairs)
    bench_calls = {impl: rotating(fn, [args]) for impl, fn in impls}
    sweep_calls = {impl: (lambda fn=fn: fn(*sweep_args)) for impl, fn in impls}
    for impl in ["p2t", "p2t", *(impl for impl, _ in impls[1:])]:
        rows.time("settled", impl, "bench", bench_calls[impl], bench_samples)
        rows.time("settled", impl, "sweep", sweep_calls[impl], sweep_samples)

    # 4. where the time goes, under the bench's conditions
    if device == "cuda":
        result["diagnostics"] = {}
        with torch.no_grad():
            for impl, call in bench_calls.items():
                d = kernel_profile(call, flush)
                d.update(rows.rates(d["kernel_ms"]))
                d["graph_ms"] = sweep.graph_ms(call, device)
                d["host_us"] = sweep.host_us(call, device)
                d["back_to_back_ms"] = back_to_back_ms(call)
                result["diagnostics"][impl] = d
    else:
        result["diagnostics"] = {"skipped": "CUDA only (profiler, CUDA graph, host overhead)"}

    # 5. the sweep's winners, the bench's way, then the default again
    variants = VARIANTS.get(u.name, {})
    for label, overrides in variants.items():
        saved = sweep.apply(p2t_module, overrides)
        try:
            with torch.no_grad():
                result["errors"][f"p2t[{label}]"] = rel_error(p2t_fn(*args), ref_fn(*args))[0]
                row = rows.time("variant", f"p2t[{label}]", "bench", bench_calls["p2t"], bench_time)
                if device == "cuda":
                    row["profile"] = kernel_profile(bench_calls["p2t"], flush)
        finally:
            for name, value in saved.items():
                setattr(p2t_module, name, value)
    if variants:
        rows.time("variant", "p2t", "bench", bench_calls["p2t"], bench_time)
    result["rows"] = rows.rows
    return result


# -- output ---------------------------------------------------------------------------------------------------------

def _num(value, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def format_row(unit: str, row: dict) -> str:
    head = f"{unit:32} {row['phase']:11} {row['impl']:18} {row['method']:5}"
    if "error" in row:
        return f"{head} {row['error']}"
    gpu = row.get("gpu")
    return (f"{head} {_num(row['ms'], '9.4f')} ms {_num(row['gbps'], '6.0f')} GB/s {_num(row['frac'], '5.2f')}  "
            f"t+{row['t_s']:.1f}s host {_num(row['host_us'], '.1f')} us, other cores {_num(row['other_cores'], '.1f')}"
            + (f", sm {gpu['clocks.sm']} MHz, {gpu['power.draw']} W" if gpu else ""))


def _ms(result: dict, phase: str, impl: str, method: str) -> str:
    """The milliseconds of the matching rows, in order ("a/b" for the repeated settled rows)."""
    key = (phase, impl, method)
    values = [r.get("ms") for r in result.get("rows", []) if (r["phase"], r["impl"], r["method"]) == key]
    return "/".join(_num(v, ".4f") for v in values) or "-"


def summary_lines(results: list[dict], flush: dict) -> list[str]:
    ok = [r for r in results if r["status"] == "ok"]
    lines = ["", f"p2t, ms per call (do_bench's L2 flush: {_num(flush['us'], '.1f')} us of GPU time before each timed "
                 "call; host time beyond it is timed too). frac: of the copy ceiling.",
             f"{'unit':32} {'bench order':>11} {'sweep order':>11} {'settled bench':>15} {'settled sweep':>15} "
             f"{'kernels':>8} {'graph':>8} {'queued':>8} {'host us':>8} {'frac kernels':>12}"]
    for r in ok:
        d = r["diagnostics"].get("p2t", {})
        lines.append(f"{r['unit']:32} {_ms(r, 'bench_order', 'p2t', 'bench'):>11} "
                     f"{_ms(r, 'sweep_order', 'p2t', 'sweep'):>11} "
                     f"{_ms(r, 'settled', 'p2t', 'bench'):>15} {_ms(r, 'settled', 'p2t', 'sweep'):>15} "
                     f"{_num(d.get('kernel_ms'), '.4f'):>8} {_num(d.get('graph_ms'), '.4f'):>8} "
                     f"{_num(d.get('back_to_back_ms'), '.4f'):>8} {_num(d.get('host_us'), '.1f'):>8} "
                     f"{_num(d.get('frac'), '.2f'):>12}")
    lines += ["", "eager and torch.compile, ms per call:",
              f"{'unit':32} {'impl':8} {'bench order':>11} {'sweep order':>11} {'settled bench':>13} "
              f"{'settled sweep':>13} {'kernels':>8}"]
    for r in ok:
        for impl in ("eager", "compile"):
            d = r["diagnostics"].get(impl, {})
            lines.append(f"{r['unit']:32} {impl:8} {_ms(r, 'bench_order', impl, 'bench'):>11} "
                         f"{_ms(r, 'sweep_order', impl, 'sweep'):>11} {_ms(r, 'settled', impl, 'bench'):>13} "
                         f"{_ms(r, 'settled', impl, 'sweep'):>13} {_num(d.get('kernel_ms'), '.4f'):>8}")
    lines += ["", "kernels per call (torch.profiler):"]
    for r in ok:
        profiles = [(impl, d) for impl, d in r["diagnostics"].items() if isinstance(d, dict)]
        profiles += [(row["impl"], row["profile"]) for row in r["rows"] if "profile" in row]
        for impl, d in profiles:
            for k in d["kernels"]:
                lines.append(f"{r['unit']:32} {impl:18} {k['us_per_launch']:8.1f} us x{k['launches_per_call']:g} "
                             f"grid {k['grid']} block {k['block']} regs {k['registers']} smem {k['shared_memory']} "
                             f"{k['name'][:70]}")
    lines += [f"{r['unit']}: {r['status']}: {r.get('message', '')}" for r in results if r["status"] != "ok"]
    return lines


def write_outputs(out: str, meta: dict, ceilings, flush: dict, results: list[dict], lines: list[str]) -> None:
    data = {"meta": meta, "ceilings": asdict(ceilings), "flush": {k: v for k, v in flush.items() if k != "call"},
            "units": results}
    with open(os.path.join(out, "probe.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out, "probe.txt"), "w") as f:
        f.write("\n".join(lines + summary_lines(results, flush)) + "\n")


def machine_meta(device: str, tiny: bool, compile_backend: str) -> dict:
    import torch
    import triton

    fields = ("name", "driver_version", "clocks.max.sm", "clocks.max.mem", "power.limit", "persistence_mode")
    try:  # the GPU machine's copy of the tree may come without git
        commit = subprocess.run(["git", "-C", sweep.REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        commit = None
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tiny": tiny, "device_type": device,
            "device": torch.cuda.get_device_name() if device == "cuda" else "CPU, Triton interpreter",
            "nvidia_smi": smi_read(smi_start(device, fields), fields), "torch": torch.__version__,
            "triton": triton.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpus": os.cpu_count(), "compile_backend": compile_backend,
            "commit": commit,
            "methods": {"bench": f"harness.time_fn: do_bench {BENCH_ARGS} median, rotating closure, torch.no_grad, "
                                 "the bench's inputs",
                        "sweep": f"gpu_kernel_sweep.time_ms: do_bench {SWEEP_ARGS} median, plain lambda, grad mode "
                                 "on, fresh torch.randn inputs"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "probe_out",
                        help="directory for probe.json and probe.txt (default: $OUT, else ./probe_out)")
    parser.add_argument("--tiny", action="store_true", help="CPU, the bench's tiny shapes, under TRITON_INTERPRET=1")
    parser.add_argument("--only", help="comma-separated substrings of unit names")
    parser.add_argument("--budget", type=float, default=180.0,
                        help="seconds from the start; units not started by then are skipped (default 180)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    opts = parser.parse_args()
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if opts.tiny and not interpreted:
        parser.error("--tiny runs the kernels under the interpreter: set TRITON_INTERPRET=1")
    if interpreted and not opts.tiny:
        parser.error("TRITON_INTERPRET=1 would time the interpreter: unset it, or use --tiny")
    started = time.monotonic()
    sweep.import_from_source_tree()
    import torch

    from p2t_core.bench.harness import TOLERANCES, measure_ceilings
    from p2t_core.bench.suite import get_suite

    if not opts.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device; use --tiny on CPU")
    opts.device = "cpu" if opts.tiny else "cuda"
    opts.compile_backend = "eager" if opts.tiny else "inductor"  # as the bench: inductor on CPU compiles C++
    opts.smi_fields = smi_fields(opts.device)
    suite = {u.name: u for u in get_suite()}
    # --only picks from the whole suite (weak units first); without it, the weak units alone
    names = WEAK_UNITS + tuple(n for n in suite if n not in WEAK_UNITS) if opts.only else WEAK_UNITS
    selected = [suite[n] for n in names if not opts.only or any(p in n for p in opts.only.split(","))]
    if not selected:
        parser.error(f"no suite unit matches --only {opts.only}")
    os.makedirs(opts.out, exist_ok=True)
    lines: list[str] = []

    def echo(text):
        print(text, flush=True)
        lines.append(text)

    torch.manual_seed(0)
    meta = machine_meta(opts.device, opts.tiny, opts.compile_backend)
    echo(f"gpu_timing_probe: {len(selected)} unit(s) on {meta['device']}; torch {meta['torch']}, triton "
         f"{meta['triton']}; nvidia-smi {meta['nvidia_smi']}")
    ceilings = measure_ceilings(opts.device, opts.tiny, dtypes=(), echo=echo)
    flush = measure_flush(opts.device)
    echo(f"do_bench's L2 flush: {_num(flush['us'], '.1f')} us of GPU time ({', '.join(flush['kernels']) or '-'})")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="p2t_probe_") as workdir:
        for u in selected:
            if time.monotonic() - started > opts.budget:
                results.append({"unit": u.name, "status": "skipped", "message": f"--budget {opts.budget:.0f} s spent"})
            else:
                unit_start = time.monotonic()
                try:
                    results.append(probe_unit(u, opts, ceilings.copy_gbps, flush, workdir, echo))
                except Exception as e:  # one failing unit (e.g. out of memory) is a row, not a dead probe
                    results.append({"unit": u.name, "status": "failed", "message": f"{type(e).__name__}: {e}"[:500],
                                    "traceback": traceback.format_exc()[-3000:]})
                results[-1]["seconds"] = round(time.monotonic() - unit_start, 1)
                torch._dynamo.reset()
                if opts.device == "cuda":
                    torch.cuda.empty_cache()
            meta["seconds"] = round(time.monotonic() - started, 1)
            write_outputs(opts.out, meta, ceilings, flush, results, lines)
    for line in summary_lines(results, flush):
        print(line)
    bad = [(r["unit"], name, err) for r in results for name, err in r.get("errors", {}).items()
           if err is None or err > TOLERANCES.get(r["dtype"], 2e-2)]
    for unit, name, err in bad:
        echo(f"DISAGREES with eager: {unit} {name} err {err}")
    write_outputs(opts.out, meta, ceilings, flush, results, lines)
    return 1 if bad or any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
