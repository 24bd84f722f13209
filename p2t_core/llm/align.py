"""Pair formats 7 and 8: an elementwise kernel's values named after the prompt's locals that hold the same values.

In formats 3 to 6 the prompt numbers its locals `v1, v2, ...` one operation a line, and the kernel numbers its
values the same way, one node of the compiler's graph a line. The two counts part where one graph node spells
several of the prompt's operations: a NumPy, method or loop rendering writes `torch.sigmoid` or `F.silu` out as
`-x`, `exp`, `1 + ...` and a division (four locals), the kernel, lowered from the unit's graph (DESIGN.md), has
one `sigmoid` line; two loop clamps are one clamp node. From there on the kernel's `v7` is the prompt's `v10`, and
the model has to carry that offset through the rest of the chain. The format-6 weights failed there: on the
nineteenth session's samples, elementwise prompts of 6 or more lines verified 27 of 38 where prompt and kernel count
their values alike, 8 of 22 where the counts part (docs/BENCHMARKS.md); most failing candidates read a value by the
wrong number after such a line.

Format 7 renames the kernel's values instead: each kernel value takes the name of the prompt local that holds the
same values, found by running both on the same float64 inputs (the prompt as Python, the kernel's lines with
`tl` stood in for by torch). The match is monotone, each value taking the first local after the previous one's
that agrees, so a value spelled in one line gets the name of the last local of the operations it spells, and
every later line reads as the prompt does (`v10 = v9 + a2` where the prompt has `v10 = v9 + a2`). Where the
values cannot be computed this way (no straight-line function, a row kernel, several kernels, bit casts) or the
kernel's last value matches no local, the target is left as format 6 writes it. Scalar parameters take the values
the launch passes them; a Module's tensors are found under their attributes. A kernel value that holds no
local's values (the kernel spells one of the prompt's operations in two lines) is named after the next one that
does: `v1_1`.

Format 8 fixes the case the first agreeing local gets wrong: a kernel line that spells several operations, the
last of which do nothing on the sampled inputs (a hardsigmoid after a hardtanh: `v3 / 6 + 0.5` is already within
[0, 1], so the prompt's `v5 = v4 + 0.5`, `v6 = relu(v5)` and `v7 = clamp(v6, max=1)` hold the same values). Format 7
names the line `v5`, and the kernel stores `v5` where the prompt returns `v7`; format 8 takes the last local of such
a row, as long as the kernel's next value still has a local after it (matched from the last value back). Format 8
also names the kernel's loads as the prompt binds their parameters: a binary cross-entropy kernel loads the target
before the input while the prompt binds them the other way round, so format 7 left such targets as format 6 wrote
them (their `a0` the prompt's `a1`; 11 of the 2,058 targets with loads in a 6,000-pair corpus, all losses). On the
first 1,500 rows of that corpus (`p2t data build --pairs 6000 --seed 0`), single-kernel targets that store a value
the prompt does not return: 9 of 431 in format 7, 0 in format 8.

Only training reads this (the model's output needs no renaming back: the names are the kernel's own); it runs
the corpus' own prompts, which the data pipeline generated and verified.
"""

from __future__ import annotations

import ast
import inspect
import re
import warnings
from typing import NamedTuple

import torch

from p2t_core.codegen.module import helper_closure

__all__ = ["align_kernel_names", "align_row_kernel_names"]

_KERNEL = re.compile(r"^@triton\.jit\ndef (\w+)\((.*?)\n\):\n(.*?)(?=^\S|\Z)", re.M | re.S)
_LOAD = re.compile(r"^    (a\d+) = tl\.load\(In\d+_(\w+?)_ptr\b", re.M)
_VALUE = re.compile(r"^    (v\d+) = (.+)$", re.M)
_NAME = re.compile(r"\bv\d+\b")
# A row kernel's loads (`x0 = tl.load(In0_Feat_ptr + ...)`) and its values, numbered by pass: `v1005` is the fifth
# value of the first pass over a row, `v2005` the same operation recomputed in the second.
_ROW_LOAD = re.compile(r"^ +(x\d+) = tl\.load\(In\d+_(\w+?)_ptr\b", re.M)
_ROW_VALUE = re.compile(r"^ +(v[1-9]\d{3}) = (.+)$", re.M)


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
        return torch.where(torch.as_tensor(c).bool(), _f64(x), _f64(y))

    @staticmethod
    def minimum(x, y, propagate_nan=None):
        return torch.minimum(_f64(x), _f64(y))

    @staticmethod
    def maximum(x, y, propagate_nan=None):
        return torch.maximum(_f64(x), _f64(y))


