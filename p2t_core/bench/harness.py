"""The benchmark harness: translate each unit, check p2t / eager / torch.compile agree, time all three.

Per unit: `compile_units` translates the unit; its module is written to a temporary .py file and imported
(`@triton.jit` reads kernel source from a file); the original file is imported the same way, so eager PyTorch
and `torch.compile` run the user's own function. Inputs are fresh `torch.randn` tensors (never zeros) in the
unit's dtype; a Module gets constructor arguments from the bound sizes and random parameters, copied into the
original and the translated instance alike.

Timing: `triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")` on CUDA, rotating among
several input sets when one set fits in the L2 (do_bench also clears the L2 before every timed call). In the
CPU mode (`tiny=True`, no CUDA) the kernels run under the Triton interpreter (`TRITON_INTERPRET=1`, which the
caller must set before the translated module is imported: `prepare_environment` does it) and timing is the
median of a few `time.perf_counter` runs: those numbers exercise the code path and mean nothing.

Accounting: bytes moved = every input read once + every output written once (tensor sizes), FLOPs from
`torch.utils.flop_counter` on the eager call (2·M·N·K·batch for products, 0 for the rest). Memory-bound
units are measured against the copy bandwidth, matmul units against cuBLAS, both measured in the same run.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from p2t_core.bench.suite import BenchUnit

L2_BYTES = 50 * 2**20  # H100 L2
MAX_INPUT_SETS = 16
# Relative error on norms, ||out - ref|| / ||ref||, per dtype; fp32 products may use tf32.
TOLERANCES = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 2e-2}
TF32_TOLERANCE = 1e-2
# A product whose arithmetic intensity (FLOPs / byte) is below this is memory-bound on an H100.
MATMUL_INTENSITY = 100.0


def prepare_environment(tiny: bool) -> str:
    """Pick the device and, without CUDA, switch Triton to its interpreter. Must run before any translated
    module is imported (`triton.jit` reads TRITON_INTERPRET when a kernel is decorated). Returns "cuda"/"cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if not tiny:
        raise RuntimeError("no CUDA device: the full benchmark needs a GPU; `p2t bench --tiny` runs on CPU")
    if os.environ.get("TRITON_INTERPRET") != "1":
        # triton.language decorates its own helpers (tl.sum, tl.max, ...) when it is imported: the variable must
        # be set before the first `import triton` of the process, not just before the kernels are imported.
        if "triton" in sys.modules:
            raise RuntimeError("triton was imported before TRITON_INTERPRET=1 was set; run the CPU mode in a fresh "
                               "process or set TRITON_INTERPRET=1 in its environment")
        os.environ["TRITON_INTERPRET"] = "1"
    from p2t_core.verify.interpreter_compat import patch_interpreter

    patch_interpreter()
    return "cpu"


# -- results ----------------------------------------------------------------------------------------------------

@dataclass
class Ceilings:
    copy_gbps: float | None = None  # device-to-device copy, bytes = 2 × size
    copy_bytes: int = 0
    matmul_tflops: dict[str, float] = field(default_factory=dict)  # dtype → cuBLAS TFLOP/s
    matmul_sizes: dict[str, int] = field(default_factory=dict)  # dtype → n of the n³ product measured

    def matmul_for(self, dtype: str) -> float | None:
        return self.matmul_tflops.get(dtype)

    def describe(self) -> str:
        parts = []
        if self.copy_gbps:
            parts.append(f"copy {self.copy_gbps:.0f} GB/s ({self.copy_bytes / 2**20:.0f} MiB)")
        short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
        for dt, tf in self.matmul_tflops.items():
            n = self.matmul_sizes.get(dt)
            parts.append(f"cuBLAS {short.get(dt, dt)} {n}³ {tf:.1f} TFLOP/s")
        return ", ".join(parts) or "no ceilings measured"


