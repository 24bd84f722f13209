#!/usr/bin/env python3
"""Time alternative launch configurations of the issue-3 units that missed their targets on the H100.

    python3 scripts/gpu_kernel_sweep.py --out DIR [--only col_sum,matvec] [--budget 200]
    TRITON_INTERPRET=1 python3 scripts/gpu_kernel_sweep.py --tiny --out DIR     # CPU: the code paths only

Each unit is translated once; every variant replaces launcher helpers in the loaded module (the launcher reads
them as module globals), so the kernels are exactly the compiler's and only the launch changes:
`_p2t_split_config` (split reductions), `_p2t_row_config` / `_p2t_rows` / `_p2t_row_sizes` (row kernels; the
"rows_inner" variants view a matrix-vector product's rows as inner positions, so one program reduces several rows
and loads the vector once per tile; `_p2t_short_rows` does that for rows of at most 512 bytes) and
`_p2t_mm_configs` (matmul tiles). Next to them: the compiler's defaults (the matmul autotuner's pick), eager,
torch.compile and the copy bandwidth / cuBLAS of the same run. Every variant's output is checked against eager.
Timing: triton.testing.do_bench median on fresh torch.randn inputs; the default row kernels also under a CUDA graph
(no host launch overhead) and the host time of one call.

Writes DIR/sweep.json and DIR/sweep.txt. On the GPU machine the repository is not installed: like
scripts/gpu_bench.sh, the packages are imported from the source tree through /tmp/p2tpath symlinks.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_from_source_tree() -> None:
    """Make p2t_core importable without an install (the symlinks of gpu_bench.sh; its wheels in /tmp/site); under
    TRITON_INTERPRET=1 (--tiny), also make the interpreter work on numpy >= 2.4 (p2t_core/verify/interpreter_compat)."""
    try:
        import p2t_core  # noqa: F401
    except ImportError:
        _link_source_tree()
    from p2t_core.verify.interpreter_compat import patch_interpreter

    patch_interpreter()


def _link_source_tree() -> None:
    os.makedirs("/tmp/p2tpath", exist_ok=True)
    for name, target in (("p2t_core", "p2t_core"), ("p2t_plugins", "plugins"), ("p2t_grammar", "grammar"),
                         ("p2t_model", "model")):
        link = os.path.join("/tmp/p2tpath", name)
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(os.path.join(REPO, target), link)
    wheels = glob.glob(os.path.join(REPO, ".whl", "*.whl"))
    if wheels and not os.path.isdir("/tmp/site/libcst"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", "/tmp/site", *wheels], check=False)
    sys.path[:0] = ["/tmp/p2tpath", "/tmp/site"]


# -- the units and their variants ---------------------------------------------------------------------------------

def split_config(n_split, block_r, block_i, warps):
    """A forced _p2t_split_config; chunks stay whole tiles (a tile must not read into the next chunk)."""
    import triton

    def config(n_outer, n_r, n_inner, element_size):
        if n_split == 1:
            return 1, n_r, block_r, block_i, warps
        chunk = triton.cdiv(triton.cdiv(n_r, n_split), block_r) * block_r
        return triton.cdiv(n_r, chunk), chunk, block_r, block_i, warps

    return {"_p2t_split_config": config}


def row_config(block_r, block_i, single, warps, rows_inner=False):
    """A forced _p2t_row_config; with rows_inner, a reduction over the last dim sees its rows as inner positions."""
    overrides = {"_p2t_row_config": lambda *sizes, **options: (block_r, block_i, single, warps)}
    if rows_inner:
        def sizes(shape, dims, base):
            n_outer, n_r, n_inner = base(shape, dims)
            return (1, n_r, n_outer) if n_inner == 1 else (n_outer, n_r, n_inner)

        def rows(t, shape, dims, base):
            view, (s_outer, s_r, s_inner) = base(t, shape, dims)
            return view, [s_inner, s_r, s_outer]

        overrides["_p2t_row_sizes"] = ("wrap", sizes)
        overrides["_p2t_rows"] = ("wrap", rows)
        # the split heuristic assumes contiguous inner positions (columns); here R is the contiguous dim
        overrides.update(split_config(1, block_r, block_i, warps))
    return overrides


def rows_inner_split(n_split, block_r, block_i, warps):
    """Rows as inner positions, R split over n_split programs per group of rows."""
    return {**row_config(block_r, block_i, False, warps, rows_inner=True), **split_config(n_split, block_r, block_i,
                                                                                          warps)}


def short_rows(block_r, rows_a_program):
    """Variants of a reduction over short rows: BLOCK_I rows a program at the given warps ({label: (rows, warps)}),
    and the one-row-a-program launch that was the default before (one warp: its tiles are at most 2 KB)."""
    one_row = {"_p2t_short_rows": lambda n_outer, n_r, n_inner, element_size, strides: (n_outer, n_inner, strides)}
    variants = {"old_one_row_1w": {**one_row, **row_config(block_r, 1, True, 1)}}
    variants.update({f"rows_{label}": row_config(block_r, rows, True, warps)
                     for label, (rows, warps) in rows_a_program.items()})
    return variants


def mm_config(*config):
    return {"_p2t_mm_configs": lambda m, n, k, batch, dtype, element_size, tune: ([tuple(config)], None)}


SPLIT_VARIANTS = {"old_4096x8w": (1024, 4096, 1, 8), "2048x8w_512p": (512, 2048, 1, 8),
                  "2048x8w_2048p": (2048, 2048, 1, 8), "4096x16w": (1024, 4096, 1, 16),
                  "1024x4w": (1024, 1024, 1, 4), "8192x32w": (1024, 8192, 1, 32), "2048x4w": (1024, 2048, 1, 4)}
COL_VARIANTS = {"old_no_split": (1, 256, 16, 8), "s16_16x128": (16, 16, 128, 8), "s16_32x128": (16, 32, 128, 8),
                "s8_16x128": (8, 16, 128, 8), "s32_16x128": (32, 16, 128, 8), "s16_32x64": (16, 32, 64, 8),
                "s16_8x256": (16, 8, 256, 8), "s32_64x32": (32, 64, 32, 8), "s16_16x128_4w": (16, 16, 128, 4),
                # the default (17 splits, 1088 programs) fills 0.69 of one wave at 12 resident a SM
                # (scripts/kernel_anatomy.py): one full wave, 1.3 and 1.9 waves
                "s24_16x128_4w": (24, 16, 128, 4), "s32_16x128_4w": (32, 16, 128, 4),
                "s48_16x128_4w": (48, 16, 128, 4)}
MATVEC_VARIANTS = {"old_single_8w": (8192, 1, True, 8), "single_16w": (8192, 1, True, 16),
                   "single_4w": (8192, 1, True, 4), "loop_2048x4w": (2048, 1, False, 4),
                   "rows_inner_256x16": (256, 16, False, 8, True), "rows_inner_512x8": (512, 8, False, 8, True),
                   "rows_inner_1024x4": (1024, 4, False, 4, True), "rows_inner_512x16": (512, 16, False, 8, True),
                   "rows_inner_128x32": (128, 32, False, 8, True), "rows_inner_1024x8": (1024, 8, False, 8, True),
                   # once launches were cached the unit became kernel-bound (inductor: 512 threads a row, a loop)
                   "single_32w": (8192, 1, True, 32), "loop_2048x16w": (2048, 1, False, 16),
                   "loop_4096x16w": (4096, 1, False, 16), "loop_2048x8w": (2048, 1, False, 8),
                   "loop_1024x8w": (1024, 1, False, 8)}
MM_BIG = [(128, 256, 64, 8, 3), (128, 256, 64, 8, 4), (256, 128, 64, 8, 3), (128, 128, 64, 8, 4),
          (128, 128, 128, 8, 3), (128, 128, 64, 4, 4), (64, 128, 64, 4, 4)]
MM_SMALL = [(128, 128, 64, 8, 4), (128, 128, 64, 4, 4), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4),
            (64, 64, 64, 4, 4), (128, 128, 32, 4, 4)]
MM_SKINNY = [(128, 64, 64, 4, 4), (128, 64, 128, 4, 3), (64, 64, 128, 4, 4), (256, 64, 64, 8, 3),
             (64, 64, 64, 4, 4), (128, 32, 128, 4, 4),
             # deeper pipelines: the unit streams A (0.86 of a same-size copy), so bytes in flight per SM may be short
             (128, 64, 64, 4, 6), (128, 64, 64, 8, 5), (256, 64, 64, 8, 4), (64, 64, 256, 4, 3), (128, 64, 128, 8, 4),
             (64, 64, 64, 4, 8)]


def units() -> list[tuple]:
    """(BenchUnit of the bench suite: name, source, shapes, dtype, kind; the tiny mode's CPU shapes, large enough
    for the forced splits and tiles to run; the variants {label: helper overrides}) of each swept unit."""
    from p2t_core.bench.suite import get_suite

    def mm(configs):
        return {"x".join(map(str, c)): mm_config(*c) for c in configs}

    def warps(block_r, counts):
        return {f"single_{w}w": row_config(block_r, 1, True, w) for w in counts}

    swept = {
        "col_sum_8192x8192_fp32": ({"x": (67, 300)}, {k: split_config(*v) for k, v in COL_VARIANTS.items()}),
        "smooth_l1_loss_bf16": ({"pred": (5001,), "target": (5001,)},
                                {k: split_config(*v) for k, v in SPLIT_VARIANTS.items()}),
        "mse_loss_fp32": ({"pred": (5001,), "target": (5001,)},
                          {k: split_config(*SPLIT_VARIANTS[k]) for k in ("old_4096x8w", "4096x16w", "1024x4w")}),
        "matvec_8192_fp16": ({"a": (37, 100), "v": (100,)},
                             {**{k: row_config(*v) for k, v in MATVEC_VARIANTS.items()},
                              "rows_inner_split4_256x16": rows_inner_split(4, 256, 16, 8)}),
        "tall_skinny_65536x1024x64_fp16": ({"a": (40, 24), "b": (24, 8)}, mm(MM_SKINNY)),
        # narrow rows: bytes in flight per warp (inductor gives 1024-wide bf16 rows one warp each)
        "softmax_65536x1024_bf16": ({"x": (37, 100)}, warps(1024, (1, 2, 4, 8))),
        "softmax_65536x1024_fp32": ({"x": (37, 100)}, warps(1024, (1, 2, 4))),
        # 16 KB / 32 KB rows: 0.76 / 0.94 of the copy bandwidth with the default 8 warps
        "softmax_8192x8192_bf16": ({"x": (37, 100)}, warps(8192, (4, 8, 16, 32))),
        "softmax_8192x8192_fp32": ({"x": (37, 100)}, warps(8192, (8, 16, 32))),
        # two reductions in a row (mean, then the centred variance): 0.84 of copy with 8 warps, RMSNorm's one 0.91
        "layer_norm_16384x4096_bf16": ({"x": (37, 100), "weight": (100,), "bias": (100,)}, warps(4096, (2, 4, 8, 16))),
        "row_sum_8192x8192_fp32": ({"x": (37, 100)}, {**warps(8192, (8, 16, 32)), **{
            f"loop_{r}x{w}w": row_config(r, 1, False, w) for r, w in ((2048, 8), (4096, 16), (2048, 16))}}),
        # short rows, several a program (the default since the sixteenth session) against one a program
        "softmax_1048576x64_fp32": ({"x": (37, 6)}, short_rows(64, {"16x4w": (16, 4), "32x4w": (32, 4),
                                                                    "64x8w": (64, 8), "128x8w": (128, 8)})),
        "layer_norm_262144x256_bf16": ({"x": (19, 12), "weight": (12,), "bias": (12,)},
                                       short_rows(256, {"8x4w": (8, 4), "16x4w": (16, 4), "16x8w": (16, 8),
                                                        "32x8w": (32, 8), "64x16w": (64, 16)})),
        # zero-padded copies of operands Triton cannot vectorize (p2t_default), against the operands as given
        # 0.53x torch.compile in the eighteenth session's bench: the operands as given, and each large tile forced
        "matmul_irregular_3001x1999x2777_bf16": ({"a": (7, 5), "b": (5, 3)}, {"operands_as_given": {
            "_p2t_mm_padded_operands": lambda a, b: (a, b, a.shape[2], False)}, **mm(MM_BIG)}),
        "matmul_1024_bf16": ({"a": (20, 24), "b": (24, 18)}, mm(MM_SMALL)),
        "matmul_4096_fp16": ({"a": (20, 24), "b": (24, 18)}, mm(MM_BIG)),
        "matmul_4096_bf16": ({"a": (20, 24), "b": (24, 18)}, mm(MM_BIG)),
    }
    return [(b, *swept[b.name]) for b in get_suite() if b.name in swept]


# -- timing ---------------------------------------------------------------------------------------------------------

def time_ms(fn, device: str) -> float:
    if device == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=10, rep=40, return_mode="median"))
    start = time.perf_counter()  # the interpreter: one call (the agreement check ran it once already)
    fn()
    return (time.perf_counter() - start) * 1e3


def per_call_us(fn, calls: int, device: str, warmup: int = 20) -> float:
    """Host time of one call, timed over `calls` calls after `warmup` untimed ones (the first calls JIT-compile the
    kernels: timing them gave 10-40 ms "overheads" in the first GPU run); on CUDA the GPU queue absorbs the
    launches, so this is the caller's own overhead."""
    import torch

    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    if device == "cuda":
        torch.cuda.synchronize()
    return elapsed / calls * 1e6