def _f64(value) -> torch.Tensor:
    """A kernel operand (a value or a Python number) as a float64 tensor."""
    return torch.as_tensor(value, dtype=torch.float64)


def _as_float64(value, shape) -> torch.Tensor | None:
    try:
        t = torch.as_tensor(value)
        return t.to(torch.float64).expand(shape) if t.dtype != torch.complex128 else None
    except (TypeError, RuntimeError, ValueError):
        return None


def _unit_inputs(rank: list[int]) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """Float64 inputs of these ranks, of the same size in every dim (tensors of any ranks broadcast; 4,096 values
    at most), with magnitudes from 0.01 to 30: a clamp at 1.0 or a max at -0.5 must act on some elements, or it
    would hold the values of its input and take its name."""
    gen = torch.Generator().manual_seed(0)
    size = 16 if max(rank) <= 3 else 8
    shapes = [(size,) * r for r in rank]
    inputs = [torch.randn(s, generator=gen, dtype=torch.float64) * 10 ** (2 * torch.rand(s, generator=gen) - 1)
              for s in shapes]
    return inputs, torch.broadcast_shapes(*shapes)


def _numbers(fn: ast.FunctionDef) -> dict[str, float] | None:
    """The defaults of fn's parameters that have one: the scalars a kernel takes as `s0, s1, ...`."""
    positional = [*fn.args.posonlyargs, *fn.args.args]
    try:
        return {a.arg: float(ast.literal_eval(d))
                for a, d in zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults, strict=True)}
    except (ValueError, TypeError, SyntaxError):
        return None


class _Run(NamedTuple):
    """What running the prompt's unit gave: its locals (`aK`, `vK`, ...), the broadcast shape, the values of its
    scalar parameters, and a Module's tensors by lower-case attribute name (as the kernels' pointers spell them)."""

    values: dict
    shape: tuple[int, ...]
    scalars: dict[str, float]
    attributes: dict


def _run_prompt(prompt: str) -> _Run | None:
    """The prompt's unit (a function, or a Module's `forward`) run on float64 inputs with its locals returned; None
    where it takes anything but tensors and number defaults, or does not run."""
    tree = ast.parse(prompt)
    unit = tree.body[-1]
    cls = unit if isinstance(unit, ast.ClassDef) else None
    if cls is not None:
        unit = next((m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == "forward"), None)
    if not isinstance(unit, ast.FunctionDef) or unit.args.vararg or unit.args.kwarg or unit.args.kwonlyargs:
        return None
    scalars = _numbers(unit)
    if scalars is None or not all(isinstance(s, (ast.Assign, ast.Return)) for s in unit.body):
        return None
    ranks = re.match(r"# ranks: ([\d ]+)\n", prompt)
    tensors = [a.arg for a in (*unit.args.posonlyargs, *unit.args.args) if a.arg not in scalars]
    tensors = tensors[1:] if cls is not None else tensors  # self
    if not ranks or len(ranks.group(1).split()) != len(tensors):
        return None
    for stmt in unit.body:
        if isinstance(stmt, ast.Return):
            stmt.value = ast.Call(ast.Name("locals", ast.Load()), [], [])
    numpy_style = any(isinstance(n, (ast.Import, ast.ImportFrom)) and "numpy" in ast.unparse(n) for n in tree.body)
    inputs, shape = _unit_inputs([int(r) for r in ranks.group(1).split()])
    namespace: dict = {}
    try:
        with warnings.catch_warnings():  # NumPy's overflow warnings (exp of 30): the values are what they are
            warnings.simplefilter("ignore")
            exec(compile(ast.fix_missing_locations(tree), "<prompt>", "exec"), namespace)  # noqa: S102 - our corpus
            args = [x.numpy() if numpy_style else x for x in inputs]
            if cls is None:
                return _Run(namespace[unit.name](*args), shape, scalars, {})
            module = _module(namespace[cls.name], shape[-1] if shape else 1)
            if module is None:
                return None
            attributes = {n.lower(): t for n, t in (*module.named_parameters(), *module.named_buffers())}
            return _Run(module.forward(*args), shape, scalars, attributes)
    except Exception:  # noqa: BLE001 - a prompt that does not run on these inputs keeps its format-6 target
        return None


