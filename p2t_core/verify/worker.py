"""The verifier's worker: `python -m p2t_core.verify.worker`, a JSON job a line on stdin, JSON lines on stdout.

A job marked `"reuse": true` (runner.py's choice) leaves the worker waiting for the next job line once it is done.

Events, one JSON object a line: {"event": "ready"} after imports; {"event": "loaded"} or
{"event": "load_error", "message"}; per case {"event": "start", "index"} then {"event": "case", ...CaseResult};
{"event": "launches", "launches": [...]} (recorded kernel launches) for the aot backend; on CUDA,
{"event": "precompile"} before the cases' kernels are compiled ahead (`p2t_core.verify.precompile`) and
{"event": "restart"} after a case that poisoned the context; {"event": "phases", "phases": {name: seconds}} (where
the worker's time went); {"event": "done"}. With `"mode": "compile"`
(no TRITON_INTERPRET) it compiles recorded launches for sm_90 instead: {"event": "kernel", ...} each.
The candidate's own prints go to stderr so they cannot corrupt the protocol. The parent enforces timeouts
and restarts after crashes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import resource
import sys
import time
import traceback

# Created in the worker's cwd once it has done everything it does before reading its job.
WARM_MARKER = "p2t-worker-warm"


def _emit_to(stream):
    def emit(**event):
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()

    return emit


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(limit_mb: int) -> None:
    """Cap the address space at what the imports use plus `limit_mb`, so a huge allocation fails in here."""
    if limit_mb <= 0:
        return
    limit = _vm_size_bytes() + limit_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _limit_cuda(torch, limit_mb: int) -> None:
    """On a GPU the address-space limit would break CUDA's own reservations: initialise CUDA, cap device
    memory through torch's allocator, and cap host memory on top of what CUDA mapped."""
    if limit_mb <= 0:
        return
    torch.empty(1, device="cuda")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit_mb * 2**20 / total))
    _limit_memory(limit_mb)


