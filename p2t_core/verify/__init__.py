"""The verifier: differential testing of a generated Triton module against the user's Python.

`verify()` runs the candidate and the reference on fresh random inputs for several shapes, dtypes and
layouts, in a worker process (timeouts, crashes and memory blow-ups are failed checks, not a dead caller),
with poisoned outputs and guard bands around every tensor. See DESIGN.md, "The verifier".
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from p2t_core.signature import Signature
from p2t_core.verify.cases import DEFAULT_TOLERANCES, build_cases, shape_cases, uses_matmul
from p2t_core.verify.report import H100_SHARED_LIMIT, CaseResult, KernelResult, VerifyReport
from p2t_core.verify.runner import MAX_RESTARTS, WorkerDied, prestart, run_job

__all__ = ["verify", "aot_compile_module", "VerifyReport", "CaseResult", "KernelResult", "shape_cases",
           "DEFAULT_TOLERANCES", "H100_SHARED_LIMIT", "resolve_backend", "interpreter_problem", "cases_job"]

BACKENDS = ("auto", "cuda", "interpret", "aot")
# On CUDA, compile every case's kernels before the cases, in forked children (p2t_core.verify.precompile).
# False only to measure what that saves (scripts/llm_latency.py --no-precompile).
PRECOMPILE = True


def interpreter_problem() -> str | None:
    """Why the Triton interpreter cannot be trusted here, or None. Triton 3.6's interpreter raises on numpy >= 2.4
    in every kernel that loops over a runtime bound ("only 0-dimensional arrays can be converted to Python
    scalars"), which would read as a wrong candidate. `interpreter_compat.patch_interpreter` fixes that where kernels
    are interpreted; on numpy >= 2.4 its self-check (run once per process) decides."""
    from p2t_core.verify.interpreter_compat import FIXED_FROM, numpy_version, self_check

    if numpy_version() < FIXED_FROM or (problem := self_check()) is None:
        return None
    return (f"the Triton interpreter fails its self-check on this numpy ({problem}): `pip install 'numpy<2.4'`, "
            "or verify with --backend cuda on a GPU")


def cases_job(reference_source: str | None, candidate_source: str, signature: Signature, backend: str,
              tolerances: dict[str, float], memory_limit_mb: int) -> dict:
    """What a worker (`p2t_core.verify.worker`) is told to check, without its cases (the caller adds `cases`)."""
    return {
        "reference_source": reference_source,
        "candidate_source": candidate_source,
        "signature": signature.to_json(),
        "backend": backend,
        "tolerances": tolerances,
        "tf32": backend == "cuda" and reference_source is not None and uses_matmul(reference_source),
        "memory_limit_mb": memory_limit_mb,
        "precompile": PRECOMPILE,
    }


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "interpret"
    return backend


def verify(reference_source: str | None, candidate_source: str, signature: Signature, *,
           backend: str = "auto",
           dtypes: Sequence[str] = ("float32", "float16", "bfloat16"),
           shapes: Sequence[dict[str, int]] | None = None,
           seed: int | None = None, timeout_s: float = 60.0, memory_limit_mb: int = 8192,
           noncontiguous: bool = True, tolerances: dict[str, float] | None = None) -> VerifyReport:
    """Check `candidate_source` (a module in the generated-module contract) against the unit
    `signature.unit` of `reference_source`. Returns a report; never raises for a bad candidate.

    backend: "auto" (cuda if available, else interpret), "cuda", "interpret", or "aot" (interpret plus an
    sm_90 compile of every launched kernel). shapes: bindings of the size variables (None: generated edge
    cases). seed: None picks a fresh one (reported, so a failure can be replayed). timeout_s bounds each case
    (and the candidate's import); memory_limit_mb caps what the worker may allocate beyond its imports.
    tolerances: overrides of the base relative tolerances, keyed by dtype name or "tf32".
    A `reference_source` of None only runs the candidate (used by `aot_compile_module`).
    """
    t0 = time.perf_counter()
    backend = resolve_backend(backend)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    cases = build_cases(signature, dtypes, shapes, seed, noncontiguous)
    problem = interpreter_problem() if backend in ("interpret", "aot") else None
    if problem:
        return VerifyReport(passed=False, backend=backend, seed=seed, error=problem,
                            cases=[_failed(c.to_dict(), f"not run: {problem}") for c in cases],
                            duration_s=time.perf_counter() - t0)
    if backend == "cuda":
        import torch

        if not torch.cuda.is_available():
            return VerifyReport(passed=False, backend=backend, seed=seed,
                                cases=[_failed(c.to_dict(), "not run: no CUDA device") for c in cases],
                                error="backend cuda asked for, but torch sees no CUDA device",
                                duration_s=time.perf_counter() - t0)
    job = cases_job(reference_source, candidate_source, signature, backend, tol, memory_limit_mb)
    if backend == "aot":  # the sm_90 compile worker imports torch and triton while the cases are interpreted
        prestart("compile")
    results: dict[int, CaseResult] = {}
    kernels: list[KernelResult] = []
    error: str | None = None
    launches: list[dict] = []
    phases: dict[str, float] = {}
    pending = [c.to_dict() for c in cases]
    restarts = 0
    while pending:
        current, fresh = None, None
        try:
            for ev in run_job({**job, "cases": pending}, timeout_s):
                kind = ev["event"]
                if kind == "start":
                    current = ev["index"]
                elif kind == "case":
                    results[ev["index"]] = CaseResult.from_dict(ev)
                    current = None
                elif kind == "load_error":
                    error = ev["message"]
                    for c in pending:
                        results[c["index"]] = _failed(c, error)
                elif kind == "restart":
                    fresh = ev["reason"]
                elif kind == "launches":
                    launches += [x for x in ev["launches"] if x not in launches]
                elif kind == "phases":
                    phases.update(ev["phases"])
            if fresh is None:
                break
            # The worker asked for a fresh process (a poisoned CUDA context): run what is left in a new one.
            pending = [c for c in pending if c["index"] not in results]
            restarts += 1
            if restarts > MAX_RESTARTS:
                for c in pending:
                    results[c["index"]] = _failed(c, f"not run: worker restarted {restarts} times; last: {fresh}")
                break
        except WorkerDied as died:
            reason = str(died)
            if current is not None:
                results[current] = _failed(next(c for c in pending if c["index"] == current), reason)
            pending = [c for c in pending if c["index"] not in results]
            restarts += 1
            if current is None or restarts > MAX_RESTARTS:
                # Died outside a case (startup, load, compile) or too often: give up on what is left.
                error = reason if current is None else f"worker died {restarts} times; last: {reason}"
                for c in pending:
                    results[c["index"]] = _failed(c, f"not run: {error}")
                break
    if backend == "aot" and launches:
        kernels, compile_error = _compile(candidate_source, launches, timeout_s, memory_limit_mb)
        error = error or compile_error
    ordered = [results[c.index] for c in cases if c.index in results]
    n_pass = sum(c.status == "pass" for c in ordered)
    n_fail = sum(c.status == "fail" for c in ordered)
    kernels_ok = all(k.ok for k in kernels)
    if backend == "aot" and not kernels and error is None and n_pass:
        error = "no kernel launch was recorded: the candidate launched no @triton.jit kernel"
    passed = error is None and n_fail == 0 and n_pass > 0 and kernels_ok
    if error is None and n_pass == 0 and n_fail == 0:
        error = "every case was skipped: nothing was verified"
    return VerifyReport(passed=passed, backend=backend, seed=seed, cases=ordered, kernels=kernels, error=error,
                        duration_s=time.perf_counter() - t0, phases=phases)


def _compile(candidate_source: str, launches: list[dict], timeout_s: float,
             memory_limit_mb: int) -> tuple[list[KernelResult], str | None]:
    """The sm_90 compiles, in a fresh worker (the interpreter patches triton.language in place)."""
    job = {"mode": "compile", "backend": "compile", "candidate_source": candidate_source, "launches": launches,
           "memory_limit_mb": memory_limit_mb}
    kernels: list[KernelResult] = []
    try:
        for ev in run_job(job, timeout_s):
            if ev["event"] == "kernel":
                kernels.append(KernelResult.from_dict(ev))
            elif ev["event"] == "load_error":
                return kernels, ev["message"]
    except WorkerDied as died:
        done = len(kernels)
        name = launches[done]["name"] if done < len(launches) else "?"
        kernels.append(KernelResult(name=name, signature={}, error=f"sm_90 compile: {died}"))
        return kernels, f"sm_90 compile of {name}: {died}"
    return kernels, None


def _failed(case: dict, message: str) -> CaseResult:
    return CaseResult(index=case["index"], bindings=case["bindings"], dtype=case["dtype"], layout=case["layout"],
                      status="fail", message=message)


def aot_compile_module(candidate_source: str, signature: Signature, *,
                       dtypes: Sequence[str] = ("float32", "float16", "bfloat16"),
                       shapes: Sequence[dict[str, int]] | None = None, seed: int | None = 0,
                       timeout_s: float = 120.0) -> list[KernelResult]:
    """Compile for sm_90 every kernel the candidate launches (run once per dtype under the interpreter, to
    record launch signatures). Returns one KernelResult per distinct launch signature; a worker-level failure
    comes back as a single failed KernelResult named "<module>"."""
    if shapes is None:
        shapes = shape_cases(signature, seed or 0)[:1]
    report = verify(None, candidate_source, signature, backend="aot", dtypes=dtypes, shapes=shapes, seed=seed,
                    timeout_s=timeout_s, noncontiguous=False)
    if report.kernels:
        return report.kernels
    why = report.error or "; ".join(c.message for c in report.failures) or "no kernel was launched"
    return [KernelResult(name="<module>", signature={}, ok=False, error=why)]