def _module(cls, size: int):
    """An instance of the prompt's Module whose constructor takes sizes (each given `size`, so its tensors broadcast
    with the inputs), in float64; the global RNG is left as it was."""
    init = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    if any(p.default is inspect.Parameter.empty and p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
           for p in init):
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls(*[size for p in init if p.default is inspect.Parameter.empty]).double()


def _namespace(body: str, values: dict[str, object], helpers: dict[str, str]) -> dict | None:
    """What a kernel's value lines read: `tl` on float64 torch, the library helpers they call, and `values`."""
    namespace: dict = {"tl": _Tl, "float": float, **values}
    named = set(re.findall(r"\b_p2t_\w+", body))
    if not named <= helpers.keys():
        return None
    for name in helper_closure(named, helpers):  # helpers call helpers (softplus calls log1p)
        try:
            exec(helpers[name].replace("@triton.jit\n", ""), namespace)  # noqa: S102 - the library's own helpers
        except Exception:  # noqa: BLE001
            return None
    return namespace


def _kernel_values(body: str, loads: dict[str, object], helpers: dict[str, str]) -> list[tuple[str, object]] | None:
    namespace = _namespace(body, loads, helpers)
    if namespace is None:
        return None
    out = []
    for name, expr in _VALUE.findall(body):
        try:
            namespace[name] = eval(expr, namespace)  # noqa: S307 - the compiler's own kernel text
        except Exception:  # noqa: BLE001 - bit casts and the like: no renaming
            return None
        out.append((name, namespace[name]))
    return out


def _match(kernel_values: list, local_values: list, latest: bool) -> list[int | None]:
    """Each kernel value's local (an index into local_values, monotone), None where it holds no local's values.
    A kernel value of None (not computed) holds none."""

    def agrees(i: int, k: int) -> bool:
        return (k < len(local_values) and local_values[k] is not None and kernel_values[i] is not None
                and torch.allclose(kernel_values[i], local_values[k], rtol=1e-5, atol=1e-8, equal_nan=True))

    found: list[int | None] = []
    j = 0
    for i in range(len(kernel_values)):
        k = next((k for k in range(j, len(local_values)) if agrees(i, k)), None)
        if k is not None and i + 1 < len(kernel_values) and agrees(i + 1, k) and not agrees(i + 1, k + 1):
            k = None  # the next value holds this local too, and not the one after: a clamp whose bound never acts
        found.append(k)
        j = j if k is None else k + 1
    if latest:  # format 8: the last of the locals in a row that hold a value, short of the next value's local
        bound = len(local_values)
        for i in reversed(range(len(found))):
            if found[i] is not None:
                while found[i] + 1 < bound and agrees(i, found[i] + 1):
                    found[i] += 1
                bound = found[i]
    return found


def _names(kernel_names: list[str], matched: list[str | None], computed: list[bool]) -> dict[str, str]:
    """Kernel value names to prompt locals: a matched value takes its local's name, the values on the way to it
    (a clamp the kernel spells as maximum, then minimum) `local_1, local_2, ...`; values not computed, and those
    after the last matched one, keep their names."""
    mapping, run = {}, []
    for name, local, ok in zip(kernel_names, matched, computed, strict=True):
        if not ok:
            run = []
        elif local is None:
            run.append(name)
        else:
            mapping.update((n, f"{local}_{i}") for i, n in enumerate(run, 1))
            mapping[name], run = local, []
    return mapping