@dataclass
class UnitResult:
    name: str
    family: str
    dtype: str
    kind: str
    shape: str
    unit: str
    tags: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | translate_failed | p2t_failed | eager_failed | skipped
    message: str = ""
    kernels: int = 0
    translate_s: float | None = None
    compile_s: float | None = None  # the first call of torch.compile (compilation included)
    compile_error: str | None = None
    compile_backend: str = "inductor"
    input_sets: int = 1
    p2t_ms: float | None = None
    eager_ms: float | None = None
    compile_ms: float | None = None
    agree: bool | None = None
    errors: dict[str, float | None] = field(default_factory=dict)  # "p2t"/"compile" → rel error vs eager
    tolerance: float | None = None
    bytes: int = 0
    flops: int = 0
    gbps: dict[str, float | None] = field(default_factory=dict)
    tflops: dict[str, float | None] = field(default_factory=dict)
    frac: dict[str, float | None] = field(default_factory=dict)  # of the ceiling of this kind
    # memory-bound units: a copy moving the unit's own bytes, timed like the unit (the 1 GiB ceiling copy hides the
    # fixed cost of a launch and of filling the GPU that a 70 µs kernel pays in full)
    copy_same_ms: float | None = None
    frac_same: dict[str, float | None] = field(default_factory=dict)  # of that copy's bandwidth
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None


@dataclass
class BenchRun:
    meta: dict
    ceilings: Ceilings
    results: list[UnitResult]

    def to_json(self) -> dict:
        return {"meta": self.meta, "ceilings": asdict(self.ceilings), "results": [asdict(r) for r in self.results]}


# -- helpers ----------------------------------------------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


def load_module(source: str, name: str, directory: str):
    """Write `source` to DIRECTORY/NAME.py and import it under a fresh module name."""
    path = os.path.join(directory, f"{name}.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _short(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, tiny: bool, runs: int = 5) -> float:
    """Milliseconds per call: do_bench's median on CUDA, else the median of a few perf_counter runs."""
    if device == "cuda" and not tiny:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
    fn()
    _sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def rel_error(out, ref) -> tuple[float, str]:
    """The relative error on norms of `out` against `ref` (lists of tensors); inf on a shape or NaN mismatch."""
    import torch

    outs, refs = _as_list(out), _as_list(ref)
    if len(outs) != len(refs):
        return math.inf, f"{len(outs)} outputs, expected {len(refs)}"
    worst = 0.0
    for i, (o, r) in enumerate(zip(outs, refs, strict=True)):
        if not isinstance(o, torch.Tensor):
            o = torch.as_tensor(o, device=r.device)
        if tuple(o.shape) != tuple(r.shape):
            return math.inf, f"output {i}: shape {tuple(o.shape)}, expected {tuple(r.shape)}"
        if o.dtype != r.dtype:
            return math.inf, f"output {i}: dtype {o.dtype}, expected {r.dtype}"
        of, rf = o.detach().double(), r.detach().double()
        if not torch.equal(torch.isnan(of), torch.isnan(rf)):
            return math.inf, f"output {i}: NaN in different places"
        finite = ~torch.isnan(rf)
        diff = torch.linalg.vector_norm((of - rf)[finite]).item()
        norm = torch.linalg.vector_norm(rf[finite]).item()
        worst = max(worst, diff / max(norm, 1e-30) if norm > 0 else diff)
    return worst, ""


def _mv_flops(a_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]


def _dot_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0]


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call: torch's flop counter (mm, bmm, addmm, ...) plus matrix-vector and dot products."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mv: _mv_flops,
                                                             torch.ops.aten.dot: _dot_flops})
    with counter:
        fn()
    return int(counter.get_total_flops())


def nbytes(tensors) -> int:
    import torch

    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


# -- ceilings ---------------------------------------------------------------------------------------------------

def time_copy(n_bytes: int, device: str, tiny: bool) -> float | None:
    """Milliseconds of a device-to-device `y.copy_(x)` moving n_bytes in all (read + write), rotated over enough
    buffer pairs that, like a unit's input sets, none is read from L2."""
    import torch

    numel = n_bytes // 8  # float32 elements: n_bytes / 2 read, n_bytes / 2 written
    if numel <= 0:
        return None
    n_sets = 1 if tiny or device != "cuda" else min(MAX_INPUT_SETS, max(1, math.ceil(2 * L2_BYTES / (numel * 4))))
    sets = [(torch.randn(numel, device=device), torch.empty(numel, device=device)) for _ in range(n_sets)]
    return time_fn(rotating(lambda x, y: y.copy_(x), sets), device, tiny)


