"""Compiling a candidate's kernels before its cases run, side by side (the CUDA backend).

Each case's sizes and layouts can give a kernel another specialization (ints divisible by 16 or equal to 1, block
sizes chosen from the shapes, every tile configuration an autotuning launcher tries), and Triton compiles each one
when it is first launched, one after another: 0.1-1 s apiece, most of what a verification costs on a GPU
(docs/BENCHMARKS.md, "Latency under 1 s with verification"). Here a dry pass runs every case's launcher with
compiling and launching suppressed and collects the specializations it asked for; forked children compile them, and
build their launchers, into Triton's on-disk cache at the same time; the cases then load every kernel from there.

Nothing here decides a verdict: a specialization the children miss (a child that fails or runs out of time, a
launcher that raised in the dry pass) is compiled by the case that launches it, as without this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

# Children never outlive this: what they have not compiled by then, the cases compile themselves.
CHILDREN_TIMEOUT_S = 20.0
_compile_for_real = JITFunction._do_compile


@contextlib.contextmanager
def collecting() -> Iterator[dict]:
    """While active, launching a @triton.jit kernel records the specialization it would compile (keyed by kernel and
    Triton's cache key) and neither compiles nor launches; an autotuned kernel records every config it would try."""
    found: dict = {}

    def record(self, key, signature, device, constexprs, options, attrs, warmup):
        found.setdefault((id(self), str(key)), (self, key, signature, device, constexprs, options, attrs))
        return None  # JITFunction.run launches nothing without a kernel

    def every_config(self, *args, **kwargs):
        self.nargs = dict(zip(self.arg_names, args, strict=False))
        configs = self.prune_configs(kwargs) if len(self.configs) > 1 else self.configs
        for config in configs:
            self.fn.run(*args, **kwargs, **config.all_kwargs())
        self.nargs = None

    autotuned = Autotuner.run
    JITFunction._do_compile, Autotuner.run = record, every_config
    try:
        yield found
    finally:
        JITFunction._do_compile, Autotuner.run = _compile_for_real, autotuned


def compile_specialization(spec: tuple) -> None:
    """Compile one collected specialization into Triton's cache and build its launcher there (no CUDA calls: safe in
    a child forked from a process that holds a CUDA context)."""
    from triton.runtime.driver import driver

    jit, key, signature, device, constexprs, options, attrs = spec
    kernel = _compile_for_real(jit, key, signature, device, constexprs, options, attrs, True)
    driver.active.launcher_cls(kernel.src, kernel.metadata)


def fork_map(fn: Callable[[object], None], items: Sequence, workers: int, timeout_s: float) -> list[bool]:
    """Run `fn(item)` for every item in up to `workers` forked children (child k takes items k, k + workers, ...),
    waiting at most `timeout_s`; children still running then are killed. Returns, per item, whether its child
    finished every item it had without an exception."""
    workers = max(1, min(workers, len(items)))
    children: dict[int, int] = {}
    for k in range(workers):
        with warnings.catch_warnings():  # the children only compile: no CUDA, no torch threads, no locks of theirs
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its share, then out without running the parent's exit handlers
            code = 0
            try:
                for item in items[k::workers]:
                    fn(item)
            except BaseException:
                code = 1
            os._exit(code)
        children[pid] = k
    ok_children: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.waitstatus_to_exitcode(status) == 0:
                    ok_children.add(children[pid])
                del children[pid]
        if children:
            time.sleep(0.005)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return [i % workers in ok_children for i in range(len(items))]


def precompile(dry_run: Callable[[], None], workers: int | None = None,
               timeout_s: float = CHILDREN_TIMEOUT_S) -> dict[str, float]:
    """Run `dry_run` (every case's launcher) while collecting, then compile what it asked for in forked children.
    Returns what it did: specializations found, compiled, and the seconds of each part."""
    t0 = time.perf_counter()
    with collecting() as found:
        dry_run()
    specs = list(found.values())
    t1 = time.perf_counter()
    ok = fork_map(compile_specialization, specs, workers or os.cpu_count() or 1, timeout_s) if specs else []
    return {"specializations": len(specs), "compiled": sum(ok), "dry_run_s": t1 - t0,
            "compile_s": time.perf_counter() - t1}


# The warm-up's rehearsal: a unit and a module in the generated-module contract, small but using what generated
# launchers use (torch.broadcast_shapes, promote_types, an allocation, a JIT launch).
REHEARSAL_REFERENCE = """
import torch


def p2t_warm_up(x, y):
    return torch.sigmoid(x) * y + 1.0
"""

REHEARSAL_CANDIDATE = """
import torch
import triton
import triton.language as tl


@triton.jit
def _p2t_warm_up_kernel(X_ptr, Y_ptr, Out_ptr, n_elements, n_cols, x_row_stride, x_col_stride, y_col_stride,
                        BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    rows = offsets // n_cols
    cols = offsets % n_cols
    x = tl.load(X_ptr + rows * x_row_stride + cols * x_col_stride, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(Y_ptr + cols * y_col_stride, mask=mask, other=0.0).to(tl.float32)
    tl.store(Out_ptr + offsets, (tl.sigmoid(x) * y + 1.0).to(Out_ptr.dtype.element_ty), mask=mask)


def p2t_warm_up(x, y):
    shape = torch.broadcast_shapes(x.shape, y.shape)
    out = torch.empty(shape, dtype=torch.promote_types(x.dtype, y.dtype), device=x.device)
    if out.numel():
        grid = (triton.cdiv(out.numel(), 256),)
        _p2t_warm_up_kernel[grid](x, y, out, out.numel(), shape[1], x.stride(0), x.stride(1), y.stride(0),
                                  BLOCK_SIZE=256)
    return out
"""


def rehearsal_signature():
    from p2t_core.signature import Signature, TensorParam

    return Signature(unit="p2t_warm_up", kind="function",
                     params=(TensorParam("x", ("M", "N")), TensorParam("y", ("N",))))


def warm_up() -> None:
    """What a CUDA worker would otherwise pay on its first candidate's time, paid by a spare worker before its job
    arrives: modules torch imports on first use (torch.broadcast_shapes imports sympy: 2.5 s of byte-compiling on
    the H200's host, where workers write no .pyc), the CUDA context, Triton's driver utilities, and a rehearsal that
    verifies a small module through the whole case machinery (guards, the compile-ahead, comparisons: torch's lazily
    loaded CUDA kernels; a launcher compiled into the shared cache the first time on a machine)."""
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    from p2t_core.verify import DEFAULT_TOLERANCES, cases_job
    from p2t_core.verify.cases import build_cases
    from p2t_core.verify.worker import CaseRunner

    sig = rehearsal_signature()
    runner = CaseRunner(cases_job(REHEARSAL_REFERENCE, REHEARSAL_CANDIDATE, sig, "cuda", DEFAULT_TOLERANCES, 0),
                        emit=lambda **event: None)
    runner.cand_path = os.path.abspath("warm_up_candidate.py")
    if runner.load() is None:
        cases = [c.to_dict() for c in build_cases(sig, ("float32",), None, 0, True)]
        runner.precompile(cases)
        for case in cases:
            runner.run(case)
