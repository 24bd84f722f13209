"""Pair format 7: an elementwise kernel's values named after the prompt's locals that hold the same values.

In formats 3 to 6 the prompt numbers its locals `v1, v2, ...` one operation a line, and the kernel numbers its
values the same way, one node of the compiler's graph a line. The two counts part where one graph node spells
several of the prompt's operations: a NumPy, method or loop rendering writes `torch.sigmoid` or `F.silu` out as
`-x`, `exp`, `1 + ...` and a division (four locals), the kernel, lowered from the unit's graph (DESIGN.md), has
one `sigmoid` line; two loop clamps are one clamp node. From there on the kernel's `v7` is the prompt's `v10`, and
the model has to carry that offset through the rest of the chain. The format-6 weights failed there: on the
nineteenth session's samples, elementwise units whose kernel and prompt count their values alike verified 42 of 44
(valid_random) and 33 of 41 (compositional), those whose counts part 11 of 17 and 3 of 12; in most failing
candidates the model used the prompt's number of a value where the kernel's was meant.

Format 7 renames the kernel's values instead: each kernel value takes the name of the prompt local that holds the
same values, found by running both on the same float64 inputs (the prompt as Python, the kernel's lines with
`tl` stood in for by torch). The match is monotone, each value taking the first local after the previous one's
that agrees, so a value spelled in one line gets the name of the last local of the operations it spells, and
every later line reads as the prompt does (`v10 = v9 + a2` where the prompt has `v10 = v9 + a2`). Where the
values cannot be computed this way (no straight-line function, a scalar parameter, a row kernel, bit casts) or the
kernel's last value matches no local, the target is left as format 6 writes it. A kernel value that holds no
local's values (the kernel spells one of the prompt's operations in two lines) is named after the next one that
does: `v1_1`.

Only training reads this (the model's output needs no renaming back: the names are the kernel's own); it runs
the corpus' own prompts, which the data pipeline generated and verified.
"""

from __future__ import annotations

import ast
import re
import warnings

import torch

from p2t_core.codegen.module import helper_closure

__all__ = ["align_kernel_names"]

_KERNEL = re.compile(r"^@triton\.jit\ndef (\w+)\(.*?\n\):\n(.*?)(?=^\S|\Z)", re.M | re.S)
_LOAD = re.compile(r"^    (a\d+) = tl\.load\(", re.M)
_VALUE = re.compile(r"^    (v\d+) = (.+)$", re.M)
_NAME = re.compile(r"\bv\d+\b")


class _Tl:
    """The parts of `triton.language` an elementwise kernel's value lines use, on float64 torch tensors."""

    float16, bfloat16, int1 = torch.float16, torch.bfloat16, torch.bool
    float32 = float64 = torch.float64  # the kernel computes in fp32 where the prompt computes in float64
    int8, int16, int32, int64 = torch.int8, torch.int16, torch.int32, torch.int64
    uint8 = torch.uint8

    class PropagateNan:
        ALL = NONE = None

    exp, exp2, log, log2, sqrt, rsqrt = torch.exp, torch.exp2, torch.log, torch.log2, torch.sqrt, torch.rsqrt
    abs, sin, cos, erf, floor, ceil = torch.abs, torch.sin, torch.cos, torch.erf, torch.floor, torch.ceil
    sigmoid, zeros_like, fma = torch.sigmoid, torch.zeros_like, staticmethod(lambda x, y, z: x * y + z)

    @staticmethod
    def where(c, x, y):
        return torch.where(torch.as_tensor(c).bool(), torch.as_tensor(x, dtype=torch.float64),
                           torch.as_tensor(y, dtype=torch.float64))

    @staticmethod
    def minimum(x, y, propagate_nan=None):
        return torch.minimum(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64))

    @staticmethod
    def maximum(x, y, propagate_nan=None):
        return torch.maximum(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64))


def _as_float64(value, shape) -> torch.Tensor | None:
    try:
        t = torch.as_tensor(value)
        return t.to(torch.float64).expand(shape) if t.dtype != torch.complex128 else None
    except (TypeError, RuntimeError, ValueError):
        return None