def align_kernel_names(prompt: str, target: str, helpers: dict[str, str], *, latest: bool = False) -> str:
    """`target` (a model target of format 6) with its one elementwise kernel's values renamed after the
    prompt's (a model prompt of format 6) locals of equal value; `target` unchanged where that cannot be done.
    `helpers`: the library's `@triton.jit` helpers by name (`pairform.library_helpers()`). `latest` (pair format 8):
    a value that several locals in a row hold takes the last of them that leaves the next value a local."""
    # One thread: the training loader runs this in workers forked after torch started its OpenMP pool, where a
    # parallel region (torch.randn of a few thousand values) hangs the worker.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _aligned(prompt, target, helpers, latest)
    finally:
        torch.set_num_threads(threads)


def _scalar_arguments(target: str, kernel: str, params: str, scalars: dict[str, float]) -> dict[str, float] | None:
    """The kernel's scalar arguments (`s0, s1, ...`) with the values of the unit's parameters its launch passes."""
    names = [p.split(":")[0].strip() for p in params.split(",") if p.strip()]
    wanted = {i: n for i, n in enumerate(names) if re.fullmatch(r"s\d+", n)}
    if not wanted:
        return {}
    launches = [c for c in ast.walk(ast.parse(target)) if isinstance(c, ast.Call) and isinstance(c.func, ast.Subscript)
                and isinstance(c.func.value, ast.Name) and c.func.value.id == kernel]
    if len(launches) != 1:
        return None
    args = launches[0].args
    out = {}
    for i, name in wanted.items():
        if i >= len(args) or any(isinstance(a, ast.Starred) for a in args[:i + 1]):
            return None
        arg = args[i]
        if not isinstance(arg, ast.Name) or arg.id not in scalars:
            return None
        out[name] = scalars[arg.id]
    return out


def _loads_named_like_prompt(body: str, prompt: str) -> str:
    """`body` with each load named as the prompt binds the same parameter (`a1 = label`): the compiler numbers a
    kernel's loads in the order its graph first uses them, the prompt in the order the Python does, and the two
    part where an operation's lowering reads its operands in another order (binary cross-entropy reads the target
    first). Unchanged unless every load's parameter has a binding of its own."""
    bound = {param.lower(): name for name, param in re.findall(r"^    (a\d+) = (\w+)$", prompt, re.M)}
    mapping = {name: bound.get(pointer.lower()) for name, pointer in _LOAD.findall(body)}
    if not mapping or None in mapping.values() or len(set(mapping.values())) != len(mapping):
        return body
    return re.sub(r"\ba\d+\b", lambda m: mapping.get(m.group(0), m.group(0)), body)


def _aligned(prompt: str, target: str, helpers: dict[str, str], latest: bool) -> str:
    kernels = [m for m in _KERNEL.finditer(target) if _VALUE.search(m.group(3))]
    if len(kernels) != 1 or re.search(r"\bx\d+\b|^ {5,}v\d+ =", kernels[0].group(3), re.M):
        return target  # several kernels, a row kernel's loads (`x0`), values inside a block
    kernel_name, params, body = kernels[0].groups()
    start, end = kernels[0].span(3)
    if latest:  # format 8: the loads first take the prompt's names of their parameters
        body = _loads_named_like_prompt(body, prompt)
        target, end = target[:start] + body + target[end:], start + len(body)  # `a9` may become `a10`
    run = _run_prompt(prompt)
    if run is None:
        return target
    values, shape = run.values, run.shape
    loads = {}
    for name, pointer in _LOAD.findall(body):
        value = values[name] if name in values else run.attributes.get(pointer.lower())  # a Module's tensor
        if value is None:
            return target
        loads[name] = _as_float64(value, shape)
    scalars = _scalar_arguments(target, kernel_name, params, run.scalars)
    if scalars is None:
        return target
    kernel = _kernel_values(body, {**loads, **scalars}, helpers)
    if kernel is None:
        return target
    local_names = [n for n in values if re.fullmatch(r"v\d+", n)]
    local_values = [_as_float64(values[n], shape) for n in local_names]
    kernel_values = [_as_float64(value, shape) for _, value in kernel]
    if any(v is None for v in kernel_values):
        return target

    found = _match(kernel_values, local_values, latest)
    matched = [None if k is None else local_names[k] for k in found]
    if not matched or matched[-1] is None:
        return target  # the kernel's last value is none of the prompt's
    mapping = _names([name for name, _ in kernel], matched, [True] * len(kernel))
    if all(k == v for k, v in mapping.items()):
        return target
    renamed = _NAME.sub(lambda m: mapping.get(m.group(0), m.group(0)), body)
    return target[:start] + renamed + target[end:]


