"""Deterministic test-case generation: size-variable bindings, dtypes and memory layouts."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from p2t_core.signature import Signature

# Keep every tensor small enough for the Triton interpreter.
MAX_ELEMS = 50_000
# Base relative tolerances per dtype; "tf32" applies to fp32 matmuls on a GPU.
DEFAULT_TOLERANCES = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2, "float64": 1e-9, "tf32": 1e-2}
# A candidate may be this many times worse than torch eager's own error in the tested dtype.
EAGER_FACTOR = 4.0

_MATMUL_WORDS = ("@", "matmul", "mm(", "bmm", "einsum", "linear", "tensordot", "addmm", "baddbmm")


@dataclass
class Case:
    index: int
    bindings: dict[str, int]
    dtype: str
    layout: str  # "contiguous" | "strided" | "transposed"
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _numel(sig: Signature, bindings: dict[str, int]) -> list[int]:
    out = []
    for t in (*sig.tensor_params, *sig.module_tensors):
        out.append(math.prod(bindings[d] if isinstance(d, str) else d for d in t.dims))
    return out


def _fit(sig: Signature, bindings: dict[str, int], keep: str | None = None) -> dict[str, int]:
    """Shrink the largest variables (other than `keep` first) until every tensor has at most MAX_ELEMS elements."""
    b = dict(bindings)
    lo = {v: max(0, sig.min_sizes.get(v, 0)) for v in b}
    for _ in range(200):
        if max(_numel(sig, b), default=0) <= MAX_ELEMS:
            break
        order = sorted(b, key=lambda v: (v == keep, -b[v]))
        for v in order:
            if b[v] // 2 >= max(lo[v], 1):
                b[v] = max(lo[v], (b[v] // 2) | 1)  # stay odd
                break
        else:
            break
    return b


def _last_dim_var(sig: Signature) -> str | None:
    counts: Counter[str] = Counter()
    for t in sig.tensor_params:
        if t.dims and isinstance(t.dims[-1], str):
            counts[t.dims[-1]] += 1
    if counts:
        return counts.most_common(1)[0][0]
    return sig.size_vars[-1] if sig.size_vars else None


def shape_cases(sig: Signature, seed: int) -> list[dict[str, int]]:
    """About five bindings of the size variables: small odd, all ones, a long last dim, empty, block edges."""
    rng = random.Random(seed)
    vs = list(sig.size_vars)
    if not vs:
        return [{}]

    def clamp(v: str, n: int) -> int:
        return max(n, sig.min_sizes.get(v, 0))

    odd = [3, 5, 7, 37, 11, 13, 9, 17, 19, 23]
    cases: list[dict[str, int]] = []
    start = rng.randrange(len(odd))
    cases.append(_fit(sig, {v: clamp(v, odd[(start + i) % len(odd)]) for i, v in enumerate(vs)}))
    cases.append({v: clamp(v, 1) for v in vs})
    last = _last_dim_var(sig)
    big = {v: clamp(v, rng.choice([3, 5, 7])) for v in vs}
    big[last] = clamp(last, rng.randrange(1001, 1500, 2))
    cases.append(_fit(sig, big, keep=last))
    zeroable = [v for v in vs if sig.min_sizes.get(v, 0) <= 0]
    if zeroable:
        z = rng.choice(zeroable)
        cases.append({v: 0 if v == z else clamp(v, rng.choice([3, 5, 7])) for v in vs})
    edges = [1, 2, 17, 31, 33, 63, 65, 127, 129, 255, 257]
    cases.append(_fit(sig, {v: clamp(v, rng.choice(edges)) for v in vs}))
    # Drop duplicates (few variables give few distinct cases), keep order.
    seen, out = set(), []
    for c in cases:
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def max_rank(sig: Signature) -> int:
    return max((len(t.dims) for t in sig.tensor_params), default=0)


def build_cases(sig: Signature, dtypes: Sequence[str], shapes: Sequence[dict[str, int]] | None, seed: int,
                noncontiguous: bool) -> list[Case]:
    if shapes is None:
        shapes = shape_cases(sig, seed)
    else:
        shapes = [dict(s) for s in shapes]
        for s in shapes:
            missing = [v for v in sig.size_vars if v not in s]
            if missing:
                raise ValueError(f"shape binding {s} lacks size variables {missing}")
    rng = random.Random(seed ^ 0x5EED)
    rank = max_rank(sig)
    cases: list[Case] = []
    for dt in dtypes:
        for b in shapes:
            cases.append(Case(len(cases), dict(b), dt, "contiguous", rng.randrange(2**31)))
        if noncontiguous and rank >= 1 and sig.tensor_params:
            nonempty = [b for b in shapes if all(v > 0 for v in b.values())] or list(shapes)
            layouts = ["strided"] + (["transposed"] if rank >= 2 else [])
            for i, layout in enumerate(layouts):
                # The first (small odd) shape and the long-last-dim one, when there is one.
                b = nonempty[min(i * 2, len(nonempty) - 1)]
                cases.append(Case(len(cases), dict(b), dt, layout, rng.randrange(2**31)))
    return cases


def uses_matmul(source: str) -> bool:
    return any(w in source for w in _MATMUL_WORDS)
