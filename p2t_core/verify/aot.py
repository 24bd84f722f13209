"""Ahead-of-time compile for sm_90 without a GPU.

The candidate runs under the Triton interpreter while every kernel launch is recorded (argument types,
constexpr values, num_warps/num_stages, and for autotuned kernels every config). The candidate file is then
loaded a second time with the interpreter off, so its kernels are real `JITFunction`s, and each distinct
launch signature is compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`.
Recording happens in the interpreting worker; compiling in a second worker where the interpreter never ran.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from p2t_core.verify.report import H100_SHARED_LIMIT, KernelResult

_PTR = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64", "int64": "i64",
        "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "i1"}
_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg")
# Which autotune config an interpreted launch runs: the worker sets it to the case index, so the cases
# spread over all configs (each config is checked numerically without running every one every time).
CONFIG_PICK = 0


def _describe(value: Any) -> tuple:
    """A hashable description of one launch argument."""
    import torch

    if isinstance(value, torch.Tensor):
        # Like the JIT, note 16-byte alignment: it sets tt.divisibility, which changes layouts and shared memory.
        return ("ptr", _PTR.get(str(value.dtype).removeprefix("torch."), "fp32"), value.data_ptr() % 16 == 0)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if value is None:
        return ("none", None)
    import triton.language as tl

    if isinstance(value, tl.dtype):
        return ("dtype", value.name)
    return ("other", repr(value))


class LaunchRecorder:
    """Records kernel launches made under the interpreter; runs one config (CONFIG_PICK) of autotuned ones.
    With execute=False nothing runs and each launch also records its grid: what a module would launch at shapes
    too large to interpret (scripts/kernel_anatomy.py)."""

    def __init__(self, execute: bool = True) -> None:
        self.launches: dict[tuple, dict] = {}
        self.execute = execute

    def record(self, name: str, arg_names: list[str], args: tuple, kwargs: dict) -> None:
        named = dict(zip(arg_names, args, strict=False))
        named.update({k: v for k, v in kwargs.items() if k not in ("grid", "warmup")})
        desc = {k: _describe(v) for k, v in named.items()}
        key = (name, tuple(sorted(desc.items())))
        if key not in self.launches:
            self.launches[key] = {"name": name, "args": desc}
            if not self.execute:
                grid = kwargs["grid"](named) if callable(kwargs["grid"]) else kwargs["grid"]
                self.launches[key]["grid"] = [int(g) for g in grid]

    def install(self) -> None:
        from triton.runtime import autotuner, interpreter

        recorder = self
        orig_run = interpreter.InterpretedFunction.run

        def run(self, *args, grid, warmup, **kwargs):
            recorder.record(self.fn.__name__, self.arg_names, args, {**kwargs, "grid": grid})
            if recorder.execute:
                return orig_run(self, *args, grid=grid, warmup=warmup, **kwargs)

        interpreter.InterpretedFunction.run = run

        def autotuned_run(self, *args, **kwargs):
            # Benchmarking configs under the interpreter is pointless: record every config, run one of them.
            self.nargs = dict(zip(self.arg_names, args, strict=False))
            configs = self.prune_configs(kwargs) if len(self.configs) > 1 else self.configs
            base = _base_fn(self)
            pick = CONFIG_PICK % len(configs) if recorder.execute else None
            for i, cfg in enumerate(configs):
                if i != pick:
                    recorder.record(base.__name__, base.arg_names, args, {**kwargs, **cfg.all_kwargs()})
            if pick is None:
                self.nargs = None
                return None
            cfg = configs[pick]
            self.best_config = cfg
            if cfg.pre_hook is not None:
                cfg.pre_hook({**self.nargs, **kwargs, **cfg.all_kwargs()})
            try:
                return self.fn.run(*args, **kwargs, **cfg.all_kwargs())
            finally:
                self.nargs = None

        autotuner.Autotuner.run = autotuned_run


def _base_fn(k):
    while hasattr(k, "fn") and not callable(getattr(k, "__code__", None)) and hasattr(k.fn, "fn"):
        k = k.fn
    return k


def _find_kernel(module, name: str):
    """The JITFunction called `name` in `module` (possibly wrapped by autotune/heuristics)."""
    from triton.runtime.jit import JITFunction

    for obj in vars(module).values():
        k = obj
        for _ in range(5):
            if isinstance(k, JITFunction):
                if k.fn.__name__ == name:
                    return k
                break
            k = getattr(k, "fn", None)
            if k is None:
                break
    return None


def _plan(kernel, args: dict) -> tuple[dict, dict, dict, dict]:
    """(signature, constexprs, attrs, options) for ASTSource/triton.compile from one recorded launch, with the
    JIT's alignment specialization (pointers 16-byte aligned, ints divisible by 16 get tt.divisibility=16)."""
    import triton.language as tl

    signature, constexprs, attrs = {}, {}, {}
    options = {k: args[k][1] for k in _OPTIONS if k in args and args[k][1] is not None}
    for p in kernel.params:
        if p.name in args:
            d = args[p.name]
        elif p.has_default:
            d = _describe(p.default)
        else:
            raise ValueError(f"argument {p.name} was not passed")
        if d[0] == "other":
            raise ValueError(f"cannot rebuild argument {p.name}={d[1]} for the compile")
        if p.is_constexpr or d[0] in ("none", "dtype"):
            signature[p.name] = "constexpr"
            constexprs[p.name] = tl.dtype(d[1]) if d[0] == "dtype" else d[1]
        elif d[0] == "ptr":
            signature[p.name] = "*" + d[1]
            if len(d) > 2 and d[2] and not p.do_not_specialize_on_alignment:
                attrs[(p.num,)] = [["tt.divisibility", 16]]
        else:  # bool / int / float: specialized exactly as the JIT would (1 -> constexpr, %16 -> divisibility)
            ty, attr = _specialize_scalar(d[1], not p.do_not_specialize, not p.do_not_specialize_on_alignment)
            if ty == "constexpr":
                signature[p.name] = "constexpr"
                constexprs[p.name] = attr
            else:
                signature[p.name] = ty
                if attr == "D":
                    attrs[(p.num,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs, options


def _specialize_scalar(value, specialize: bool, align: bool) -> tuple[str, Any]:
    try:
        from triton.backends.compiler import BaseBackend
        from triton.runtime.jit import native_specialize_impl

        return native_specialize_impl(BaseBackend, value, False, specialize, align)
    except Exception:  # a Triton without the native helper: plain types, no specialization
        if isinstance(value, bool):
            return "i1", None
        if isinstance(value, int):
            return ("i32" if -(2**31) <= value < 2**31 else "i64"), None
        return "fp32", None


def compile_launches(jit_module, launches: list[dict], on_result=None) -> list[KernelResult]:
    """Compile each distinct recorded launch (same kernel, argument types, constexprs and options compile
    once); must run in a process where the interpreter never ran (it patches `triton.language` in place).
    `on_result(KernelResult)` is called after each compile."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    results: list[KernelResult] = []
    seen: set[str] = set()
    target = GPUTarget("cuda", 90, 32)
    for launch in launches:
        name, args = launch["name"], {k: tuple(v) for k, v in launch["args"].items()}
        kr = KernelResult(name=name, signature={})
        t0 = time.perf_counter()
        kernel = _find_kernel(jit_module, name)
        try:
            if kernel is None:
                raise LookupError(f"kernel {name} is not a module-level @triton.jit function")
            signature, constexprs, attrs, options = _plan(kernel, args)
            kr.signature = signature
            kr.divisible = [kernel.params[k[0]].name for k in sorted(attrs)]
            kr.constexprs = {k: v if isinstance(v, (int, float, bool, str, type(None))) else str(v)
                             for k, v in constexprs.items()}
            kr.num_warps = int(options.get("num_warps", 4))
            kr.num_stages = int(options.get("num_stages", 3))
            key = repr((name, sorted(signature.items()), sorted(kr.constexprs.items()), kr.divisible,
                        sorted(options.items())))
            if key in seen:
                continue
            seen.add(key)
            src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
            compiled = triton.compile(src, target=target, options=options)
            kr.shared = int(compiled.metadata.shared)
            kr.registers = _cubin_registers(compiled)
            if kr.shared > H100_SHARED_LIMIT:
                kr.error = f"needs {kr.shared} bytes of shared memory, the H100 limit is {H100_SHARED_LIMIT}"
            else:
                kr.ok = True
        except Exception as exc:  # a compile error is this kernel's failure, not the worker's
            msg = str(exc).strip() or type(exc).__name__
            kr.error = f"{type(exc).__name__}: {msg[-1500:]}"
        kr.duration_s = time.perf_counter() - t0
        results.append(kr)
        if on_result is not None:
            on_result(kr)
    return results


def _cubin_registers(compiled) -> int | None:
    """Registers per thread, read from the EIATTR_REGCOUNT attribute of the cubin's .nv.info sections."""
    try:
        data = compiled.asm["cubin"]
        if data[:4] != b"\x7fELF" or data[4] != 2:
            return None
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        strtab = sections[shstrndx]
        for sh in sections:
            sec_name = data[strtab[4] + sh[0]:].split(b"\0", 1)[0]
            if not sec_name.startswith(b".nv.info"):
                continue
            off, size = sh[4], sh[5]
            pos = off
            while pos + 4 <= off + size:
                fmt, attr, length = struct.unpack_from("<BBH", data, pos)
                if fmt == 0x04:  # EIFMT_SVAL: `length` bytes follow
                    if attr == 0x2F and length >= 8:  # EIATTR_REGCOUNT: (function index, count)
                        return struct.unpack_from("<II", data, pos + 4)[1]
                    pos += 4 + length
                else:  # EIFMT_NVAL / EIFMT_HVAL: the value is the 2 bytes already read
                    pos += 4
        return None
    except Exception:
        return None