def host_us(fn, device: str) -> float | None:
    """The launcher's host time per call on CUDA (None elsewhere: the interpreter's time says nothing of it)."""
    return per_call_us(fn, 20, device, warmup=3) if device == "cuda" else None


def graph_ms(fn, device: str) -> float | None:
    if device != "cuda":
        return None
    from triton.testing import do_bench_cudagraph

    try:
        return float(do_bench_cudagraph(fn, rep=40, return_mode="median"))
    except Exception:  # a launcher that synchronizes (the matmul autotuner while tuning) cannot be captured
        return None


def rel_error(out, ref) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


# -- one unit -------------------------------------------------------------------------------------------------------

def apply(module, overrides: dict) -> dict:
    """Set the overrides on the module; ("wrap", f) calls f with the module's own helper last. Returns the saved."""
    saved = {name: getattr(module, name) for name in overrides}
    for name, value in overrides.items():
        if isinstance(value, tuple) and value[0] == "wrap":
            base, wrapper = saved[name], value[1]
            value = (lambda *args, base=base, wrapper=wrapper: wrapper(*args, base))
        setattr(module, name, value)
    return saved


def sweep_unit(u, tiny_shapes: dict, variants: dict, args, ceilings, workdir: str, deadline: float, echo
               ) -> list[dict]:
    import torch

    from p2t_core.bench.harness import load_module
    from p2t_core.engine import compile_units

    device = "cpu" if args.tiny else "cuda"
    shapes = tiny_shapes if args.tiny else u.shapes
    dtype = getattr(torch, u.dtype)
    inputs = [torch.randn(s, device=device, dtype=dtype) for s in shapes.values()]
    moved = sum(t.numel() * t.element_size() for t in inputs)
    ref_fn = {}
    exec(u.source, ref_fn)
    ref_fn = ref_fn[u.unit]
    ref = ref_fn(*inputs)
    moved += ref.numel() * ref.element_size()
    flops = 0
    if u.unit == "matmul":  # the tiled matmul template (matvec is lowered as a row reduction)
        (m, k), (_, n) = shapes.values()
        flops = 2 * m * n * k
    translated = compile_units(u.source, f"{u.name}.py", unit=u.unit, shapes=shapes, autotune=True).units[0]
    module = load_module(translated.module_source, f"sweep_{u.name}", workdir)
    fn = getattr(module, u.unit)
    rows = []

    def record(variant, call, config=None, extra=None):
        row = {"unit": u.name, "variant": variant, "config": config, **(extra or {})}
        try:
            out = call()
            row["err"] = rel_error(out, ref)
            row["ms"] = time_ms(call, device)
        except Exception as e:  # one failing variant (e.g. out of shared memory) is a row, not a dead sweep
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        if row.get("ms"):
            seconds = row["ms"] * 1e-3
            if u.kind == "matmul":
                row["tflops"] = flops / seconds / 1e12
                ceiling = ceilings.matmul_for(u.dtype)
                row["frac"] = row["tflops"] / ceiling if ceiling else None
            else:
                row["gbps"] = moved / seconds / 1e9
                row["frac"] = row["gbps"] / ceilings.copy_gbps if ceilings.copy_gbps else None
        rows.append(row)
        echo(format_row(row))

    record("eager", lambda: ref_fn(*inputs))
    if not args.tiny and not args.no_compile:
        compiled = torch.compile(ref_fn)
        record("torch.compile", lambda: compiled(*inputs))
    # the compiler's defaults; a fresh tuning table, filled by the first calls (do_bench's warm-up)
    if hasattr(module, "_P2T_TUNING"):
        module._P2T_TUNING.clear()
    default = {}
    if u.kind == "memory" and u.unit != "matmul":
        default = {"host_us": host_us(lambda: fn(*inputs), device), "graph_ms": graph_ms(lambda: fn(*inputs), device)}
    record("p2t_default", lambda: fn(*inputs), extra=default)
    picked = [v.get("best") for v in getattr(module, "_P2T_TUNING", {}).values() if v.get("best")]
    if picked:
        rows[-1]["config"] = list(picked[0])
    for label, overrides in variants.items():
        if time.monotonic() > deadline:
            rows.append({"unit": u.name, "variant": label, "error": "skipped: --budget spent"})
            continue
        saved = apply(module, overrides)
        try:
            record(label, lambda: fn(*inputs), config=label)
        finally:
            for name, value in saved.items():
                setattr(module, name, value)
    return rows


