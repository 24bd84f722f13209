"""What the compiler's kernels for the bench's units are on sm_90, without a GPU: for each unit at its GPU shapes, the
launches its module makes (grid, warps, block constexprs) and, compiled for sm_90, each kernel's registers per
thread, shared memory and the widths of its global loads and stores in the PTX; from those, for a 132-SM H100/H200,
the programs resident per SM (and which limit sets it), the occupancy and the waves the grid takes.

    python3 scripts/kernel_anatomy.py [--only layer_norm,col_sum] [--json OUT.json] [--tiny]

Two subprocesses: one runs each module's launcher at the full shapes on CPU tensors under the interpreter with every
kernel call recorded and none executed (so 8192 x 8192 costs only the allocation), one compiles the recorded launches
with the interpreter off (`p2t_core.verify.aot`: the JIT's specialization, `GPUTarget("cuda", 90, 32)`). No timing:
this says why a kernel may lose bandwidth (few waves, a partial last wave, low occupancy, narrow loads), not how much.
Autotuned kernels list every config. `--tiny` uses the units' tiny shapes (the test of this script).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMS = 132  # H100 SXM / H200
SM_THREADS, SM_BLOCKS, SM_REGS, SM_SHARED = 2048, 32, 65536, 233472  # per SM on sm_90
BLOCK_SHARED_RESERVED = 1024  # bytes the driver keeps per resident block
DEFAULT_UNITS = "row_sum,col_sum,mean_sq,layer_norm,smooth_l1,matvec,tall_skinny,rmsnorm_16384x4096_bf16"


def record(only: str, tiny: bool, workdir: str) -> list[dict]:
    """(in a TRITON_INTERPRET=1 process) each unit's launches, recorded and not run: kernel, arguments, grid."""
    import torch

    from p2t_core.bench.harness import UnitInputs, load_module
    from p2t_core.bench.suite import get_suite, select
    from p2t_core.engine import compile_units
    from p2t_core.verify.aot import LaunchRecorder

    recorder = LaunchRecorder(execute=False)
    recorder.install()
    units = []
    for b in select(get_suite(), only):
        shapes = b.tiny_shapes if tiny else b.shapes
        tr = compile_units(b.source, f"{b.name}.py", unit=b.unit, shapes=shapes, autotune=True)
        if tr.errors or not tr.units:
            units.append({"unit": b.name, "error": str(tr.errors[0] if tr.errors else "no unit")})
            continue
        compiled = tr.units[0]
        mod = load_module(compiled.module_source, "anatomy_" + re.sub(r"\W", "_", b.name), workdir)
        inputs = UnitInputs(compiled.signature, shapes, getattr(torch, b.dtype), "cpu")
        recorder.launches.clear()
        with torch.no_grad():
            inputs.instance(getattr(mod, b.unit))(*inputs.args())
        units.append({"unit": b.name, "module": mod.__file__, "shapes": b.shape_text(tiny),
                      "launches": list(recorder.launches.values())})
    return units


