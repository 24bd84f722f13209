"""Batch verification: one long-lived worker process verifies many (reference, candidate, signature) items.

`verify()` spawns a fresh worker per call (importing torch and triton: seconds), which is right for one
translation and far too slow for a corpus of tens of thousands of pairs. `verify_batch()` keeps one worker
(`python -m p2t_core.verify.batch`) alive and streams items to it, one JSON line each. The checks are those of
`verify()`, reused from `p2t_core.verify.worker.CaseRunner` (guard bands, poisoned allocations, NaN rules,
tolerances against float64 truth and torch eager); only the shapes are smaller (`small_bindings`: sizes 3..17,
an odd last dim so masks matter) and there are fewer of them.

Items that share a candidate (the same target module and signature, e.g. the renderings of one unit) are
grouped: per case the candidate runs ONCE on the case's inputs, and its outputs are compared with every
rendering's reference outputs on those same inputs (the later renderings replay the recorded outputs through
the same `CaseRunner.run`, so every comparison rule applies). A candidate-level failure (it raised, wrote
outside its outputs, left outputs unwritten) fails every item of the group.

Failure isolation: every item gets its own result. A timeout, crash or memory blow-up kills the worker; the item
it was on fails with the reason ("timeout after 30 s", "worker crashed (signal 11) ..."), a fresh worker is
started for the next item. The worker is also recycled every `max_items` items (interpreter state grows).

The candidate is written to a fresh temp `.py` file per item and imported (`triton.jit` reads kernel source).
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from p2t_core.signature import Signature
from p2t_core.verify.cases import DEFAULT_TOLERANCES, build_cases, uses_matmul
from p2t_core.verify.report import CaseResult, VerifyReport
from p2t_core.verify.runner import (
    PRECOMPILE_STEP,
    STARTUP_TIMEOUT_S,
    WorkerDied,
    _kill,
    death_message,
    drain_pipes,
    worker_env,
)

__all__ = ["BatchItem", "BatchVerifier", "verify_batch", "small_bindings"]

SMALL_LO, SMALL_HI = 3, 17


def small_bindings(signature: Signature, seed: int, n: int = 1) -> list[dict[str, int]]:
    """`n` small bindings of the size variables. The first: an odd size in 9..17 for the most common last dim
    (never a multiple of a power-of-two block, so masks matter) and distinct sizes in 3..7 for the others (a
    swapped dim shows; few rows keep the interpreter's grid small). A second, when asked for, crosses a block
    boundary (33) in that dim."""
    from p2t_core.verify.cases import _last_dim_var

    rng = random.Random(seed)
    vs = list(signature.size_vars)
    if not vs:
        return [{}]
    last = _last_dim_var(signature)
    small = [3, 4, 5, 6, 7]
    rng.shuffle(small)
    others = [v for v in vs if v != last]
    first = {v: small[i % len(small)] for i, v in enumerate(others)}
    if last is not None:
        first[last] = rng.choice([9, 11, 13, 15, 17])
    out = [first]
    if n >= 2:
        second = {v: rng.choice([3, 5]) for v in vs}
        if last is not None:
            second[last] = 33
        out.append(second)
    for _ in range(2, n):
        out.append({v: rng.randrange(SMALL_LO, SMALL_HI + 1) | 1 for v in vs})
    return [{v: max(s, signature.min_sizes.get(v, 0)) for v, s in b.items()} for b in out]


@dataclass
class BatchItem:
    reference_source: str | None
    candidate_source: str
    signature: Signature


def _as_item(x) -> BatchItem:
    if isinstance(x, BatchItem):
        return x
    if isinstance(x, dict):
        return BatchItem(x["reference_source"], x["candidate_source"], x["signature"])
    ref, cand, sig = x
    return BatchItem(ref, cand, sig)


def _failed(case: dict, message: str) -> CaseResult:
    return CaseResult(index=case["index"], bindings=case["bindings"], dtype=case["dtype"], layout=case["layout"],
                      status="fail", message=message)


def _report(cases: list[CaseResult], backend: str, seed: int, error: str | None, duration: float) -> VerifyReport:
    n_pass = sum(c.status == "pass" for c in cases)
    n_fail = sum(c.status == "fail" for c in cases)
    if error is None and n_pass == 0 and n_fail == 0:
        error = "every case was skipped: nothing was verified"
    return VerifyReport(passed=error is None and n_fail == 0 and n_pass > 0, backend=backend, seed=seed,
                        cases=cases, error=error, duration_s=duration)


class BatchVerifier:
    """A long-lived verification worker. Use as a context manager, or call `close()`."""

    def __init__(self, backend: str = "interpret", *, timeout_s: float = 30.0, memory_limit_mb: int = 8192,
                 max_items: int = 2000) -> None:
        from p2t_core.verify import resolve_backend

        self.backend = resolve_backend(backend)
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.max_items = max_items
        self.proc: subprocess.Popen | None = None
        self.tmp: tempfile.TemporaryDirectory | None = None
        self.lines: queue.Queue = queue.Queue()
        self.err_tail: list[bytes] = []
        self.served = 0
        self.starts = 0

    # -- process management ---------------------------------------------------------------------------------
    def _start(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="p2t-vbatch-")
        home, work = os.path.join(self.tmp.name, "home"), os.path.join(self.tmp.name, "work")
        os.mkdir(home)
        os.mkdir(work)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2t_core.verify.batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=work, env=worker_env(self.backend, home), start_new_session=True,
            close_fds=True)
        self.lines, self.err_tail, _ = drain_pipes(self.proc)
        proc = self.proc
        self.starts += 1
        self.served = 0
        proc.stdin.write((json.dumps({"backend": self.backend, "memory_limit_mb": self.memory_limit_mb}) + "\n")
                         .encode())
        proc.stdin.flush()
        ev = self._next(STARTUP_TIMEOUT_S, "starting")
        if ev.get("event") != "ready":
            raise WorkerDied(f"unexpected first event {ev}")

    def _stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                _kill(self.proc)
            self.proc = None
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None

    def close(self) -> None:
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next(self, budget: float, step: str) -> dict:
        try:
            line = self.lines.get(timeout=budget)
        except queue.Empty:
            self._stop()
            raise WorkerDied(f"timeout after {budget:g} s" + ("" if step == "case" else f" ({step})")) from None
        if line is None:
            rc = self.proc.wait() if self.proc is not None else -9
            text = b"".join(self.err_tail).decode(errors="replace")
            self._stop()
            raise WorkerDied(death_message(rc, text))
        return json.loads(line)

    # -- one group: a candidate and the references that share it ----------------------------------------------
    def verify_group(self, candidate_source: str, signature: Signature, references: Sequence[str | None], *,
                     dtypes: Sequence[str] = ("float32",), shapes: Sequence[dict[str, int]] | None = None,
                     seed: int = 0, noncontiguous: bool = False,
                     tolerances: dict[str, float] | None = None) -> list[VerifyReport]:
        """One report per reference: the candidate runs once per case, each reference is compared with it."""
        t0 = time.perf_counter()
        shapes = list(shapes) if shapes is not None else small_bindings(signature, seed)
        cases = [c.to_dict() for c in build_cases(signature, dtypes, shapes, seed, noncontiguous)]
        n = len(references)
        results: list[dict[int, CaseResult]] = [{} for _ in range(n)]
        error: list[str | None] = [None] * n
        job = {"candidate_source": candidate_source, "signature": signature.to_json(),
               "references": list(references), "cases": cases,
               "tolerances": {**DEFAULT_TOLERANCES, **(tolerances or {})},
               "tf32": self.backend == "cuda" and any(r and uses_matmul(r) for r in references)}
        done: set[int] = set()
        restarts = 0

        def fail_rest(why: str) -> None:
            for k, r in enumerate(results):
                error[k] = error[k] or why
                for c in cases:
                    r.setdefault(c["index"], _failed(c, f"not run: {why}"))

        while True:
            pending = [c for c in cases if c["index"] not in done]
            if not pending:
                break
            current = None
            try:
                if self.proc is None or self.served >= self.max_items:
                    self._stop()
                    self._start()
                self.served += 1
                self.proc.stdin.write((json.dumps({**job, "cases": pending}) + "\n").encode())
                self.proc.stdin.flush()
                step = "loading the candidate"
                while True:
                    ev = self._next(self.timeout_s, step)
                    kind = ev["event"]
                    if kind == "start":
                        current, step = ev["index"], "case"
                    elif kind == "precompile":
                        step = PRECOMPILE_STEP
                    elif kind == "case":
                        for k, res in enumerate(ev["results"]):
                            results[k][ev["index"]] = CaseResult.from_dict(res)
                        done.add(ev["index"])
                        current = None
                    elif kind == "load_error":
                        for k, msg in enumerate(ev["messages"]):
                            if msg:
                                error[k] = msg
                                for c in pending:
                                    results[k][c["index"]] = _failed(c, msg)
                        if all(ev["messages"]):
                            done.update(c["index"] for c in pending)
                    elif kind == "item_done":
                        if any(c["index"] not in done for c in pending):
                            fail_rest("the worker did not report every case")
                            done.update(c["index"] for c in pending)
                        break
                    elif kind == "restart":  # a poisoned CUDA context: the rest in a fresh worker
                        self._stop()
                        restarts += 1
                        if restarts > 2:
                            fail_rest(f"worker restarted {restarts} times: {ev.get('reason')}")
                            done.update(c["index"] for c in pending)
                        break
            except (WorkerDied, OSError) as died:
                self._stop()
                why = str(died) if isinstance(died, WorkerDied) else f"worker pipe broke: {died}"
                restarts += 1
                if current is None or restarts > 2:  # died outside a case (startup, load) or too often
                    fail_rest(why)
                    break
                c = next(c for c in pending if c["index"] == current)
                for r in results:
                    r[current] = _failed(c, why)
                done.add(current)
        dt = time.perf_counter() - t0
        return [_report([results[k][c["index"]] for c in cases if c["index"] in results[k]], self.backend, seed,
                        error[k], dt / max(n, 1)) for k in range(n)]


def verify_batch(items, *, backend: str = "interpret", dtypes: Sequence[str] = ("float32",),
                 shapes_per_item: int = 1, timeout_s: float = 30.0, seed: int = 0, noncontiguous: bool = False,
                 verifier: BatchVerifier | None = None, tolerances: dict[str, float] | None = None
                 ) -> list[VerifyReport]:
    """Verify many (reference_source, candidate_source, signature) items (tuples, dicts or `BatchItem`s) in one
    long-lived worker; one `VerifyReport` per item, in order. Items with the same candidate and signature share
    the candidate's runs. `verifier`: an open `BatchVerifier` to reuse (else one is started and closed here).
    `seed` makes the inputs and shapes reproducible (per group: seed mixed with the candidate's hash)."""
    import hashlib

    items = [_as_item(x) for x in items]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.candidate_source, it.signature.to_json()), []).append(i)
    out: list[VerifyReport | None] = [None] * len(items)
    own = verifier is None
    v = verifier or BatchVerifier(backend, timeout_s=timeout_s)
    try:
        for (cand, _), idx in groups.items():
            sig = items[idx[0]].signature
            s = (seed ^ int(hashlib.sha256(cand.encode()).hexdigest()[:8], 16)) & 0x7FFFFFFF
            reports = v.verify_group(cand, sig, [items[i].reference_source for i in idx], dtypes=dtypes,
                                     shapes=small_bindings(sig, s, shapes_per_item), seed=s,
                                     noncontiguous=noncontiguous, tolerances=tolerances)
            for i, r in zip(idx, reports, strict=True):
                out[i] = r
    finally:
        if own:
            v.close()
    return out  # type: ignore[return-value]