def measure_ceilings(device: str, tiny: bool, dtypes=("bfloat16", "float16"), echo=print) -> Ceilings:
    """Copy bandwidth (a 1 GiB `y.copy_(x)`, bytes = 2× size) and cuBLAS throughput (8192³ bf16, 4096³ fp16;
    other dtypes 4096³), random data. The tiny mode uses small sizes: only the code path counts there."""
    import torch

    c = Ceilings()
    c.copy_bytes = 2 * 4 * (2**22 if tiny else 2**28)  # float32 elements: 16 MiB / 1 GiB copied
    c.copy_gbps = c.copy_bytes / (time_copy(c.copy_bytes, device, tiny) * 1e-3) / 1e9
    sizes = {"bfloat16": 8192, "float16": 4096}
    for dt in dtypes:
        n = 128 if tiny else sizes.get(dt, 4096)
        dtype = getattr(torch, dt)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        ms = time_fn(lambda a=a, b=b: a @ b, device, tiny)
        c.matmul_tflops[dt] = 2 * n**3 / (ms * 1e-3) / 1e12
        c.matmul_sizes[dt] = n
        del a, b
    if device == "cuda":
        torch.cuda.empty_cache()
    echo(f"ceilings: {c.describe()}")
    return c


# -- one unit ---------------------------------------------------------------------------------------------------

class UnitInputs:
    """Random inputs of a unit at given shapes: fresh argument sets (tensors of the unit's dtype, or of a parameter's
    own), the Module's constructor arguments and tensors, and the unit's callable built from them."""

    def __init__(self, sig, shapes: dict, dtype, device: str):
        from p2t_core.translate import bindings_from_shapes

        self.sig, self.dtype, self.device = sig, dtype, device
        self.bind = bindings_from_shapes(sig, shapes)
        self.init = {a.name: self.bind[a.size_var] if a.size_var else self._scalar(a.kind, a.default)
                     for a in sig.init_args}

    @functools.cached_property
    def module_tensors(self) -> list:
        """(name, tensor) of each Module tensor, drawn on first use (after the first argument set)."""
        return [(m.name, self._tensor(m.dims, self.dtype)) for m in self.sig.module_tensors]

    def _tensor(self, dims, dt):
        import torch

        shape = tuple(self.bind[d] if isinstance(d, str) else d for d in dims)
        if dt.is_floating_point:
            return torch.randn(shape, device=self.device, dtype=dt)
        if dt == torch.bool:
            return torch.randint(0, 2, shape, device=self.device).bool()
        return torch.randint(0, 5, shape, device=self.device).to(dt)

    @staticmethod
    def _scalar(kind, default):
        if default is not None:
            return default
        return {"float": 1.5, "int": 2, "bool": True}[kind]

    def args(self) -> list:
        """One fresh set of the unit's arguments."""
        import torch

        from p2t_core.signature import TensorParam

        return [self._tensor(p.dims, self.dtype if p.dtype == "float" else getattr(torch, p.dtype))
                if isinstance(p, TensorParam) else self._scalar(p.kind, p.default) for p in self.sig.params]

    def instance(self, cls):
        """The unit's callable: a function as is; a Module built, filled with the module tensors, in eval mode."""
        import torch

        if self.sig.kind != "module":
            return cls
        mod = cls(**self.init).to(self.device)
        for name, value in self.module_tensors:
            if isinstance(getattr(mod, name, None), torch.nn.Parameter):
                setattr(mod, name, torch.nn.Parameter(value.clone(), requires_grad=False))
            else:
                setattr(mod, name, value.clone())
        return mod.eval()


def rotating(fn: Callable, sets: list) -> Callable[[], object]:
    """fn over the argument sets in turn, one set a call (inputs below the L2 size are not read from cache)."""
    counter = [0]

    def call():
        counter[0] += 1
        return fn(*sets[counter[0] % len(sets)])

    return call


