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
    tolerances: dict[str, float] | None = None  # the verifier's relative tolerances overridden, by dtype name


def function_case(name: str, body: str, params: str = "x", kernels: int | None = 1, **kw) -> ValidationCase:
    """A case whose source is one function `name(params)` with `body`, torch and F imported."""
    source = f"import torch\nimport torch.nn.functional as F\n\n\ndef {name}({params}):\n{body}\n"
    return ValidationCase(name, source, name, n_kernels=kernels, **kw)