def format_row(r: dict) -> str:
    rate = f"{r['tflops']:.1f} TFLOP/s" if "tflops" in r else (f"{r['gbps']:.0f} GB/s" if "gbps" in r else "")
    frac = f"{r['frac']:.2f}" if r.get("frac") is not None else ""
    extra = "".join(f" {k} {r[k]:.4g}" for k in ("host_us", "graph_ms") if r.get(k) is not None)
    if "error" in r:
        return f"{r['unit']:32} {r['variant']:22} {r['error']}"
    return f"{r['unit']:32} {r['variant']:22} {r['ms']:9.4f} ms {rate:>15} {frac:>5}  err {r['err']:.1e}{extra}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for sweep.json and sweep.txt")
    parser.add_argument("--tiny", action="store_true", help="CPU, small shapes, under TRITON_INTERPRET=1")
    parser.add_argument("--only", help="comma-separated substrings of unit names")
    parser.add_argument("--budget", type=float, default=200.0, help="seconds; later variants are skipped")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    if args.tiny and os.environ.get("TRITON_INTERPRET") != "1":
        parser.error("--tiny runs the kernels under the interpreter: set TRITON_INTERPRET=1")
    import_from_source_tree()
    import torch

    from p2t_core.bench.harness import measure_ceilings

    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device; use --tiny on CPU")
    os.makedirs(args.out, exist_ok=True)
    lines: list[str] = []

    def echo(text):
        print(text, flush=True)
        lines.append(text)

    deadline = time.monotonic() + args.budget
    torch.manual_seed(0)
    ceilings = measure_ceilings("cpu" if args.tiny else "cuda", args.tiny, dtypes=("float16", "bfloat16"),
                                echo=echo)
    selected = [s for s in units() if not args.only or any(p in s[0].name for p in args.only.split(","))]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for u, tiny_shapes, variants in selected:
            rows += sweep_unit(u, tiny_shapes, variants, args, ceilings, workdir, deadline, echo)
    meta = {"torch": torch.__version__, "tiny": args.tiny, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu"}
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump({"meta": meta, "ceilings": vars(ceilings), "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "sweep.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    bad = [r for r in rows if r.get("err") is not None and r["err"] > (1e-4 if "fp32" in r["unit"] else 3e-2)]
    for r in bad:
        echo(f"DISAGREES with eager: {r['unit']} {r['variant']} err {r['err']:.2e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