class _Unit:
    """A unit's callables and inputs for one run."""

    def __init__(self, bench: BenchUnit, *, device, tiny, autotune, workdir, compile_backend, echo):
        self.bench = bench
        self.device = device
        self.tiny = tiny
        self.autotune = autotune
        self.workdir = workdir
        self.compile_backend = compile_backend
        self.echo = echo
        self.shapes = bench.tiny_shapes if tiny else bench.shapes

    def run(self, ceilings: Ceilings) -> UnitResult:
        import torch

        b = self.bench
        r = UnitResult(b.name, b.family, b.dtype, b.kind, b.shape_text(self.tiny), b.unit, tags=list(b.tags),
                       compile_backend=self.compile_backend)
        # 1. translate
        from p2t_core.engine import compile_units

        start = time.perf_counter()
        try:
            tr = compile_units(b.source, f"{b.name}.py", unit=b.unit, shapes=self.shapes, autotune=self.autotune)
        except Exception as e:  # P2TError or a compiler bug: a failed row, not a dead run
            tr, err = None, e
        r.translate_s = time.perf_counter() - start
        if tr is None or tr.errors or not tr.units:
            r.status = "translate_failed"
            r.message = _short(str(err if tr is None else (tr.errors[0] if tr.errors else "no unit")))
            return r
        compiled = tr.units[0]
        r.kernels = compiled.n_kernels
        sig = compiled.signature

        # 2. load both modules from files
        tag = f"p2t_bench_{_safe(b.name)}"
        try:
            ref_mod = load_module(b.source, f"{tag}_ref", self.workdir)
            p2t_mod = load_module(compiled.module_source, f"{tag}_p2t", self.workdir)
        except Exception as e:
            r.status = "p2t_failed"
            r.message = _short(f"module failed to load: {type(e).__name__}: {e}")
            return r

        # 3. inputs
        inputs = UnitInputs(sig, self.shapes, getattr(torch, b.dtype), self.device)
        sets = [inputs.args()]
        set_bytes = nbytes(sets[0])
        if self.device == "cuda" and not self.tiny and 0 < set_bytes < L2_BYTES:
            n = min(MAX_INPUT_SETS, math.ceil(2 * L2_BYTES / set_bytes))
            sets += [inputs.args() for _ in range(n - 1)]
        r.input_sets = len(sets)
        module_tensors = inputs.module_tensors

        try:
            ref_fn = inputs.instance(getattr(ref_mod, b.unit))
            p2t_fn = inputs.instance(getattr(p2t_mod, b.unit))
        except Exception as e:
            r.status = "p2t_failed"
            r.message = _short(f"instantiation failed: {type(e).__name__}: {e}")
            return r

        # 4. run all three once; agree-check against eager
        with torch.no_grad():
            try:
                ref_out = ref_fn(*sets[0])
                _sync(self.device)
            except Exception as e:
                r.status = "eager_failed"
                r.message = _short(f"{type(e).__name__}: {e}")
                return r
            outs = _as_list(ref_out)
            r.bytes = set_bytes + nbytes([t for _, t in module_tensors]) + nbytes(outs)
            try:
                r.flops = count_flops(lambda: ref_fn(*sets[0]))
            except Exception:
                r.flops = 0
            try:
                p2t_out = p2t_fn(*sets[0])
                _sync(self.device)
            except Exception as e:
                r.status = "p2t_failed"
                r.message = _short(f"{type(e).__name__}: {e}")
                return r
            compiled_fn = None
            if self.compile_backend != "none":
                try:
                    compiled_fn = torch.compile(ref_fn, backend=self.compile_backend)
                    start = time.perf_counter()
                    compile_out = compiled_fn(*sets[0])
                    _sync(self.device)
                    r.compile_s = time.perf_counter() - start
                except Exception as e:
                    compiled_fn, compile_out = None, None
                    r.compile_error = _short(f"{type(e).__name__}: {e}")
            else:  # --compile-backend none: no torch.compile column (not a failure)
                compile_out = None

            fp32_matmul = b.dtype == "float32" and r.flops > 0
            r.tolerance = TF32_TOLERANCE if fp32_matmul else TOLERANCES.get(b.dtype, 2e-2)
            err, why = rel_error(p2t_out, ref_out)
            r.errors["p2t"] = err
            ok = err <= r.tolerance
            if compile_out is not None:
                cerr, cwhy = rel_error(compile_out, ref_out)
                r.errors["compile"] = cerr
                ok = ok and cerr <= r.tolerance
                why = why or (f"torch.compile: {cwhy}" if cwhy else "")
            r.agree = ok
            if not ok:
                r.message = why or "outputs differ beyond the tolerance: " + ", ".join(
                    f"{k} {v:.2e}" for k, v in r.errors.items())
            del p2t_out, compile_out, ref_out, outs

            # 5. time
            r.p2t_ms = time_fn(rotating(p2t_fn, sets), self.device, self.tiny)
            r.eager_ms = time_fn(rotating(ref_fn, sets), self.device, self.tiny)
            if compiled_fn is not None:
                try:
                    r.compile_ms = time_fn(rotating(compiled_fn, sets), self.device, self.tiny)
                except Exception as e:  # a recompilation for another input set can fail too
                    r.compile_error = _short(f"{type(e).__name__}: {e}")
            if b.kind == "memory":
                r.copy_same_ms = time_copy(r.bytes, self.device, self.tiny)
        account(r, ceilings)
        return r