def align_row_kernel_names(prompt: str, target: str, helpers: dict[str, str]) -> str:
    """Pair format 10: `target` with its one row kernel's elementwise values (`v1001, v1002, ...` in each pass over
    a row) renamed after the prompt's locals of equal value, as formats 7 and 8 name an elementwise kernel's;
    `target` unchanged where that cannot be done. A row kernel numbers its values one line each from 1001, so where
    one prompt line is two kernel lines (a clamp: maximum, then minimum) the numbers part from the prompt's, and
    the format-9 weights read the prompt's `v5` as the kernel's `v1005` one line too early: they dropped the
    `minimum` after a spelled hardswish in both failing copies of one valid_random unit (docs/BENCHMARKS.md).
    Values computed from a reduction (`red1`, a softmax's `sm1`) keep their names."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as align_kernel_names: a worker forked after torch's thread pool started
    try:
        return _aligned_rows(prompt, target, helpers)
    finally:
        torch.set_num_threads(threads)


def _aligned_rows(prompt: str, target: str, helpers: dict[str, str]) -> str:
    kernels = [m for m in _KERNEL.finditer(target) if _ROW_VALUE.search(m.group(3))]
    if len(kernels) != 1 or not _ROW_LOAD.search(kernels[0].group(3)):
        return target
    kernel_name, params, body = kernels[0].groups()
    start, end = kernels[0].span(3)
    definitions: dict[str, str] = {}
    for name, expr in _ROW_VALUE.findall(body):  # each pass's values are written once per branch and loop
        if definitions.setdefault(name, expr) != expr:
            return target
    run = _run_prompt(prompt)
    if run is None:
        return target
    bound = {param.lower(): name for name, param in re.findall(r"^    (a\d+) = (\w+)$", prompt, re.M)}
    loads = {}
    for name, pointer in _ROW_LOAD.findall(body):
        local = bound.get(pointer.lower())
        loads[name] = _as_float64(run.values.get(local) if local else run.attributes.get(pointer.lower()), run.shape)
        if loads[name] is None:
            return target
    namespace = _namespace(body, {**loads, **(_scalar_arguments(target, kernel_name, params, run.scalars) or {})},
                           helpers)
    if namespace is None:
        return target
    computed: dict[str, torch.Tensor | None] = {}
    for name, expr in definitions.items():  # in the order of first definition: each pass after the one before
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                computed[name] = namespace[name] = _as_float64(eval(expr, namespace), run.shape)  # noqa: S307
        except Exception:  # noqa: BLE001 - reads a reduction (`red1`), a mask or a bit cast: keeps its name
            computed[name] = None
    local_names = [n for n in run.values if re.fullmatch(r"v\d+", n)]
    local_values = [_as_float64(run.values[n], run.shape) for n in local_names]
    mapping: dict[str, str] = {}
    for p in sorted({name[1] for name in computed}):
        names = [n for n in computed if n[1] == p]
        values = [computed[n] for n in names]
        matched = [None if k is None else local_names[k] for k in _match(values, local_values, latest=True)]
        mapping.update(_names(names, matched, [v is not None for v in values]))
    taken = set(re.findall(r"\b\w+\b", body)) - mapping.keys()
    if not mapping or taken & set(mapping.values()):
        return target
    renamed = _NAME.sub(lambda m: mapping.get(m.group(0), m.group(0)), body)
    return target[:start] + renamed + target[end:]
