"""Op definitions as plugins register them: name, operands, Python spellings, reference, Triton spelling.

The frontend resolves every call through this registry (a spelling is a qualified name such as
`torch.exp`, `torch.Tensor.exp` for the method, `torch.nn.functional.silu`, `numpy.exp`, `math.exp`),
so a plugin that registers an op also teaches the frontend to read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Op kinds. "elementwise" ops have a Triton spelling; "composite" ops expand into other ops through
# `expand(builder, **operands)`; "reduce", "matmul", "softmax" are lowered by their families' plugins.
KINDS = ("elementwise", "composite", "reduce", "matmul", "softmax")

# Module constants the frontend reads as Python numbers, by qualified name (so a kernel holds their value)
MATH_CONSTANTS = {"math.pi": math.pi, "numpy.pi": math.pi, "torch.pi": math.pi, "math.e": math.e, "numpy.e": math.e,
                  "math.inf": math.inf, "numpy.inf": math.inf, "torch.inf": math.inf}


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    # Operand names in Python's positional order; those in `defaults` are optional.
    args: tuple[str, ...]
    spellings: tuple[str, ...] = ()
    defaults: dict = field(default_factory=dict)
    # Elementwise only: a format string over operand names, e.g. "tl.exp({x})", or a callable
    # `(operands: dict[str, str]) -> str`; operands are already names of fp32 values.
    triton: str | Callable[[dict[str, str]], str] | None = None
    # Triton helper functions the spelling calls, by name (see `register_helper`).
    helpers: tuple[str, ...] = ()
    # The reference semantics: a torch callable taking the operands (validation cases, data generation).
    reference: Callable | None = None
    # "same": promotion of tensor operands; "bool"; "int64"; "float": like "same" but ints become float32.
    result: str = "same"
    # Composite only: builds the op from others.
    expand: Callable | None = None
    # Operands that must be Python/scalar constants known at translation time (e.g. `dim`, `reduction`).
    static: tuple[str, ...] = ()
    # Keyword renames accepted from other spellings, e.g. numpy's {"axis": "dim", "keepdims": "keepdim"}.
    aliases: dict = field(default_factory=dict)
    plugin: str = ""
    doc: str = ""

    def spell(self, operands: dict[str, str]) -> str:
        if callable(self.triton):
            return self.triton(operands)
        return self.triton.format(**operands)


@dataclass
class OpRegistry:
    ops: dict[str, OpDef] = field(default_factory=dict)
    by_spelling: dict[str, OpDef] = field(default_factory=dict)
    helpers: dict[str, str] = field(default_factory=dict)  # helper name -> @triton.jit source

    def add(self, op: OpDef) -> None:
        if op.name in self.ops:
            raise ValueError(f"op {op.name!r} registered twice ({self.ops[op.name].plugin} and {op.plugin})")
        self.ops[op.name] = op
        for s in op.spellings:
            if s in self.by_spelling:
                raise ValueError(f"spelling {s!r} claimed by ops {self.by_spelling[s].name!r} and {op.name!r}")
            self.by_spelling[s] = op

    def lookup(self, spelling: str) -> OpDef | None:
        return self.by_spelling.get(spelling)

    def __getitem__(self, name: str) -> OpDef:
        return self.ops[name]

    def __contains__(self, name: str) -> bool:
        return name in self.ops
