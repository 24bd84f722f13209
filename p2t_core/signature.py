"""The call signature of a translation unit: what the verifier and the benchmarks need to build inputs.

A tensor's shape is a tuple of sizes; a `str` size is a size variable shared by every tensor (and every
size-valued constructor argument) that names it, an `int` size is fixed. The frontend infers these by
unifying the shapes the unit's operations require, so `x @ w` gives `x: (M, K)`, `w: (K, N)`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

Size = str | int
Scalar = int | float | bool


@dataclass(frozen=True)
class TensorParam:
    name: str
    dims: tuple[Size, ...]
    # "float": takes the dtype under test; otherwise a fixed torch dtype name ("bool", "int64", "float32").
    dtype: str = "float"


@dataclass(frozen=True)
class ScalarParam:
    name: str
    kind: str  # "int" | "float" | "bool"
    default: Scalar | None = None


@dataclass(frozen=True)
class InitArg:
    """An argument of a Module's `__init__`; `size_var` is set when it gives a size of a module tensor."""

    name: str
    kind: str  # "int" | "float" | "bool"
    default: Scalar | None = None
    size_var: str | None = None


@dataclass(frozen=True)
class ModuleTensor:
    """A tensor attribute a Module creates in `__init__` (`nn.Parameter(torch.ones(dim))`, a buffer)."""

    name: str
    dims: tuple[Size, ...]
    init: str = "ones"  # "ones" | "zeros" | "randn" | "empty": how `__init__` fills it


@dataclass(frozen=True)
class Signature:
    unit: str
    kind: str  # "function" | "module"
    params: tuple[TensorParam | ScalarParam, ...]  # call parameters in order (`self` excluded)
    n_outputs: int = 1  # 1 for a single tensor; k for a returned tuple of k tensors
    init_args: tuple[InitArg, ...] = ()
    module_tensors: tuple[ModuleTensor, ...] = ()
    # Tensor parameters the unit writes in place (loop-style outputs): compared after the call like outputs.
    inplace: tuple[str, ...] = ()
    # Sizes a variable must not go below (e.g. a dim indexed at position 2 needs >= 3).
    min_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def tensor_params(self) -> tuple[TensorParam, ...]:
        return tuple(p for p in self.params if isinstance(p, TensorParam))

    @property
    def size_vars(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in (*self.tensor_params, *self.module_tensors):
            for d in p.dims:
                if isinstance(d, str):
                    seen.setdefault(d)
        for a in self.init_args:
            if a.size_var:
                seen.setdefault(a.size_var)
        return tuple(seen)

    def to_json(self) -> str:
        data = asdict(self)
        data["params"] = [{"type": type(p).__name__, **asdict(p)} for p in self.params]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Signature:
        data = json.loads(text)
        kinds = {"TensorParam": TensorParam, "ScalarParam": ScalarParam}
        params = []
        for p in data["params"]:
            kind = kinds[p.pop("type")]
            if "dims" in p:
                p["dims"] = tuple(p["dims"])
            params.append(kind(**p))
        return cls(
            unit=data["unit"],
            kind=data["kind"],
            params=tuple(params),
            n_outputs=data["n_outputs"],
            init_args=tuple(InitArg(**a) for a in data["init_args"]),
            module_tensors=tuple(ModuleTensor(**{**t, "dims": tuple(t["dims"])}) for t in data["module_tensors"]),
            min_sizes=dict(data["min_sizes"]),
            inplace=tuple(data.get("inplace", ())),
        )