# --- the worker ------------------------------------------------------------------------------------------------

_CANDIDATE_LEVEL = ("candidate raised", "candidate __init__ raised", "input modified", "write outside",
                    "verifier error")


def _clone(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    return x


class _Recorder:
    """Wraps the candidate (a function, or a Module class) and keeps what one call returned and wrote."""

    def __init__(self, runner, candidate) -> None:
        self.runner, self.candidate = runner, candidate
        self.called = False
        self.out = None
        self.args: list = []
        self.live_out = None

    def _record(self, fn):
        def call(*args):
            out = fn(*args)
            self.called, self.live_out = True, out
            self.out, self.args = _clone(out), [_clone(a) for a in args]
            return out
        return call

    def wrapped(self):
        if self.runner.sig.kind != "module":
            return self._record(self.candidate)

        def make(**init):
            m = self.candidate(**init)
            m.forward = self._record(m.forward)
            return m
        return make

    def poisoned(self) -> str | None:
        """An output the candidate allocated but left (partly) unwritten: a candidate-level failure."""
        import torch

        outs = self.live_out if isinstance(self.live_out, (tuple, list)) else [self.live_out]
        for i, o in enumerate(outs):
            if isinstance(o, torch.Tensor):
                owner = self.runner.alloc.owner(o)
                n = owner.poisoned_count(o) if owner is not None else 0
                if n:
                    label = "output" if len(outs) == 1 else f"output {i}"
                    return f"{label}: {n} of {o.numel()} elements never written (still poisoned)"
        return None

    def replay(self):
        """A stand-in candidate returning the recorded results (and re-writing in-place parameters)."""
        import torch

        sig, rec = self.runner.sig, self

        def call(*args):
            for (p, a, saved) in zip(sig.params, args, rec.args, strict=False):
                if p.name in sig.inplace and isinstance(a, torch.Tensor):
                    a.copy_(saved)
            return _clone(rec.out)

        if sig.kind != "module":
            return call

        class Replay(torch.nn.Module):
            def forward(self, *args):
                return call(*args)

        return lambda **init: Replay()


def _worker_main() -> int:
    from p2t_core.verify import worker as W

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = W._emit_to(proto)
    first = json.loads(sys.stdin.readline())
    try:
        import faulthandler

        faulthandler.enable()
    except Exception:
        pass
    import torch
    import triton  # noqa: F401

    torch.randn(1 << 16).sum()
    backend = first["backend"]
    if backend in ("interpret", "aot"):
        from p2t_core.verify.aot import LaunchRecorder
        from p2t_core.verify.interpreter_compat import patch_interpreter

        patch_interpreter()
        LaunchRecorder().install()  # interpreted autotuning: one config per case
    if backend == "cuda":
        W._limit_cuda(torch, int(first.get("memory_limit_mb", 0)))
    else:
        W._limit_memory(int(first.get("memory_limit_mb", 0)))
    emit(event="ready")
    from p2t_core.verify import aot

    for n, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        item = json.loads(line)
        _run_item(W, aot, item, backend, emit, n)
        emit(event="item_done")
    return 0


def _run_item(W, aot, item: dict, backend: str, emit, n: int) -> None:
    refs_src = item["references"]
    job = {"reference_source": None, "candidate_source": item["candidate_source"], "signature": item["signature"],
           "backend": backend, "tolerances": item["tolerances"], "tf32": item.get("tf32", False)}
    runner = W.CaseRunner(job, emit)
    runner.cand_path = os.path.abspath(f"cand_{n}.py")
    cand_err = runner.load()
    messages: list[str | None] = []
    refs = []
    for k, src in enumerate(refs_src):
        if cand_err:
            messages.append(cand_err)
            refs.append(None)
            continue
        path = os.path.abspath(f"ref_{n}_{k}.py")
        try:
            with open(path, "w") as f:
                f.write(src)
            refs.append(getattr(W._load(f"p2t_reference_{k}", path), runner.sig.unit))
            messages.append(None)
        except BaseException as exc:
            refs.append(None)
            messages.append(f"reference failed to load: {W._describe_exc(exc)}")
    if any(messages):
        emit(event="load_error", messages=[W._short(m, 2000) if m else None for m in messages])
    if cand_err:
        return
    if backend == "cuda":
        emit(event="precompile")
        runner.precompile(item["cases"])
    candidate = runner.candidate
    for case in item["cases"]:
        emit(event="start", index=case["index"])
        aot.CONFIG_PICK = case["index"]
        rec = _Recorder(runner, candidate)
        shared_fail: dict | None = None
        out = []
        for k, ref in enumerate(refs):
            t0 = time.perf_counter()
            if ref is None:
                out.append({k2: case[k2] for k2 in ("index", "bindings", "dtype", "layout")}
                           | {"status": "fail", "message": messages[k]})
                continue
            if shared_fail is not None:
                out.append(dict(shared_fail))
                continue
            runner.reference = ref
            real = not rec.called
            runner.candidate = rec.wrapped() if real else rec.replay()
            try:
                res = runner.run(case)
            except Exception as exc:
                res = {k2: case[k2] for k2 in ("index", "bindings", "dtype", "layout")}
                res["message"] = f"verifier error: {W._short(W._describe_exc(exc))}"
            res.setdefault("status", "fail")
            msg = res.get("message", "") or ""
            if real and rec.called:
                poison = rec.poisoned()
                if res["status"] != "pass" and (msg.startswith(_CANDIDATE_LEVEL) or "never written" in msg):
                    shared_fail = res
                elif poison:
                    shared_fail = {**res, "status": "fail", "message": poison}
                    res = shared_fail
            elif real and res["status"] != "skip":  # the candidate itself failed before returning
                shared_fail = res
            res["duration_s"] = time.perf_counter() - t0
            out.append(res)
        emit(event="case", index=case["index"], results=out)
        if backend == "cuda" and any(W._cuda_poisoned(r.get("message", "") or "") for r in out):
            emit(event="restart", reason="poisoned CUDA context")
            return
    for k in range(len(refs)):
        sys.modules.pop(f"p2t_reference_{k}", None)
    sys.modules.pop("p2t_candidate", None)


if __name__ == "__main__":
    rc = _worker_main()
    sys.stderr.flush()
    os._exit(rc)
