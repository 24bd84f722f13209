"""Plugins' validation cases and the runner behind `p2t validate --plugin NAME`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ValidationCase:
    name: str
    source: str
    unit: str
    n_kernels: int | None = None  # the fused kernel count the translation must have
    shapes: list[dict] = field(default_factory=list)  # explicit per-parameter shapes, e.g. [{"x": (33, 70)}]
    dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16")