def account(r: UnitResult, ceilings: Ceilings) -> None:
    """GB/s, TFLOP/s, fractions of the ceiling and speedups from the timings (fills `r` in place)."""
    for who, ms in (("p2t", r.p2t_ms), ("eager", r.eager_ms), ("compile", r.compile_ms)):
        if not ms or ms <= 0:
            r.gbps[who] = r.tflops[who] = r.frac[who] = None
            continue
        r.gbps[who] = r.bytes / (ms * 1e-3) / 1e9
        r.tflops[who] = r.flops / (ms * 1e-3) / 1e12 if r.flops else None
        if r.kind == "matmul":
            ceiling = ceilings.matmul_for(r.dtype)
            r.frac[who] = r.tflops[who] / ceiling if ceiling and r.tflops[who] else None
        else:
            r.frac[who] = r.gbps[who] / ceilings.copy_gbps if ceilings.copy_gbps else None
        if r.kind == "memory" and r.copy_same_ms:
            r.frac_same[who] = r.copy_same_ms / ms
    if r.p2t_ms and r.eager_ms:
        r.speedup_vs_eager = r.eager_ms / r.p2t_ms
    if r.p2t_ms and r.compile_ms:
        r.speedup_vs_compile = r.compile_ms / r.p2t_ms


def file_units(source: str, path: str, shapes: dict[str, tuple[int, ...]], dtype: str,
               only: str | None = None) -> list[BenchUnit]:
    """Every unit of a user's file as a BenchUnit: kind "memory" until the run counts its FLOPs
    (`classify` switches products with a high arithmetic intensity to "matmul")."""
    from p2t_core.frontend import parse_file

    parsed = parse_file(source, path)
    units = []
    for u in parsed.units:
        if only and not any(p.strip() in u.name for p in only.split(",") if p.strip()):
            continue
        units.append(BenchUnit(u.name, "user", source, u.name, dict(shapes), dtype, "memory", dict(shapes)))
    return units


def classify(r: UnitResult) -> bool:
    """For user files: a unit with FLOPs and an arithmetic intensity above the H100's ridge is a matmul unit.
    Returns whether the kind changed (the ceilings of every user dtype are measured up front)."""
    if r.family == "user" and r.kind != "matmul" and r.flops and r.bytes and r.flops / r.bytes >= MATMUL_INTENSITY:
        r.kind = "matmul"
        return True
    return False


# -- the run ----------------------------------------------------------------------------------------------------