def ptx_accesses(ptx: str) -> dict[str, int]:
    """Global loads and stores in the PTX by width: e.g. {"ld.v4.b32": 2, "st.b16": 1}."""
    counts: dict[str, int] = {}
    for m in re.finditer(r"\b(ld|st)\.global(?:\.[a-z_]+)*?(?:\.(v[248]))?\.([bfsu]\d+)\b", ptx):
        key = f"{m.group(1)}{'.' + m.group(2) if m.group(2) else ''}.{m.group(3)}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def residency(warps: int, registers: int | None, shared: int) -> tuple[int, str]:
    """Programs (blocks) resident per SM and the limit that sets it, on sm_90."""
    limits = {"threads": SM_THREADS // (32 * warps), "blocks": SM_BLOCKS}
    if registers:
        per_warp = math.ceil(registers * 32 / 256) * 256  # registers are allocated per warp in units of 256
        limits["registers"] = (SM_REGS // per_warp) // warps
    if shared:
        limits["shared"] = SM_SHARED // (shared + BLOCK_SHARED_RESERVED)
    name = min(limits, key=limits.get)
    return limits[name], name


def compile_all(units: list[dict]) -> list[dict]:
    """(in a process where the interpreter never ran) each launch compiled for sm_90, with what it implies."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from p2t_core.bench.harness import load_module
    from p2t_core.verify.aot import _cubin_registers, _find_kernel, _plan

    target = GPUTarget("cuda", 90, 32)
    for u in units:
        if "error" in u:
            continue
        mod = load_module(Path(u["module"]).read_text(), Path(u["module"]).stem + "_jit", str(Path(u["module"]).parent))
        for launch in u["launches"]:
            kernel = _find_kernel(mod, launch["name"])
            signature, constexprs, attrs, options = _plan(kernel, {k: tuple(v) for k, v in launch["args"].items()})
            compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs),
                                      target=target, options=options)
            warps = int(options.get("num_warps", 4))
            registers, shared = _cubin_registers(compiled), int(compiled.metadata.shared)
            per_sm, limit = residency(warps, registers, shared)
            programs = math.prod(launch["grid"])
            waves = programs / (SMS * per_sm)
            launch.update(
                num_warps=warps, num_stages=int(options.get("num_stages", 3)), registers=registers, shared=shared,
                blocks=", ".join(f"{k}={v}" for k, v in constexprs.items() if k.isupper()),
                programs=programs, per_sm=per_sm, limit=limit, occupancy=per_sm * warps / (SM_THREADS // 32),
                waves=round(waves, 2), last_wave=round(waves - math.floor(waves), 2) if waves > 1 else None,
                accesses=ptx_accesses(compiled.asm["ptx"]))
            del launch["args"]
    return units


def render(units: list[dict]) -> str:
    lines = []
    for u in units:
        lines.append(f"== {u['unit']} ({u.get('shapes', '')})")
        if "error" in u:
            lines.append(f"  translate failed: {u['error']}")
            continue
        for x in u["launches"]:
            acc = " ".join(f"{k}x{v}" for k, v in sorted(x["accesses"].items()))
            last = f", last wave {x['last_wave']:.2f} full" if x["last_wave"] is not None else ""
            lines.append(f"  {x['name']}  grid {x['grid']} = {x['programs']} programs  {x['num_warps']} warps  "
                         f"{x['registers']} regs  {x['shared']} B shared  [{x['blocks']}]")
            lines.append(f"      {x['per_sm']} a SM (by {x['limit']}), occupancy {x['occupancy']:.0%}, "
                         f"{x['waves']} waves{last}; global: {acc}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=DEFAULT_UNITS, help="comma-separated substrings of unit names")
    parser.add_argument("--json", help="write the launches and their anatomy here")
    parser.add_argument("--tiny", action="store_true", help="the units' tiny shapes")
    parser.add_argument("--stage", choices=("record", "compile"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "record":
        print(json.dumps(record(args.only, args.tiny, args.workdir)))
        return
    if args.stage == "compile":
        print(json.dumps(compile_all(json.load(sys.stdin))))
        return
    with tempfile.TemporaryDirectory() as workdir:
        base = [sys.executable, __file__, "--only", args.only, "--workdir", workdir] + (["--tiny"] if args.tiny else [])
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        rec = subprocess.run([*base, "--stage", "record"], env={**env, "TRITON_INTERPRET": "1"}, capture_output=True,
                             text=True, check=False)
        if rec.returncode:
            sys.exit(f"recording failed:\n{rec.stderr[-3000:]}")
        comp = subprocess.run([*base, "--stage", "compile"], env=env, input=rec.stdout.splitlines()[-1],
                              capture_output=True, text=True, check=False)
        if comp.returncode:
            sys.exit(f"compiling failed:\n{comp.stderr[-3000:]}")
        units = json.loads(comp.stdout.splitlines()[-1])
    print(render(units))
    if args.json:
        Path(args.json).write_text(json.dumps(units, indent=2))


if __name__ == "__main__":
    main()
