"""Result types of the verifier: one `CaseResult` per (shapes, dtype, layout), `KernelResult` per AOT compile."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The shared-memory limit of one H100 (sm_90) thread block, in bytes.
H100_SHARED_LIMIT = 232448


@dataclass
class CaseResult:
    index: int
    bindings: dict[str, int]
    dtype: str
    layout: str  # "contiguous" | "strided" | "transposed"
    status: str = "fail"  # "pass" | "fail" | "skip"
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    tolerance: float | None = None  # the effective relative tolerance the outputs were held to
    message: str = ""
    duration_s: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class KernelResult:
    """One sm_90 ahead-of-time compile of a kernel launched by the candidate (one per distinct signature)."""

    name: str
    signature: dict[str, str]
    constexprs: dict[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3
    divisible: list[str] = field(default_factory=list)  # args specialized as divisible by 16, as the JIT does
    ok: bool = False
    error: str = ""
    shared: int | None = None  # bytes of shared memory per block
    registers: int | None = None  # registers per thread, read from the cubin when possible
    duration_s: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KernelResult:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class VerifyReport:
    passed: bool
    backend: str
    seed: int
    cases: list[CaseResult] = field(default_factory=list)
    kernels: list[KernelResult] = field(default_factory=list)
    error: str | None = None  # worker-level trouble (candidate failed to load, worker died, ...)
    duration_s: float = 0.0
    # The last worker's phases (worker.py): seconds (names ending in _s) and, on CUDA, the compile-ahead's counts.
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        n = {s: sum(c.status == s for c in self.cases) for s in ("pass", "fail", "skip")}
        head = "PASSED" if self.passed else "FAILED"
        text = (f"{head}: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped "
                f"[backend {self.backend}, seed {self.seed}, {self.duration_s:.1f} s]")
        if self.kernels:
            bad = sum(not k.ok for k in self.kernels)
            text += f"; sm_90 compile: {len(self.kernels) - bad}/{len(self.kernels)} ok"
        return text

    def render(self) -> str:
        """A compact plain-text table (the CLI prints it on stderr)."""
        rows = [("#", "dtype", "shapes", "layout", "status", "max abs", "max rel", "tol", "message")]
        for c in self.cases:
            shapes = ",".join(f"{k}={v}" for k, v in c.bindings.items()) or "-"
            rows.append((str(c.index), c.dtype, shapes, c.layout, c.status.upper(), _num(c.max_abs_err),
                         _num(c.max_rel_err), _num(c.tolerance), _short(c.message)))
        lines = _table(rows)
        if self.kernels:
            krows = [("kernel", "signature", "constexprs", "warps", "stages", "shared", "regs", "status")]
            for k in self.kernels:
                sig = ",".join(v for v in k.signature.values() if v != "constexpr")
                const = ",".join(f"{n}={v}" for n, v in k.constexprs.items())
                krows.append((k.name, _short(sig, 40), _short(const, 30), str(k.num_warps), str(k.num_stages),
                              "-" if k.shared is None else str(k.shared),
                              "-" if k.registers is None else str(k.registers),
                              "ok" if k.ok else _short("FAIL " + k.error)))
            lines += [""] + _table(krows)
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(self.summary())
        return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip() for r in rows]