def _cuda_poisoned(message: str) -> bool:
    low = message.lower()
    return any(s in low for s in ("illegal memory access", "illegal address", "device-side assert",
                                  "cuda error", "unspecified launch failure", "misaligned address"))


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _describe_exc(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    low = text.lower()
    if isinstance(exc, MemoryError) or "can't allocate memory" in low or "out of memory" in low \
            or "cannot allocate memory" in low:
        return "out of memory: " + text
    return text


def _short(text: str, n: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _frame_hint(exc: BaseException, filename: str) -> str:
    """`candidate.py:LINE` of the innermost frame in the candidate's file, if any."""
    line = None
    for fs in traceback.extract_tb(exc.__traceback__):
        if fs.filename == filename:
            line = fs.lineno
    return f" (candidate line {line})" if line else ""


class CaseRunner:
    def __init__(self, job: dict, emit) -> None:
        import torch

        from p2t_core.signature import Signature
        from p2t_core.verify.guard import AllocationGuard

        self.torch = torch
        self.job = job
        self.emit = emit
        self.sig = Signature.from_json(job["signature"])
        self.backend = job["backend"]
        self.device = torch.device("cuda" if self.backend == "cuda" else "cpu")
        self.tolerances = job["tolerances"]
        self.alloc = AllocationGuard()
        self.reference = None
        self.ref_globals: dict = {}
        self.candidate = None
        self.cand_path = os.path.abspath("candidate.py")

    # -- loading --------------------------------------------------------------------------------------------
    def load(self) -> str | None:
        if self.job.get("reference_source") is not None:
            with open("reference.py", "w") as f:
                f.write(self.job["reference_source"])
            try:
                mod = _load("p2t_reference", os.path.abspath("reference.py"))
                self.reference = getattr(mod, self.sig.unit)
                self.ref_globals = vars(mod)
            except BaseException as exc:
                return f"reference failed to load: {_describe_exc(exc)}"
        with open(self.cand_path, "w") as f:
            f.write(self.job["candidate_source"])
        return self.load_candidate()

    def load_candidate(self) -> str | None:
        """Execute the candidate's file as a fresh module (again after the precompile's dry run: a fresh module
        has none of the dry run's state, such as a launcher's autotuning cache filled from launches never made)."""
        try:
            mod = _load("p2t_candidate", self.cand_path)
            self.cand_module = mod
        except BaseException as exc:
            return f"candidate failed to load: {_describe_exc(exc)}{_frame_hint(exc, self.cand_path)}"
        if not hasattr(mod, self.sig.unit):
            return f"candidate does not define {self.sig.unit}"
        self.candidate = getattr(mod, self.sig.unit)
        return None

    def precompile(self, cases: list[dict]) -> dict[str, float]:
        """On CUDA: every case's launches compiled ahead, side by side (`p2t_core.verify.precompile`), then a fresh
        candidate module for the cases themselves."""
        from p2t_core.verify.precompile import precompile

        def dry_run():
            for case in cases:
                params, init, mts = self._values(case)
                try:
                    cand_mod, args, _ = self._candidate_inputs(case, params, init, mts)
                    with self.alloc.active(), self.torch.no_grad():
                        cand_mod(*args)
                except Exception:
                    pass  # the case itself reports it

        done = precompile(dry_run)
        self.load_candidate()
        return done

    # -- inputs ---------------------------------------------------------------------------------------------
    def _values(self, case: dict):
        torch = self.torch
        from p2t_core.signature import TensorParam

        gen = torch.Generator().manual_seed(case["seed"])
        rng = random.Random(case["seed"])
        dtype = getattr(torch, case["dtype"])
        b = case["bindings"]

        def tensor(dims, dt):
            shape = tuple(b[d] if isinstance(d, str) else d for d in dims)
            if dt.is_floating_point:
                return torch.randn(shape, generator=gen).to(dt)
            if dt == torch.bool:
                return torch.randint(0, 2, shape, generator=gen).bool()
            return torch.randint(0, 5, shape, generator=gen).to(dt)

        def scalar(kind, default):
            if default is not None:
                return default
            if kind == "float":
                return round(rng.uniform(0.5, 2.0), 4)
            if kind == "int":
                return rng.randint(1, 4)
            return rng.random() < 0.5

        params = []
        for p in self.sig.params:
            if isinstance(p, TensorParam):
                dt = dtype if p.dtype == "float" else getattr(torch, p.dtype)
                value = tensor(p.dims, dt)
                if p.name in self.sig.inplace and dt.is_floating_point:
                    value.fill_(float("nan"))  # an output buffer: elements the unit fails to write stay NaN
                params.append((p.name, "tensor", value))
            else:
                params.append((p.name, "scalar", scalar(p.kind, p.default)))
        init = {}
        for a in self.sig.init_args:
            init[a.name] = b[a.size_var] if a.size_var else scalar(a.kind, a.default)
        mts = [(m.name, tensor(m.dims, dtype)) for m in self.sig.module_tensors]
        return params, init, mts

    def _instance(self, unit, init: dict, mts: list, convert, module_dtype=None):
        if self.sig.kind != "module":
            return unit
        mod = unit(**init)
        if module_dtype is not None:  # the truth: every floating parameter and buffer in float64
            mod = mod.to(module_dtype)
        for name, value in mts:
            _set_tensor(mod, name, convert(value))
        return mod

    def _candidate_inputs(self, case: dict, params, init: dict, mts: list):
        """The candidate instance and its arguments: guarded copies of the inputs on the device. Raises what the
        candidate's constructor raises."""
        from p2t_core.verify.guard import guarded_input

        cand_mod = self._instance(self.candidate, init, [], lambda t: t)
        guarded = {}
        for name, value in mts:
            g = guarded_input(value, "contiguous", self.device)
            guarded[f"self.{name}"] = g
            _set_tensor(cand_mod, name, g.view)
        args = []
        for name, kind, v in params:
            if kind == "tensor":
                g = guarded_input(v, case["layout"], self.device)
                guarded[name] = g
                args.append(g.view)
            else:
                args.append(v)
        return cand_mod, args, guarded

    def _call(self, fn, params, convert):
        """The unit's results: what it returns, then the parameters it writes in place (loop-style units)."""
        args = [convert(v) if kind == "tensor" else v for _, kind, v in params]
        with self.torch.no_grad():
            out = fn(*args)
        return self._results(out, args, params)

    def _results(self, out, args, params) -> list:
        written = [a for (name, _, _), a in zip(params, args, strict=True) if name in self.sig.inplace]
        if not written:
            return _as_list(out)
        return ([] if out is None else _as_list(out)) + written

    # -- one case -------------------------------------------------------------------------------------------
    def run(self, case: dict) -> dict:
        torch = self.torch
        from p2t_core.verify.compare import compare_output

        result = {k: case[k] for k in ("index", "bindings", "dtype", "layout")}
        rtol = float(self.tolerances.get(case["dtype"], 1e-5))
        if case["dtype"] == "float32" and self.job.get("tf32"):
            rtol = max(rtol, float(self.tolerances.get("tf32", 1e-2)))
        params, init, mts = self._values(case)

        # The truth: float64 on CPU.
        truth = eager = None
        if self.reference is not None:
            def up(t):
                return t.double() if t.is_floating_point() else t.clone()
            try:
                ref64 = self._instance(self.reference, init, mts, up, module_dtype=torch.float64)
                truth = self._call(ref64, params, up)
            except Exception as exc:
                return {**result, "status": "skip", "message": f"reference raised {_short(_describe_exc(exc))}"}
            try:  # torch eager in the tested dtype: the yardstick for the candidate's error
                def same(t):
                    return t.clone()
                with _math_rounded_to(self.ref_globals, getattr(torch, case["dtype"])):
                    eager = self._call(self._instance(self.reference, init, mts, same), params, same)
            except Exception:
                eager = None

        # The candidate: guarded inputs on the device, guarded and poisoned allocations.
        try:
            cand_mod, args, guarded = self._candidate_inputs(case, params, init, mts)
        except Exception as exc:
            return {**result, "message": f"candidate __init__ raised {_short(_describe_exc(exc))}"
                                         f"{_frame_hint(exc, self.cand_path)}"}
        try:
            with self.alloc.active(), torch.no_grad():
                out = cand_mod(*args)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
        except Exception as exc:
            return {**result, "message": f"candidate raised {_short(_describe_exc(exc))}"
                                         f"{_frame_hint(exc, self.cand_path)}"}

        # Memory safety first: inputs, then everything the candidate allocated.
        for name, g in guarded.items():
            if name in self.sig.inplace and g.guards_intact():
                continue  # written in place on purpose: its contents are compared as an output below
            if not g.unchanged():
                n = g.span
                from p2t_core.verify.guard import GUARD, bits
                inside = not torch.equal(bits(g.buffer[GUARD:GUARD + n]), bits(g.snapshot[GUARD:GUARD + n]))
                where = (f"input modified: {name}" if inside
                         else f"write outside the output (into the guard band of input {name})")
                return {**result, "message": where}
        for g in self.alloc.allocations:
            if not g.guards_intact():
                return {**result, "message": f"write outside the output: guard band of a {tuple(g.view.shape)} "
                                             f"{str(g.view.dtype).removeprefix('torch.')} tensor the candidate "
                                             f"allocated was overwritten"}
        outs = self._results(out, args, params)
        if truth is None:  # aot-only runs: no reference
            return {**result, "status": "pass", "message": "ran (no reference)"}
        if len(outs) != len(truth):
            return {**result, "message": f"returned {len(outs)} outputs, expected {len(truth)}"}
        worst = {"max_abs_err": 0.0, "max_rel_err": 0.0, "tolerance": rtol}
        for i, (o, t) in enumerate(zip(outs, truth, strict=False)):
            label = "output" if len(truth) == 1 else f"output {i}"
            if not isinstance(o, torch.Tensor):
                return {**result, "message": f"{label} is a {type(o).__name__}, expected a tensor"}
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t)
            if o.device.type != self.device.type:
                return {**result, "message": f"{label} is on {o.device.type}, expected {self.device.type}"}
            owner = self.alloc.owner(o)
            if owner is not None and tuple(o.shape) == tuple(t.shape):
                n = owner.poisoned_count(o)
                if n:
                    return {**result, "message": f"{label}: {n} of {o.numel()} elements never written "
                                                 f"(still poisoned)"}
            e = eager[i] if eager is not None and i < len(eager) and isinstance(eager[i], torch.Tensor) else None
            v = compare_output(label, o, t, e, rtol)
            for k, val in (("max_abs_err", v.max_abs), ("max_rel_err", v.max_rel), ("tolerance", v.tolerance)):
                if val is not None:
                    worst[k] = max(worst[k], val)
            if not v.ok:
                return {**result, **worst, "message": v.message}
        return {**result, **worst, "status": "pass"}


class _RoundedMath:
    """`math` whose float results are rounded to a tensor dtype. A loop-style reference computes each element with
    `math` on Python floats (float64), so its run "in the tested dtype" would not show what that dtype does to it:
    `math.ceil(math.sin(x))`, where float32 `sin` rounds an input near -pi/2 to exactly -1.0, gives -1 in any float32
    kernel and 0 in float64. Rounded like this, the eager yardstick shows the same step."""

    def __init__(self, module, dtype):
        self._module, self._dtype = module, dtype

    def __getattr__(self, name):  # once a name: the wrapper is kept, the loop body's later calls go straight to it
        import torch

        fn = getattr(self._module, name)
        if not callable(fn):
            return fn

        def rounded(*args, **kwargs):
            out = fn(*args, **kwargs)
            return torch.tensor(out, dtype=self._dtype).item() if isinstance(out, float) else out

        setattr(self, name, rounded)
        return rounded


@contextlib.contextmanager
def _math_rounded_to(namespace: dict, dtype):
    """For the eager run of a reference whose module imported `math`: that name bound to `_RoundedMath`."""
    import math

    if namespace.get("math") is not math or not dtype.is_floating_point:
        yield
        return
    namespace["math"] = _RoundedMath(math, dtype)
    try:
        yield
    finally:
        namespace["math"] = math


def _as_list(out) -> list:
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def _set_tensor(mod, name: str, value) -> None:
    import torch

    if name in mod._parameters:
        mod._parameters[name] = torch.nn.Parameter(value, requires_grad=False)
    elif name in mod._buffers:
        mod._buffers[name] = value
    else:
        object.__setattr__(mod, name, value)


def main() -> int:
    # Keep a private copy of stdout for the protocol; anything else printed goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = _emit_to(proto)
    try:
        import faulthandler

        faulthandler.enable()
    except Exception:
        pass
    import torch
    import triton  # noqa: F401  (imported before the memory limit: its import maps a lot)

    from p2t_core.verify.interpreter_compat import patch_interpreter

    patch_interpreter()  # an interpreting worker on numpy >= 2.4

    torch.randn(1 << 16).sum()  # start torch's thread pool before measuring the address space
    if os.environ.get("P2T_WORKER_KIND") == "cuda":
        try:
            from p2t_core.verify.precompile import warm_up

            warm_up()
        except Exception as exc:  # the job meets the same trouble and reports it as the job's
            print(f"p2t worker: CUDA warm-up failed: {_describe_exc(exc)}", file=sys.stderr)
    open(WARM_MARKER, "w").close()  # for runner.wait_for_spare: this worker waits on nothing but its job now
    job = _read_job()  # after the imports: a worker started ahead of its job has them done
    if job is None:
        return 0
    if job.get("mode") == "compile":
        return _compile_main(job, emit)
    recorder = None
    if job["backend"] == "aot":
        from p2t_core.verify.aot import LaunchRecorder

        recorder = LaunchRecorder()
        recorder.install()
    elif job["backend"] == "interpret":
        from p2t_core.verify.aot import LaunchRecorder

        # Interpreted autotuning would benchmark every config: run one per case, in turn.
        LaunchRecorder().install()
    if job["backend"] == "cuda":
        _limit_cuda(torch, int(job.get("memory_limit_mb", 0)))
    else:
        _limit_memory(int(job.get("memory_limit_mb", 0)))
    # A job marked "reuse" keeps the worker for the next job line; runner.py decides, and kills a worker whose job
    # ended with a restart event (a poisoned CUDA context) instead of sending it another.
    while job is not None:
        _run_job(job, emit, recorder)
        job = _read_job() if job.get("reuse") else None
    return 0


def _read_job() -> dict | None:
    """The next job: one JSON line on stdin; None at end of input."""
    line = sys.stdin.readline()
    return json.loads(line) if line.strip() else None


def _run_job(job: dict, emit, recorder) -> None:
    """One job's events, from ready to done."""
    t_job = time.perf_counter()
    emit(event="ready")
    runner = CaseRunner(job, emit)
    err = runner.load()
    if err:
        emit(event="load_error", message=_short(err, 2000))
        emit(event="done")
        return
    emit(event="loaded")
    phases = {"setup_s": time.perf_counter() - t_job}
    if job["backend"] == "cuda" and job.get("precompile", True):
        emit(event="precompile")
        phases.update({f"precompile_{k}": v for k, v in runner.precompile(job["cases"]).items()})
    from p2t_core.verify import aot

    t_cases = time.perf_counter()
    for case in job["cases"]:
        emit(event="start", index=case["index"])
        aot.CONFIG_PICK = case["index"]
        t0 = time.perf_counter()
        try:
            res = runner.run(case)
        except Exception as exc:  # the verifier's own trouble with this case: still that case's failure
            res = {k: case[k] for k in ("index", "bindings", "dtype", "layout")}
            res["message"] = f"verifier error: {_short(_describe_exc(exc))}"
        res.setdefault("status", "fail")
        res["duration_s"] = time.perf_counter() - t0
        emit(event="case", **res)
        if job["backend"] == "cuda" and _cuda_poisoned(res.get("message", "")):
            # An illegal address or a device-side assert poisons the CUDA context: ask for a fresh worker.
            emit(event="restart", reason=res["message"])
            break
    phases["cases_s"] = time.perf_counter() - t_cases
    if recorder is not None:
        emit(event="launches", launches=list(recorder.launches.values()))
        recorder.launches.clear()
    emit(event="phases", phases=phases)
    emit(event="done")


def _compile_main(job: dict, emit) -> int:
    """Compile recorded launches for sm_90; TRITON_INTERPRET is unset here, so kernels are JITFunctions."""
    from p2t_core.verify.aot import compile_launches

    _limit_memory(int(job.get("memory_limit_mb", 0)))
    emit(event="ready")
    path = os.path.abspath("candidate.py")
    with open(path, "w") as f:
        f.write(job["candidate_source"])
    try:
        mod = _load("p2t_candidate", path)
    except BaseException as exc:
        emit(event="load_error", message=_short(f"candidate failed to load: {_describe_exc(exc)}", 2000))
        emit(event="done")
        return 0
    emit(event="loaded")
    compile_launches(mod, job["launches"], on_result=lambda kr: emit(event="kernel", **kr.__dict__))
    emit(event="done")
    return 0


if __name__ == "__main__":
    rc = main()
    # Skip interpreter finalization (torch's atexit work takes about a second); everything is flushed.
    sys.stderr.flush()
    os._exit(rc)