def _prompt_locals(prompt: str) -> tuple[dict[str, object], tuple[int, ...]] | None:
    """The values of the prompt's unit function's locals on float64 inputs of the same size in every dim, and the
    broadcast shape; None where the unit is not a function of tensors alone or does not run."""
    tree = ast.parse(prompt)
    fn = tree.body[-1]
    if not isinstance(fn, ast.FunctionDef) or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs:
        return None
    if fn.args.defaults or not all(isinstance(s, (ast.Assign, ast.Return)) for s in fn.body):
        return None
    ranks = re.match(r"# ranks: ([\d ]+)\n", prompt)
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if not ranks or len(ranks.group(1).split()) != len(params):
        return None
    for stmt in fn.body:
        if isinstance(stmt, ast.Return):
            stmt.value = ast.Call(ast.Name("locals", ast.Load()), [], [])
    numpy_style = any(isinstance(n, (ast.Import, ast.ImportFrom)) and "numpy" in ast.unparse(n) for n in tree.body)
    gen = torch.Generator().manual_seed(0)
    rank = [int(r) for r in ranks.group(1).split()]
    size = 16 if max(rank) <= 3 else 8  # in every dim, so tensors of any ranks broadcast; 4,096 elements at most
    shapes = [(size,) * r for r in rank]
    # magnitudes from 0.01 to 30: a clamp at 1.0 or a max at -0.5 must act on some elements, or it would hold the
    # values of its input and take its name
    inputs = [torch.randn(s, generator=gen, dtype=torch.float64) * 10 ** (2 * torch.rand(s, generator=gen) - 1)
              for s in shapes]
    namespace: dict = {}
    try:
        with warnings.catch_warnings():  # NumPy's overflow warnings (exp of 30): the values are what they are
            warnings.simplefilter("ignore")
            exec(compile(ast.fix_missing_locations(tree), "<prompt>", "exec"), namespace)  # noqa: S102 - our corpus
            values = namespace[fn.name](*[x.numpy() if numpy_style else x for x in inputs])
    except Exception:  # noqa: BLE001 - a prompt that does not run on these inputs keeps its format-6 target
        return None
    return values, torch.broadcast_shapes(*shapes)


def _kernel_values(body: str, loads: dict[str, object], helpers: dict[str, str]) -> list[tuple[str, object]] | None:
    namespace: dict = {"tl": _Tl, "float": float, **loads}
    named = set(re.findall(r"\b_p2t_\w+", body))
    if not named <= helpers.keys():
        return None
    for name in helper_closure(named, helpers):  # helpers call helpers (softplus calls log1p)
        try:
            exec(helpers[name].replace("@triton.jit\n", ""), namespace)  # noqa: S102 - the library's own helpers
        except Exception:  # noqa: BLE001
            return None
    out = []
    for name, expr in _VALUE.findall(body):
        try:
            namespace[name] = eval(expr, namespace)  # noqa: S307 - the compiler's own kernel text
        except Exception:  # noqa: BLE001 - bit casts and the like: no renaming
            return None
        out.append((name, namespace[name]))
    return out


def align_kernel_names(prompt: str, target: str, helpers: dict[str, str]) -> str:
    """`target` (a model target of format 6) with its one elementwise kernel's values renamed after the
    prompt's (a model prompt of format 6) locals of equal value; `target` unchanged where that cannot be done.
    `helpers`: the library's `@triton.jit` helpers by name (`pairform.library_helpers()`)."""
    # One thread: the training loader runs this in workers forked after torch started its OpenMP pool, where a
    # parallel region (torch.randn of a few thousand values) hangs the worker.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _aligned(prompt, target, helpers)
    finally:
        torch.set_num_threads(threads)


def _aligned(prompt: str, target: str, helpers: dict[str, str]) -> str:
    kernels = [(m.start(2), m.end(2), m.group(2)) for m in _KERNEL.finditer(target) if _VALUE.search(m.group(2))]
    if len(kernels) != 1 or re.search(r"\bs\d+\b|\bx\d+\b|^ {5,}v\d+ =", kernels[0][2], re.M):
        return target  # several kernels, a scalar argument, a row kernel's loads (`x0`), values inside a block
    start, end, body = kernels[0]
    found = _prompt_locals(prompt)
    if found is None:
        return target
    values, shape = found
    loads = {}
    for name in _LOAD.findall(body):
        if name not in values:
            return target
        loads[name] = _as_float64(values[name], shape)
    kernel = _kernel_values(body, loads, helpers)
    if kernel is None:
        return target
    local_names = [n for n in values if re.fullmatch(r"v\d+", n)]
    local_values = [_as_float64(values[n], shape) for n in local_names]
    matched: list[str | None] = []  # each kernel value's local, None where it holds no local's values
    j = 0
    for _, value in kernel:
        v = _as_float64(value, shape)
        if v is None:
            return target
        k = next((k for k in range(j, len(local_names)) if local_values[k] is not None and torch.allclose(
            v, local_values[k], rtol=1e-5, atol=1e-8, equal_nan=True)), None)
        matched.append(None if k is None else local_names[k])
        j = j if k is None else k + 1
    if not matched or matched[-1] is None:
        return target  # the kernel's last value is none of the prompt's
    # A value on the way to a local (a clamp the kernel spells as maximum, then minimum) is named after that
    # local: `v1_1 = ...maximum...`, `v1 = ...minimum(v1_1, ...)...`.
    mapping, run = {}, []
    for (name, _), local in zip(kernel, matched, strict=True):
        if local is None:
            run.append(name)
            continue
        mapping.update((n, f"{local}_{i}") for i, n in enumerate(run, 1))
        mapping[name], run = local, []
    if all(k == v for k, v in mapping.items()):
        return target
    renamed = _NAME.sub(lambda m: mapping.get(m.group(0), m.group(0)), body)
    return target[:start] + renamed + target[end:]