def run_bench(units: list[BenchUnit], *, tiny: bool = False, autotune: bool = True, compile_backend: str | None = None,
              budget_s: float | None = None, echo: Callable[[str], None] = print,
              on_result: Callable[[UnitResult], None] | None = None) -> BenchRun:
    """Benchmark `units`. `compile_backend`: torch.compile's backend (default "inductor" on CUDA, "eager" on CPU,
    where inductor would spend most of the run compiling C++; "none" skips torch.compile). `budget_s`: units
    not started within this many seconds are reported as skipped."""
    import torch

    device = prepare_environment(tiny)  # before the first `import triton`
    import triton
    if compile_backend is None:
        compile_backend = "inductor" if device == "cuda" else "eager"
    started = time.perf_counter()
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "CPU, Triton interpreter",
        "device_type": device,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "tiny": tiny,
        "autotune": autotune,
        "compile_backend": compile_backend,
        "timing": "triton.testing.do_bench median (warmup 25 ms, rep 100 ms)" if device == "cuda" and not tiny
        else "time.perf_counter median of 5 runs (meaningless: interpreter / tiny shapes)",
        "tolerances": {**TOLERANCES, "tf32": TF32_TOLERANCE},
    }
    echo(f"p2t bench: {len(units)} unit(s) on {meta['device']}; torch {torch.__version__}, triton "
         f"{triton.__version__}; torch.compile backend {compile_backend}"
         + (" (inductor is not exercised on CPU)" if compile_backend == "eager" else ""))
    dtypes = tuple(dict.fromkeys(u.dtype for u in units if u.kind == "matmul" or u.family == "user"))
    ceilings = measure_ceilings(device, tiny, dtypes=dtypes or ("bfloat16",), echo=echo)
    results: list[UnitResult] = []
    with tempfile.TemporaryDirectory(prefix="p2t_bench_") as workdir:
        for i, u in enumerate(units):
            if budget_s is not None and time.perf_counter() - started > budget_s:
                r = UnitResult(u.name, u.family, u.dtype, u.kind, u.shape_text(tiny), u.unit, tags=list(u.tags),
                               status="skipped", message=f"time budget of {budget_s:.0f} s spent")
            else:
                unit_start = time.perf_counter()
                try:
                    r = _Unit(u, device=device, tiny=tiny, autotune=autotune, workdir=workdir,
                              compile_backend=compile_backend, echo=echo).run(ceilings)
                except Exception as e:  # the harness must survive any unit (OOM included)
                    r = UnitResult(u.name, u.family, u.dtype, u.kind, u.shape_text(tiny), u.unit,
                                   tags=list(u.tags), status="p2t_failed",
                                   message=_short(f"{type(e).__name__}: {e} "
                                                  f"[{traceback.format_exc(limit=-1).strip().splitlines()[-2]}]"))
                if classify(r):  # a user's product turned out compute-bound: measure it against cuBLAS
                    account(r, ceilings)
                echo(_progress(i + 1, len(units), r, time.perf_counter() - unit_start))
            results.append(r)
            if on_result:
                on_result(r)
            try:
                torch._dynamo.reset()
            except Exception:
                pass
            if device == "cuda":
                torch.cuda.empty_cache()
    meta["seconds"] = round(time.perf_counter() - started, 2)
    return BenchRun(meta, ceilings, results)


def _progress(i: int, n: int, r: UnitResult, seconds: float) -> str:
    def ms(v):
        return f"{v:.4g}" if v is not None else "-"

    head = f"[{i}/{n}] {r.name}: "
    if r.status != "ok":
        return head + f"{r.status}: {r.message} ({seconds:.1f} s)"
    extra = f"; torch.compile failed: {r.compile_error}" if r.compile_error else ""
    agree = "agree" if r.agree else f"DISAGREE ({r.message})"
    compile_s = f", compile {r.compile_s:.1f} s" if r.compile_s is not None else ""
    return (head + f"p2t {ms(r.p2t_ms)} ms, eager {ms(r.eager_ms)} ms, compile {ms(r.compile_ms)} ms; {agree}"
            f"{extra} ({seconds:.1f} s{compile_s})")
