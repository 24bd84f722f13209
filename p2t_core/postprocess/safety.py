"""Semantic check of a candidate Triton module, the second gate after the grammar.

`check_semantics(source)` parses the text with Python's `ast` (parsing only: nothing is
compiled, imported or executed) and returns a list of `Violation`s; an empty list means the
module is allowed to go on to compilation and verification. The rules, all static:

- imports: exactly `math`, `torch`, `triton`, `triton.language as tl`; no from-imports;
- names: every name is a parameter, a local, a top-level definition of the module, one of the
  four modules (only as the root of an allowed attribute path), or an allowed builtin; nothing
  rebinds a module, a builtin or a top-level definition; no dunder name or attribute anywhere
  (except a Module's `__init__` and `super().__init__()`);
- attribute paths on the modules come from allow lists (`TL_ALLOWED`, `TORCH_HOST_ALLOWED`,
  `TRITON_HOST_ALLOWED`, `MATH_ALLOWED`, `LIBDEVICE_ALLOWED`); attributes and methods on values
  from `KERNEL_VALUE_ATTRS` (inside kernels) and `HOST_METHODS`/`HOST_ATTRS` (elsewhere);
- no monkeypatching: attribute assignment only to `self.<name>` inside `__init__`;
- kernels: `@triton.jit` functions, optionally under `@triton.autotune`/`@triton.heuristics`
  with statically readable configs; launched only as `kernel[grid](...)` from host code, with
  arguments that match the kernel's parameters (constexpr parameters by keyword or from the
  autotune/heuristics keys); no torch inside kernels;
- launchers (every public function and every `forward`) launch at least one kernel, and do no
  math with torch: only creation/shape/dtype calls and arithmetic on sizes and scalars; the
  math must be in a Triton kernel (a Module's `__init__` may also draw its parameters' initial values:
  `TORCH_INIT_ALLOWED`);
- host code may `continue` inside a for loop and `raise ValueError("message")` (or RuntimeError,
  TypeError, IndexError; the message is string literals and local names joined by `+`);
- the compiler's own launcher helpers (`p2t_core.codegen.prelude.PRELUDE`: `_p2t_layout`,
  `_p2t_rows`, ...) are known code: a top-level function whose name and AST (positions left out)
  are exactly those of a PRELUDE helper is exempt from the body checks (it may use `while`, a
  `*sizes` parameter, recursion, item assignment), and its callers see the kinds in
  `PRELUDE_RETURNS`. The same name with any other body is checked like any other function.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from p2t_grammar import _BAD_CHARS

from p2t_core.codegen.prelude import FAST_LAUNCH

__all__ = [
    "Violation",
    "check_semantics",
    "TL_ALLOWED",
    "TL_MATH_ALLOWED",
    "LIBDEVICE_ALLOWED",
    "TORCH_HOST_ALLOWED",
    "TRITON_HOST_ALLOWED",
    "MATH_ALLOWED",
    "HOST_BUILTINS",
    "KERNEL_BUILTINS",
    "HOST_METHODS",
    "HOST_ATTRS",
    "KERNEL_VALUE_ATTRS",
]


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule, located in the candidate module (1-based line and column)."""

    line: int
    col: int
    message: str
    rule: str = "semantics"

    def __str__(self) -> str:
        return f"line {self.line}, col {self.col}: {self.message}"


# ----------------------------------------------------------------------------- allow lists

_TL_DTYPES = {
    "float32", "float16", "bfloat16", "float64", "int1", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "float8e4nv", "float8e5", "dtype",
}
#: `tl.<name>` usable inside kernels (and as annotations/dtypes).
TL_ALLOWED = frozenset({
    "program_id", "num_programs", "arange", "load", "store", "zeros", "zeros_like", "full", "where",
    "exp", "exp2", "log", "log2", "sqrt", "sqrt_rn", "rsqrt", "abs", "sin", "cos", "sigmoid", "softmax",
    "maximum", "minimum", "max", "min", "sum", "argmax", "argmin", "reduce", "associative_scan",
    "cumsum", "cumprod", "xor_sum", "dot", "cdiv", "constexpr", "fma", "floor", "ceil", "erf", "umulhi",
    "div_rn", "fdiv", "clamp", "cast", "reshape", "view", "broadcast", "broadcast_to", "expand_dims",
    "trans", "permute", "join", "split", "ravel", "flip", "sort", "static_range", "range",
    "multiple_of", "max_contiguous", "max_constancy", "debug_barrier", "static_assert",
    "atomic_add", "atomic_max", "atomic_min", "atomic_cas", "atomic_xchg", "atomic_and", "atomic_or",
    "atomic_xor", "make_block_ptr", "advance", "tensor", "pointer_type", "PropagateNan",
    *_TL_DTYPES,
})
#: `tl.math.<name>` usable inside kernels.
TL_MATH_ALLOWED = frozenset({
    "exp", "exp2", "log", "log2", "sqrt", "sqrt_rn", "rsqrt", "abs", "sin", "cos", "erf", "floor",
    "ceil", "fma", "div_rn", "fdiv", "umulhi", "cdiv", "max", "min",
})
#: `tl.extra.libdevice.<name>` / `tl.extra.cuda.libdevice.<name>`: pure math functions only.
LIBDEVICE_ALLOWED = frozenset({
    "tanh", "erf", "erfinv", "exp", "expm1", "log1p", "pow", "rsqrt", "sqrt", "tan", "atan", "atan2",
    "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh", "lgamma", "isnan", "isinf", "signbit",
    "round", "rint", "trunc", "floor", "ceil", "fmod", "div_rn", "fast_expf", "fast_tanhf", "log10",
})
#: `torch.<path>` usable in host code (launchers, helpers, Module methods): creation, shape, dtype.
TORCH_HOST_ALLOWED = frozenset({
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "broadcast_shapes", "promote_types", "result_type", "Size", "finfo", "iinfo", "is_tensor",
    "is_floating_point", "get_default_dtype", "device", "Tensor", "dtype",
    "float32", "float16", "bfloat16", "float64", "float", "half", "double", "int8", "int16", "int32",
    "int64", "uint8", "bool", "long", "int",
    "nn.Module", "nn.Parameter", "backends.cuda.matmul.allow_tf32", "cuda.is_available",
})
#: `torch.<name>` also usable in a Module's `__init__`: the initial values of its parameters and buffers, which the
#: compiler copies from the user's `__init__` (`torch.nn.Parameter(torch.randn(n, m))`); it runs once, not per call.
TORCH_INIT_ALLOWED = frozenset({"randn", "rand", "randn_like", "rand_like", "arange", "linspace", "eye"})
#: `triton.<name>` usable in host code; jit/autotune/heuristics only as decorators, Config in configs.
TRITON_HOST_ALLOWED = frozenset({"cdiv", "next_power_of_2"})
#: `math.<name>` (scalar math) usable anywhere.
MATH_ALLOWED = frozenset({
    "pi", "e", "inf", "nan", "tau", "sqrt", "exp", "log", "log2", "log10", "ceil", "floor", "prod", "isqrt",
    "gcd", "lcm", "erf", "tanh", "fabs", "pow", "trunc", "isfinite", "isinf", "isnan", "copysign", "sin",
    "cos", "atan", "expm1", "log1p",
})
HOST_BUILTINS = frozenset({
    "range", "len", "zip", "enumerate", "min", "max", "abs", "int", "float", "bool", "tuple", "list",
    "isinstance", "sum", "any", "all", "reversed", "sorted", "dict", "round", "divmod",
})
KERNEL_BUILTINS = frozenset({"range", "min", "max", "abs", "int", "float", "bool", "len", "isinstance"})
#: Builtins that are values rather than calls (`isinstance(x, int)`).
_BUILTIN_VALUES = frozenset({"int", "float", "bool", "tuple", "list", "dict"})
_FORBIDDEN_BUILTINS = frozenset({
    "eval", "exec", "open", "compile", "__import__", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "type", "super", "breakpoint", "input", "memoryview", "help", "dir", "object", "id",
    "print", "classmethod", "staticmethod", "property", "exit", "quit", "bytearray", "bytes", "callable",
    "iter", "next", "map", "filter", "format", "repr", "ascii", "chr", "ord", "hash", "issubclass",
})

# Host methods on values -> result kind ("tensor", "scalar", "shape", "size*" = shape without args).
HOST_METHODS = {
    "stride": "size*", "size": "size*", "numel": "scalar", "dim": "scalar", "ndimension": "scalar",
    "element_size": "scalar", "is_contiguous": "scalar", "is_floating_point": "scalar",
    "contiguous": "tensor", "expand": "tensor", "expand_as": "tensor", "view": "tensor", "view_as": "tensor",
    "reshape": "tensor", "reshape_as": "tensor", "permute": "tensor", "transpose": "tensor", "t": "tensor",
    "unsqueeze": "tensor", "squeeze": "tensor", "flatten": "tensor", "to": "tensor", "new_empty": "tensor",
    "new_zeros": "tensor", "new_ones": "tensor", "new_full": "tensor", "append": "none", "extend": "none",
}
# Host attributes (not called) on values -> result kind.
HOST_ATTRS = {
    "shape": "shape", "dtype": "dtype", "device": "device", "ndim": "scalar", "is_cuda": "scalar",
    "T": "tensor", "mT": "tensor", "itemsize": "scalar", "type": "str", "index": "scalar",
    "is_floating_point": "scalar", "max": "scalar", "min": "scalar", "eps": "scalar", "tiny": "scalar",
    "bits": "scalar", "resolution": "scalar", "smallest_normal": "scalar",
}
#: Attributes and methods on values inside kernels (Triton tensor methods and dtype properties).
KERNEL_VALUE_ATTRS = frozenset({
    "to", "dtype", "element_ty", "shape", "T", "reshape", "trans", "permute", "broadcast_to", "expand_dims",
    "view", "ravel", "sum", "max", "min", "argmax", "argmin", "cumsum", "exp", "exp2", "log", "log2", "sqrt",
    "abs", "sigmoid", "value", "numel", "is_floating", "is_int", "primitive_bitwidth", "is_fp32", "is_fp16",
    "is_bf16", "is_fp64", "split", "join",
})
_AUTOTUNE_KWARGS = frozenset({"configs", "key", "reset_to_zero", "restore_value", "warmup", "rep"})
_CONFIG_KWARGS = frozenset({"num_warps", "num_stages", "num_ctas", "maxnreg"})
_LAUNCH_OPTIONS = _CONFIG_KWARGS
_IMPORT_TIME_CALLS = frozenset({"triton.Config", "triton.cdiv", "triton.next_power_of_2", "min", "max", "int", "float",
                                "bool"})
_TORCH_DANGEROUS = frozenset({
    "load", "save", "ops", "utils", "cuda", "library", "classes", "hub", "jit", "compile", "backends",
    "distributed", "multiprocessing", "package", "serialization", "storage", "from_file", "autograd",
    "fx", "export", "onnx", "testing", "overrides", "random", "manual_seed", "set_default_device",
    "set_default_dtype", "set_grad_enabled", "use_deterministic_algorithms", "profiler", "cpu", "mps",
    "xpu", "nn", "Generator", "Storage", "UntypedStorage", "TypedStorage", "frombuffer", "from_numpy",
    "as_strided", "sparse", "func", "compiler", "dynamo", "accelerator", "mtia",
})
_MODULES = ("math", "torch", "triton", "tl")
_ALLOWED_IMPORTS = {("math", None): "math", ("torch", None): "torch", ("triton", None): "triton",
                    ("triton.language", "tl"): "tl"}
_ALL_BUILTINS = frozenset(dir(builtins))
_BANNED_NODES = {
    "While": "'while' loops (use 'for ... in range(...)')", "Try": "'try' statements",
    "TryStar": "'try' statements", "With": "'with'",
    "AsyncWith": "'async with'", "AsyncFor": "'async for'", "AsyncFunctionDef": "'async def'",
    "Global": "'global'", "Nonlocal": "'nonlocal'", "Delete": "'del'", "Yield": "'yield'",
    "YieldFrom": "'yield from'", "Await": "'await'", "ImportFrom": "'from ... import'",
    "JoinedStr": "f-strings", "FormattedValue": "f-strings", "NamedExpr": "':=' (walrus)",
    "Match": "'match'", "Set": "set displays", "SetComp": "set comprehensions",
    "DictComp": "dict comprehensions", "Break": "'break'",
    "TypeAlias": "'type' aliases",
}

# value kinds used by the launcher analysis
TENSOR, TENSORS, SCALAR, SHAPE, DTYPE, DEVICE, STR, NONE, META, OTHER, UNKNOWN = (
    "tensor", "tensors", "scalar", "shape", "dtype", "device", "str", "none", "meta", "other", "unknown")
_NUMERIC = {SCALAR, SHAPE, STR, META}

#: Exceptions host code may raise, as `raise NAME("message")` (message: string literals and names joined by +).
ALLOWED_EXCEPTIONS = frozenset({"ValueError", "RuntimeError", "TypeError", "IndexError"})

#: What the compiler's launcher helpers (`p2t_core.codegen.prelude.PRELUDE`) return, for the launcher analysis
#: of their callers: one kind, or a tuple of kinds for a helper whose result is unpacked.
PRELUDE_RETURNS: dict[str, str | tuple[str, ...]] = {
    "_p2t_size": SCALAR,
    "_p2t_cdiv": SCALAR,
    "_p2t_pow2": SCALAR,
    "_p2t_check_rank": NONE,
    "_p2t_layout": (TENSORS, SHAPE, SHAPE, SCALAR),   # tensors, collapsed sizes, flat strides, contiguous
    "_p2t_rows": (TENSOR, SHAPE),                     # row view, its 3 strides
    "_p2t_row_sizes": SHAPE,                          # (outer, reduced, inner)
    "_p2t_keepdim": TENSOR,
    "_p2t_empty_rows": TENSOR,
    "_p2t_mm_strides": SHAPE,
    "_p2t_mm_operands": (TENSOR, TENSOR, SCALAR),     # operands (or K-major padded copies), reduction length
    "_p2t_mm_vectorizes": SCALAR,                     # a bool
    "_p2t_k_major": TENSOR,
    "_p2t_mm_padded_operands": (TENSOR, TENSOR, SCALAR, SCALAR),  # operands (or copies), K, b's N padded
    "_p2t_zero_padded": TENSOR,
    "_p2t_inplace": TENSOR,                           # the buffer a kernel stores an in-place output into
    "_p2t_writeback": NONE,                           # copies that buffer back into the parameter
    "_p2t_row_config": SHAPE,                         # block_r, block_i, single, num_warps
    "_p2t_short_rows": (SCALAR, SCALAR, TENSORS),      # outer, inner, the strides of each tensor's row view
    "_p2t_mm_config": SHAPE,                          # block_m, block_n, block_k, num_warps, num_stages
    "_p2t_split": SCALAR,                             # programs per row of a split reduction
    "_p2t_split_config": SHAPE,                       # n_split, chunk, block_r, block_i, num_warps
    "_p2t_mm_configs": (SHAPE, SHAPE),                # tile configurations to run, the tuning key
    "_p2t_dim": SCALAR,
    "_p2t_fast_launch": OTHER,                        # the kernel it decorates
    "_p2t_tic": OTHER,                                # a CUDA event, or None
    "_p2t_toc": NONE,
    "_p2t_semaphores": TENSOR,                        # int32 counts of a split reduction's programs per tile
    "_P2T_SEMAPHORES": NONE,                          # _p2t_semaphores' buffers by device and stream
    "_P2T_PADDED": NONE,                              # _p2t_zero_padded's kept buffers
    "_P2T_TUNING": NONE,                              # the autotuning cache (a module-level dict, not a function)
    "_P2T_ROW_STRIDES": NONE,                         # _p2t_rows' strides by layout (a module-level dict)
}


def _canonical_dump(fn: ast.FunctionDef) -> str:
    return ast.dump(fn, annotate_fields=True, include_attributes=False)


_prelude_dumps: dict[str, str] | None = None


def prelude_dumps() -> dict[str, str]:
    """name -> AST dump (positions left out) of each launcher helper the compiler copies into its modules.

    Imported lazily: the post-processor does not depend on the code generator at import time.
    """
    global _prelude_dumps
    if _prelude_dumps is None:
        from p2t_core.codegen.prelude import PRELUDE

        dumps = {}
        for name, src in PRELUDE.items():
            tree = ast.parse(src)
            fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
            if len(fns) == 1 and fns[0].name == name:
                dumps[name] = _canonical_dump(fns[0])
        _prelude_dumps = dumps
    return _prelude_dumps


def is_trusted_prelude(fn: ast.FunctionDef) -> bool:
    """True when `fn` is, AST for AST, one of the compiler's own launcher helpers (known code)."""
    if fn.decorator_list:
        return False
    want = prelude_dumps().get(fn.name)
    return want is not None and want == _canonical_dump(fn)


def _join(a: str, b: str) -> str:
    if a == b:
        return a
    if TENSOR in (a, b) or TENSORS in (a, b):
        return TENSOR
    if {a, b} <= {SCALAR, NONE}:
        return SCALAR
    return UNKNOWN


def _elem(kind: str) -> str:
    return {SHAPE: SCALAR, TENSOR: TENSOR, TENSORS: TENSOR, META: SCALAR}.get(kind, UNKNOWN)


def _is_dunder(name: str | None) -> bool:
    return bool(name) and name.startswith("__")


def _chain(node: ast.AST) -> list[str] | None:
    """`a.b.c` -> ['a', 'b', 'c'] when the chain ends in a Name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _dotted(node: ast.AST) -> str | None:
    c = _chain(node)
    return ".".join(c) if c else None


def _is_constant_default(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float | str | bool) or node.value is None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int | float)
    if isinstance(node, ast.Tuple):
        return all(_is_constant_default(e) for e in node.elts)
    return False


def _is_super_init(node: ast.AST) -> bool:
    """`super().__init__` (the attribute node)."""
    return (isinstance(node, ast.Attribute) and node.attr == "__init__" and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "super"
            and not node.value.args and not node.value.keywords)


@dataclass
class _Kernel:
    node: ast.FunctionDef
    params: list[str]
    constexpr: set[str]
    defaults: set[str]
    auto_keys: set[str] | None  # None: not autotuned/heuristics


@dataclass
class _Class:
    node: ast.ClassDef
    attrs: dict[str, str]
    methods: set[str]


class _Checker:
    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.out: list[Violation] = []
        self.imported: set[str] = set()
        self.kernels: dict[str, _Kernel] = {}   # all @triton.jit functions (kernels and jit helpers)
        self.host_funcs: dict[str, ast.FunctionDef] = {}
        self.classes: dict[str, _Class] = {}
        self.constants: dict[str, ast.expr] = {}
        self.helper_returns: dict[str, str] = {}
        self.trusted: dict[str, str | tuple[str, ...]] = {}  # exact copies of the compiler's prelude helpers
        self.fast_launched: list[ast.Name] = []  # kernels' @_p2t_fast_launch decorators
        self._loop_depth = 0
        self.launches: dict[str, set[str]] = {}    # host function qualname -> kernels launched directly
        self.calls: dict[str, set[str]] = {}       # host function qualname -> host helpers called
        self._in_progress: set[str] = set()
        self._peeking = 0

    # -- reporting ---------------------------------------------------------------------------
    def bad(self, node: ast.AST | None, message: str, rule: str = "semantics") -> None:
        line = getattr(node, "lineno", 0) or 0
        col = (getattr(node, "col_offset", -1) or 0) + 1 if node is not None else 0
        self.out.append(Violation(line, col, message, rule))

    # -- driver --------------------------------------------------------------------------------
    def run(self) -> list[Violation]:
        self.generic_scan()
        self.scan_module()
        # host helpers first so that their return kinds are known to the launchers that call them
        for name, fn in self.host_funcs.items():
            self.helper_return(name)
            del fn
        for name, k in self.kernels.items():
            self.check_kernel(name, k)
        for name, cls in self.classes.items():
            self.check_class(name, cls)
        self.check_units()
        return self.out

    # -- whole-tree scans ----------------------------------------------------------------------
    def generic_scan(self) -> None:
        init_defs = {
            id(item) for cls in self.tree.body if isinstance(cls, ast.ClassDef)
            for item in cls.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"
        }
        super_inits = {id(n) for n in ast.walk(self.tree) if _is_super_init(n)}
        # exact copies of the compiler's launcher helpers are known code: their loops may be 'while' loops, and
        # _p2t_fast_launch's closure takes and passes on '**' keyword arguments
        known = {id(n) for fn in self.tree.body if isinstance(fn, ast.FunctionDef) and is_trusted_prelude(fn)
                 for n in ast.walk(fn)}
        for node in ast.walk(self.tree):
            kind = type(node).__name__
            if id(node) in known:
                continue
            if kind in _BANNED_NODES:
                self.bad(node, f"not allowed: {_BANNED_NODES[kind]}", "structure")
            elif isinstance(node, ast.Import) and node not in self.tree.body:
                self.bad(node, "imports are only allowed at the top level", "import")
            elif isinstance(node, ast.Constant) and isinstance(node.value, bytes | complex):
                self.bad(node, f"{type(node.value).__name__} literals are not allowed", "structure")
            elif isinstance(node, ast.Name) and _is_dunder(node.id):
                self.bad(node, f"dunder name {node.id!r} is not allowed", "dunder")
            elif isinstance(node, ast.Attribute) and _is_dunder(node.attr) and id(node) not in super_inits:
                self.bad(node, f"dunder attribute {node.attr!r} is not allowed", "dunder")
            elif isinstance(node, ast.FunctionDef | ast.ClassDef) and _is_dunder(node.name) \
                    and id(node) not in init_defs:
                self.bad(node, f"dunder name {node.name!r} is not allowed", "dunder")
            elif isinstance(node, ast.arg) and _is_dunder(node.arg):
                self.bad(node, f"dunder name {node.arg!r} is not allowed", "dunder")
            elif isinstance(node, ast.keyword):
                if node.arg is None:
                    self.bad(node, "'**' unpacking is not allowed", "structure")
                elif _is_dunder(node.arg):
                    self.bad(node, f"dunder keyword {node.arg!r} is not allowed", "dunder")
            elif isinstance(node, ast.Starred) and not isinstance(getattr(node, "ctx", None), ast.Load):
                self.bad(node, "starred assignment targets are not allowed", "structure")
            elif isinstance(node, ast.Lambda):
                a = node.args
                if a.defaults or a.kw_defaults or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
                    self.bad(node, "lambda parameters must be plain names (no defaults, no * or **)", "structure")
            if isinstance(node, ast.FunctionDef | ast.Lambda):
                names = [a.arg for a in node.args.args]
                if len(set(names)) != len(names):
                    self.bad(node, "duplicate parameter names", "structure")

    def scan_module(self) -> None:
        seen: dict[str, ast.AST] = {}

        def define(name: str, node: ast.AST) -> None:
            if name in seen:
                self.bad(node, f"{name!r} is defined twice at the top level", "name")
            elif name in _MODULES or name in _ALL_BUILTINS:
                self.bad(node, f"top-level definition {name!r} shadows a module or builtin", "name")
            seen[name] = node

        for i, stmt in enumerate(self.tree.body):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    bound = _ALLOWED_IMPORTS.get((alias.name, alias.asname))
                    if bound is None:
                        shown = alias.name + (f" as {alias.asname}" if alias.asname else "")
                        self.bad(stmt, f"import of {shown!r} is not allowed; only math, torch, triton and "
                                 "triton.language as tl", "import")
                    else:
                        self.imported.add(bound)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                continue  # docstring / string statement
            elif isinstance(stmt, ast.FunctionDef):
                define(stmt.name, stmt)
                if stmt.decorator_list:
                    self.register_kernel(stmt)
                else:
                    self.host_funcs[stmt.name] = stmt
                    if is_trusted_prelude(stmt):
                        self.trusted[stmt.name] = PRELUDE_RETURNS.get(stmt.name, UNKNOWN)
            elif isinstance(stmt, ast.ClassDef):
                define(stmt.name, stmt)
                self.register_class(stmt)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                define(stmt.targets[0].id, stmt)
                self.constants[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.ImportFrom):
                continue  # reported by generic_scan
            else:
                what = type(stmt).__name__
                self.bad(stmt, f"top-level {what} statement is not allowed (only imports, docstring, functions, "
                         "torch.nn.Module classes and NAME = constant)", "structure")
            del i
        for deco in self.fast_launched:
            if FAST_LAUNCH not in self.trusted:
                self.bad(deco, f"@{FAST_LAUNCH} needs the compiler's own {FAST_LAUNCH} helper, unchanged", "decorator")
        # constants are checked once every top-level name is known
        for name, value in self.constants.items():
            self.check_expr(value, _Scope(self, "toplevel", None, name))

    # -- kernels -------------------------------------------------------------------------------
    def register_kernel(self, fn: ast.FunctionDef) -> None:
        decos = fn.decorator_list
        if _dotted(decos[-1]) != "triton.jit":
            self.bad(decos[-1], "the innermost decorator must be a bare @triton.jit", "decorator")
            return
        auto_keys: set[str] | None = None
        seen: set[str] = set()
        if isinstance(decos[0], ast.Name) and decos[0].id == FAST_LAUNCH and len(decos) > 1:
            self.fast_launched.append(decos[0])  # valid once the module's helper of that name is known to be ours
            decos = decos[1:]
        for d in decos[:-1]:
            name = _dotted(d.func) if isinstance(d, ast.Call) else _dotted(d)
            if name not in ("triton.autotune", "triton.heuristics") or not isinstance(d, ast.Call):
                self.bad(d, f"decorator {name or ast.unparse(d)!r} is not allowed; only @triton.jit, "
                         f"@triton.autotune(...), @triton.heuristics(...) and an outermost @{FAST_LAUNCH}",
                         "decorator")
                continue
            if name in seen:
                self.bad(d, f"@{name} given twice", "decorator")
            seen.add(name)
            keys = self.autotune_keys(d) if name == "triton.autotune" else self.heuristics_keys(d)
            if keys is not None:
                auto_keys = (auto_keys or set()) | keys
        params, constexpr, defaults = self.kernel_params(fn)
        self.kernels[fn.name] = _Kernel(fn, params, constexpr, defaults, auto_keys)
        if auto_keys:
            for k in sorted(auto_keys - set(params)):
                self.bad(fn, f"autotune/heuristics key {k!r} is not a parameter of {fn.name}", "signature")

    def kernel_params(self, fn: ast.FunctionDef) -> tuple[list[str], set[str], set[str]]:
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            self.bad(fn, f"{fn.name}: '*'/'**' parameters are not allowed", "signature")
        params = [p.arg for p in a.args]
        constexpr = set()
        for p in a.args:
            if p.annotation is not None:
                ann = _dotted(p.annotation)
                if ann in ("tl.constexpr", "triton.language.constexpr"):
                    constexpr.add(p.arg)
                elif ann not in ("int", "float", "bool", "tl.tensor"):
                    self.bad(p, f"kernel parameter annotation {ast.unparse(p.annotation)!r} is not allowed",
                             "signature")
        defaults = set(params[len(params) - len(a.defaults):]) if a.defaults else set()
        for d in a.defaults:
            if not _is_constant_default(d):
                self.bad(d, "default values must be literal constants", "structure")
        return params, constexpr, defaults

    def _config_list(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        return node

    def autotune_keys(self, deco: ast.Call) -> set[str] | None:
        scope = _Scope(self, "decorator", None, "@triton.autotune")
        keys: set[str] = set()
        configs = None
        for a in deco.args:
            self.bad(a, "pass @triton.autotune arguments by keyword (configs=..., key=...)", "decorator")
        for kw in deco.keywords:
            if kw.arg not in _AUTOTUNE_KWARGS:
                self.bad(kw, f"@triton.autotune argument {kw.arg!r} is not allowed", "decorator")
                continue
            if kw.arg == "configs":
                configs = self._config_list(kw.value)
            elif kw.arg in ("key", "reset_to_zero", "restore_value"):
                if not (isinstance(kw.value, ast.List | ast.Tuple)
                        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in kw.value.elts)):
                    self.bad(kw.value, f"@triton.autotune {kw.arg}= must be a list of parameter names", "decorator")
                    continue
            elif not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, int | float)):
                self.bad(kw.value, f"@triton.autotune {kw.arg}= must be a number", "decorator")
                continue
            self.check_expr(kw.value, scope)
        if configs is None:
            self.bad(deco, "@triton.autotune needs configs=[triton.Config(...), ...]", "decorator")
            return None
        elts: list[ast.expr]
        if isinstance(configs, ast.List | ast.Tuple):
            elts = list(configs.elts)
        elif isinstance(configs, ast.ListComp):
            elts = [configs.elt]
        else:
            self.bad(configs, "autotune configs must be a list of triton.Config(...) readable without running "
                     "code", "decorator")
            return None
        if not elts:
            self.bad(configs, "autotune configs are empty", "decorator")
        for e in elts:
            got = self.config_keys(e)
            if got is not None:
                keys |= got
        return keys

    def config_keys(self, node: ast.expr) -> set[str] | None:
        if not (isinstance(node, ast.Call) and _dotted(node.func) == "triton.Config"):
            self.bad(node, "each autotune config must be a triton.Config(...) call", "decorator")
            return None
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Dict):
            self.bad(node, "triton.Config takes one literal dict of meta-parameters", "decorator")
            return None
        keys = set()
        for k in node.args[0].keys:
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                self.bad(node, "triton.Config meta-parameter names must be string literals", "decorator")
                return None
            keys.add(k.value)
        for kw in node.keywords:
            if kw.arg not in _CONFIG_KWARGS:
                self.bad(kw, f"triton.Config argument {kw.arg!r} is not allowed", "decorator")
        return keys

    def heuristics_keys(self, deco: ast.Call) -> set[str] | None:
        values = deco.args[0] if len(deco.args) == 1 and not deco.keywords else None
        if values is None and len(deco.keywords) == 1 and deco.keywords[0].arg == "values" and not deco.args:
            values = deco.keywords[0].value
        if not isinstance(values, ast.Dict):
            self.bad(deco, "@triton.heuristics takes one literal dict {name: lambda args: ...}", "decorator")
            return None
        keys = set()
        scope = _Scope(self, "decorator", None, "@triton.heuristics")
        for k, v in zip(values.keys, values.values, strict=True):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                self.bad(values, "heuristics names must be string literals", "decorator")
                continue
            if not (isinstance(v, ast.Lambda) and len(v.args.args) == 1):
                self.bad(v, "each heuristic must be 'lambda args: ...'", "decorator")
                continue
            keys.add(k.value)
            self.check_expr(v, scope)
        return keys

    def check_kernel(self, name: str, k: _Kernel) -> None:
        scope = _Scope(self, "kernel", None, name)
        for p in k.params:
            scope.bind(p, k.node, UNKNOWN)
        saved, self._loop_depth = self._loop_depth, 0
        self.check_body(k.node.body, scope)
        self._loop_depth = saved

    # -- classes ---------------------------------------------------------------------------------
    def register_class(self, cls: ast.ClassDef) -> None:
        if len(cls.bases) != 1 or _dotted(cls.bases[0]) != "torch.nn.Module" or cls.keywords:
            self.bad(cls, f"class {cls.name} must derive from exactly torch.nn.Module (no keywords)", "class")
        if cls.decorator_list:
            self.bad(cls, "class decorators are not allowed", "class")
        info = _Class(cls, {}, set())
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                if item.decorator_list:
                    self.bad(item, "method decorators are not allowed", "class")
                if item.name in info.methods:
                    self.bad(item, f"method {item.name!r} defined twice", "class")
                info.methods.add(item.name)
            elif isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name) \
                    and _is_constant_default(item.value):
                info.attrs[item.targets[0].id] = SCALAR if not isinstance(item.value, ast.Tuple) else SHAPE
            elif isinstance(item, ast.Pass) or (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)
                                                and isinstance(item.value.value, str)):
                pass
            else:
                self.bad(item, "class bodies may only hold methods, a docstring and NAME = constant", "class")
        self.classes[cls.name] = info

    def check_class(self, name: str, info: _Class) -> None:
        methods = {m.name: m for m in info.node.body if isinstance(m, ast.FunctionDef)}
        init = methods.get("__init__")
        if init is not None:
            self.check_host_function(init, f"{name}.__init__", info, is_init=True)
        for mname, m in methods.items():
            if mname != "__init__":
                self.check_host_function(m, f"{name}.{mname}", info)
        if "forward" not in methods:
            self.bad(info.node, f"class {name} has no forward method", "class")

    # -- host functions ----------------------------------------------------------------------------
    def helper_return(self, name: str) -> str:
        if name in self.helper_returns:
            return self.helper_returns[name]
        if name in self.trusted:
            kind = self.trusted[name]
            self.helper_returns[name] = OTHER if isinstance(kind, tuple) else kind
            return self.helper_returns[name]
        if name in self._in_progress or self._peeking:
            return UNKNOWN
        self._in_progress.add(name)
        kind = self.check_host_function(self.host_funcs[name], name, None)
        self._in_progress.discard(name)
        self.helper_returns[name] = kind
        return kind

    def check_host_function(self, fn: ast.FunctionDef, qualname: str, cls: _Class | None,
                            is_init: bool = False) -> str:
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            self.bad(fn, f"{qualname}: '*'/'**' parameters are not allowed", "signature")
        scope = _Scope(self, "host", cls, qualname, is_init=is_init)
        private = fn.name.startswith("_") and cls is None
        params = list(a.args)
        if cls is not None:
            if not params or params[0].arg != "self":
                self.bad(fn, f"{qualname}: the first parameter of a method must be 'self'", "class")
            else:
                scope.bind("self", params[0], "self", allow_self=True)
                params = params[1:]
        n_def = len(a.defaults)
        for d in a.defaults:
            if not _is_constant_default(d):
                self.bad(d, "default values must be literal constants", "structure")
        for i, p in enumerate(params):
            default = a.defaults[i - (len(params) - n_def)] if i >= len(params) - n_def else None
            scope.bind(p.arg, p, self.param_kind(p, default, private, is_init))
        self.launches.setdefault(qualname, set())
        self.calls.setdefault(qualname, set())
        if fn.returns is not None and _dotted(fn.returns) not in ("torch.Tensor", "int", "float", "bool", "tuple",
                                                                   "list", None):
            self.bad(fn.returns, "return annotation not allowed", "structure")
        if is_init:
            # attributes set in __init__ are typed from what is assigned to them
            for stmt in ast.walk(fn):
                if isinstance(stmt, ast.Assign):
                    for t in stmt.targets:
                        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                            cls.attrs.setdefault(t.attr, UNKNOWN)
        saved, self._loop_depth = self._loop_depth, 0
        self.check_body(fn.body, scope)
        self._loop_depth = saved
        return scope.returns or NONE

    @staticmethod
    def param_kind(p: ast.arg, default: ast.expr | None, private: bool, is_init: bool = False) -> str:
        ann = _dotted(p.annotation) if p.annotation is not None else None
        if ann in ("int", "float", "bool"):
            return SCALAR
        if ann == "torch.Tensor":
            return TENSOR
        if default is not None:
            if isinstance(default, ast.Tuple):
                return SHAPE
            if isinstance(default, ast.Constant) and isinstance(default.value, str):
                return STR
            if isinstance(default, ast.Constant) and default.value is None:
                return TENSOR  # an optional tensor, as far as arithmetic goes
            return SCALAR
        if is_init:
            return SCALAR  # constructor arguments are the Module's scalar settings
        return UNKNOWN if private else TENSOR

    # -- statements ------------------------------------------------------------------------------------
    def check_body(self, body: list[ast.stmt], scope: _Scope) -> None:
        for stmt in body:
            self.check_stmt(stmt, scope)

    def check_stmt(self, stmt: ast.stmt, scope: _Scope) -> None:
        if isinstance(stmt, ast.Assign):
            kind = self.check_expr(stmt.value, scope)
            for t in stmt.targets:
                self.check_target(t, scope, kind, stmt.value)
        elif isinstance(stmt, ast.AugAssign):
            kind = self.check_expr(stmt.value, scope)
            tkind = self.check_expr(_as_load(stmt.target), scope)
            if scope.ctx == "host":
                self.check_arith(stmt, type(stmt.op), tkind, kind, scope)
            self.check_target(stmt.target, scope, _join(tkind, kind) if tkind in _NUMERIC else tkind, None)
        elif isinstance(stmt, ast.AnnAssign):
            if not isinstance(stmt.target, ast.Name):
                self.bad(stmt, "annotated assignment must target a plain name", "structure")
            ann = _dotted(stmt.annotation)
            if ann not in ("int", "float", "bool", "tl.constexpr", "torch.Tensor"):
                self.bad(stmt.annotation, f"annotation {ast.unparse(stmt.annotation)!r} is not allowed", "structure")
            kind = self.check_expr(stmt.value, scope) if stmt.value is not None else UNKNOWN
            self.check_target(stmt.target, scope, kind, stmt.value)
        elif isinstance(stmt, ast.Return):
            kind = self.check_expr(stmt.value, scope) if stmt.value is not None else NONE
            scope.returns = kind if scope.returns is None else _join(scope.returns, kind)
        elif isinstance(stmt, ast.If):
            self.check_cond(stmt.test, scope)
            self.check_body(stmt.body, scope)
            self.check_body(stmt.orelse, scope)
        elif isinstance(stmt, ast.For):
            self.check_for(stmt, scope)
        elif isinstance(stmt, ast.Expr):
            v = stmt.value
            if isinstance(v, ast.Constant) and (isinstance(v.value, str) or v.value is Ellipsis):
                return
            if not isinstance(v, ast.Call):
                self.bad(stmt, "expression statements must be calls", "structure")
            self.check_expr(v, scope, statement=True)
        elif isinstance(stmt, ast.Pass):
            return
        elif isinstance(stmt, ast.Continue):
            if scope.ctx != "host":
                self.bad(stmt, "'continue' is not allowed inside kernels", "structure")
            elif self._loop_depth == 0:
                self.bad(stmt, "'continue' outside a for loop", "structure")
        elif isinstance(stmt, ast.Raise):
            self.check_raise(stmt, scope)
        elif isinstance(stmt, ast.Assert):
            self.check_cond(stmt.test, scope)
            if stmt.msg is not None:
                self.check_expr(stmt.msg, scope)
        elif isinstance(stmt, ast.FunctionDef | ast.ClassDef):
            self.bad(stmt, "nested function or class definitions are not allowed", "structure")
        elif type(stmt).__name__ in _BANNED_NODES:
            return  # already reported
        else:
            self.bad(stmt, f"{type(stmt).__name__} statement is not allowed here", "structure")

    def check_raise(self, stmt: ast.Raise, scope: _Scope) -> None:
        """Only `raise ValueError("message")` (or another ALLOWED_EXCEPTIONS name) in host code; the message
        is a string literal, or string literals and local names joined by `+`."""
        if scope.ctx != "host":
            self.bad(stmt, "'raise' is only allowed in host code (launchers and helpers)", "structure")
            return
        exc = stmt.exc
        ok = (stmt.cause is None and isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name)
              and exc.func.id in ALLOWED_EXCEPTIONS and len(exc.args) == 1 and not exc.keywords)
        if not ok:
            self.bad(stmt, "'raise' is only allowed as raise NAME(\"message\") with NAME one of "
                     f"{', '.join(sorted(ALLOWED_EXCEPTIONS))}", "structure")
            return
        parts: list[ast.expr] = []
        msg = exc.args[0]
        while isinstance(msg, ast.BinOp) and isinstance(msg.op, ast.Add):
            parts.append(msg.right)
            msg = msg.left
        parts.append(msg)
        for part in parts:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                continue
            if isinstance(part, ast.Name) and part.id in scope.locals \
                    and scope.locals[part.id] not in (TENSOR, TENSORS, "self"):
                continue
            self.bad(part, "a raise message may only join string literals and local (non-tensor) names with '+'",
                     "structure")

    def check_cond(self, test: ast.expr, scope: _Scope) -> None:
        kind = self.check_expr(test, scope)
        if scope.ctx == "host" and kind in (TENSOR, TENSORS):
            self.bad(test, "launcher branches on tensor values (torch computation); the math must be in a "
                     "Triton kernel", "torch-math")

    def check_for(self, stmt: ast.For, scope: _Scope) -> None:
        if stmt.orelse:
            self.bad(stmt, "'for ... else' is not allowed", "structure")
        it = stmt.iter
        fname = _dotted(it.func) if isinstance(it, ast.Call) else None
        allowed = ({"range", "tl.range", "tl.static_range"} if scope.ctx == "kernel"
                   else {"range", "zip", "enumerate", "reversed"})
        kind = self.check_expr(it, scope)
        if fname not in allowed and not (scope.ctx == "host" and kind == SHAPE):
            self.bad(it, f"for loops may only iterate over {', '.join(sorted(allowed))}(...)"
                     + (" or a list of sizes" if scope.ctx == "host" else ""), "structure")
        self.bind_iter_target(stmt.target, it, kind, scope)
        self._loop_depth += 1
        self.check_body(stmt.body, scope)
        self._loop_depth -= 1

    def iter_elem_kinds(self, it: ast.expr, kind: str, scope: _Scope):
        """What iterating `it` yields: a kind, or a list of kinds for zip/enumerate tuples."""
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name):
            f = it.func.id
            if f == "range":
                return SCALAR
            if f == "zip":
                return [_elem(scope.peek(a)) for a in it.args]
            if f == "enumerate" and it.args:
                return [SCALAR, _elem(scope.peek(it.args[0]))]
            if f in ("reversed", "sorted", "list", "tuple") and it.args:
                return _elem(scope.peek(it.args[0]))
        if isinstance(it, ast.Call) and _dotted(it.func) in ("tl.range", "tl.static_range"):
            return SCALAR
        return _elem(kind)

    def bind_iter_target(self, target: ast.expr, it: ast.expr, kind: str, scope: _Scope) -> None:
        elem = self.iter_elem_kinds(it, kind, scope)
        self.bind_pattern(target, elem, scope)

    def bind_pattern(self, target: ast.expr, elem, scope: _Scope) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for i, t in enumerate(target.elts):
                if isinstance(elem, list):
                    sub = elem[i] if i < len(elem) else UNKNOWN
                else:
                    sub = _elem(elem) if elem in (SHAPE, TENSOR, TENSORS) else UNKNOWN
                self.bind_pattern(t, sub, scope)
        elif isinstance(target, ast.Name):
            scope.bind(target.id, target, elem if isinstance(elem, str) else UNKNOWN)
        else:
            self.bad(target, "loop targets must be names or tuples of names", "structure")

    def check_target(self, t: ast.expr, scope: _Scope, kind: str, value: ast.expr | None) -> None:
        if isinstance(t, ast.Name):
            scope.bind(t.id, t, kind)
        elif isinstance(t, ast.Tuple | ast.List):
            vals = value.elts if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(t.elts) else None
            parts = self.trusted_tuple(value)
            parts = parts if parts is not None and len(parts) == len(t.elts) else None
            for i, e in enumerate(t.elts):
                if parts is not None:
                    self.check_target(e, scope, parts[i], None)
                elif vals is not None:
                    self.check_target(e, scope, scope.peek(vals[i]), vals[i])
                else:
                    self.check_target(e, scope, _elem(kind) if kind in (SHAPE, TENSOR, TENSORS) else UNKNOWN, None)
        elif isinstance(t, ast.Attribute):
            if (scope.is_init and isinstance(t.value, ast.Name) and t.value.id == "self"
                    and not _is_dunder(t.attr)):
                prev = scope.cls.attrs.get(t.attr, UNKNOWN)
                scope.cls.attrs[t.attr] = kind if prev == UNKNOWN else _join(prev, kind)
                return
            root = _chain(t)
            what = ".".join(root) if root else ast.unparse(t)
            self.bad(t, f"assignment to attribute {what!r} is not allowed (monkeypatching); only self.<name> = ... "
                     "inside __init__", "monkeypatch")
        elif isinstance(t, ast.Subscript):
            if scope.ctx != "host":
                self.bad(t, "subscript assignment is not allowed inside kernels; use tl.store", "structure")
                return
            base = t.value
            if not (isinstance(base, ast.Name) and base.id in scope.locals):
                self.bad(t, "subscript assignment only to a local list", "monkeypatch")
                return
            if scope.locals[base.id] in (TENSOR, TENSORS):
                self.bad(t, f"launcher writes into tensor {base.id!r} with torch indexing; the math must be in a "
                         "Triton kernel", "torch-math")
            self.check_expr(t.slice, scope)
        else:
            self.bad(t, f"cannot assign to {type(t).__name__}", "structure")

    def trusted_tuple(self, value: ast.expr | None) -> tuple[str, ...] | None:
        """Kinds of the parts of a trusted prelude helper's tuple result, when `value` calls one."""
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            kind = self.trusted.get(value.func.id)
            if isinstance(kind, tuple):
                return kind
        return None

    # -- expressions ------------------------------------------------------------------------------------
    def check_arith(self, node: ast.AST, op: type, left: str, right: str, scope: _Scope) -> None:
        if op is ast.MatMult:
            self.bad(node, f"launcher computes with torch ('@' at line {node.lineno}); the math must be in a "
                     "Triton kernel", "torch-math")
            return
        for k in (left, right):
            if k in (TENSOR, TENSORS):
                self.bad(node, f"launcher computes with torch (tensor arithmetic {_short(node)!r} at line "
                         f"{node.lineno}); the math must be in a Triton kernel", "torch-math")
                return
        for k in (left, right):
            if k not in _NUMERIC:
                self.bad(node, f"launcher arithmetic {_short(node)!r} on a value that is not a size or scalar; "
                         "the math must be in a Triton kernel", "torch-math")
                return

    def check_expr(self, node: ast.expr | None, scope: _Scope, statement: bool = False) -> str:
        if node is None:
            return NONE
        m = getattr(self, "expr_" + type(node).__name__, None)
        if m is None:
            if type(node).__name__ not in _BANNED_NODES:
                self.bad(node, f"{type(node).__name__} expressions are not allowed", "structure")
            return UNKNOWN
        return m(node, scope)

    def expr_Constant(self, node: ast.Constant, scope: _Scope) -> str:
        v = node.value
        if isinstance(v, bool | int | float):
            return SCALAR
        if isinstance(v, str):
            return STR
        if v is None:
            return NONE
        if v is Ellipsis:
            return OTHER
        return UNKNOWN  # bytes/complex reported by generic_scan

    def expr_Name(self, node: ast.Name, scope: _Scope) -> str:
        name = node.id
        if name in scope.locals:
            return scope.locals[name]
        if name in _MODULES:
            self.bad(node, f"module {name!r} may only be used as the root of an allowed attribute path", "name")
            return UNKNOWN
        if name in self.constants:
            v = self.constants[name]
            return SCALAR if isinstance(v, ast.Constant) and isinstance(v.value, int | float) else OTHER
        if name in self.kernels:
            if scope.ctx == "kernel":
                return OTHER  # a jit function passed as a combine_fn
            self.bad(node, f"kernel {name!r} may only be launched as {name}[grid](...)", "launch")
            return UNKNOWN
        if name in self.host_funcs or name in self.classes:
            self.bad(node, f"{name!r} may only be called, not used as a value", "name")
            return UNKNOWN
        if name in _BUILTIN_VALUES and scope.ctx != "kernel":
            return OTHER
        return self.unknown_name(node, name)

    def unknown_name(self, node: ast.AST, name: str) -> str:
        if name in _FORBIDDEN_BUILTINS:
            self.bad(node, f"{name!r} is not allowed", "name")
        elif name in _ALL_BUILTINS:
            self.bad(node, f"builtin {name!r} is not allowed here", "name")
        else:
            self.bad(node, f"unknown name {name!r}", "name")
        return UNKNOWN

    def module_path(self, node: ast.AST, parts: list[str], scope: _Scope, called: bool) -> str:
        """Check an attribute path rooted at one of the four modules; return its kind."""
        root = parts[0]
        if root == "triton" and len(parts) > 1 and parts[1] == "language":
            parts = ["tl", *parts[2:]]
            root = "tl"
        if root not in self.imported:
            self.bad(node, f"module {root!r} is used but not imported", "import")
        path = ".".join(parts[1:])
        full = ".".join(parts)
        ctx = scope.ctx
        if root == "tl":
            ok = (len(parts) == 2 and parts[1] in TL_ALLOWED) or (
                len(parts) == 3 and parts[1] == "math" and parts[2] in TL_MATH_ALLOWED) or (
                len(parts) == 3 and parts[1] == "PropagateNan" and parts[2] in ("ALL", "NONE")) or (
                len(parts) >= 4 and parts[1] == "extra" and parts[-2] == "libdevice"
                and parts[2:-1] in (["libdevice"], ["cuda", "libdevice"]) and parts[-1] in LIBDEVICE_ALLOWED)
            if not ok:
                self.bad(node, f"{full} is not allowed (not in the tl allow list)", "attribute")
            elif ctx == "host" and called and parts[1] not in _TL_DTYPES:
                self.bad(node, f"{full} may only be used inside a @triton.jit kernel", "attribute")
            return DTYPE if len(parts) == 2 and parts[1] in _TL_DTYPES else OTHER
        if root == "math":
            if len(parts) != 2 or parts[1] not in MATH_ALLOWED:
                self.bad(node, f"{full} is not allowed (not in the math allow list)", "attribute")
            return SCALAR
        if ctx == "kernel":
            self.bad(node, f"{full} cannot be used inside a Triton kernel; use tl.*", "attribute")
            return UNKNOWN
        if root == "triton":
            if path == "Config" and ctx in ("toplevel", "decorator"):
                return OTHER
            if path not in TRITON_HOST_ALLOWED:
                self.bad(node, f"{full} is not allowed here (triton.{{{', '.join(sorted(TRITON_HOST_ALLOWED))}}}"
                         " in host code; jit/autotune/heuristics only as decorators)", "attribute")
            return SCALAR
        # torch
        if scope.is_init and called and path in TORCH_INIT_ALLOWED:
            return OTHER
        if path in TORCH_HOST_ALLOWED:
            if path in ("float32", "float16", "bfloat16", "float64", "float", "half", "double", "int8", "int16",
                        "int32", "int64", "uint8", "bool", "long", "int"):
                return DTYPE
            if path == "backends.cuda.matmul.allow_tf32":
                return SCALAR
            return OTHER
        if ctx in ("host", "toplevel", "decorator") and called and len(parts) == 2 \
                and parts[1] not in _TORCH_DANGEROUS and not parts[1].startswith("_"):
            self.bad(node, f"launcher computes with torch ({full} at line {node.lineno}); the math must be in a "
                     "Triton kernel", "torch-math")
        else:
            self.bad(node, f"{full} is not allowed (not in the torch allow list)", "attribute")
        return UNKNOWN

    def expr_Attribute(self, node: ast.Attribute, scope: _Scope, called: bool = False) -> str:
        parts = _chain(node)
        if parts is not None and parts[0] in _MODULES and parts[0] not in scope.locals:
            return self.module_path(node, parts, scope, called)
        if isinstance(node.value, ast.Name) and node.value.id == "self" and scope.locals.get("self") == "self":
            cls = scope.cls
            if node.attr in cls.methods:
                if not called:
                    self.bad(node, f"method self.{node.attr} may only be called", "name")
                return UNKNOWN
            if node.attr not in cls.attrs:
                self.bad(node, f"self.{node.attr} is not an attribute set in __init__", "name")
                return UNKNOWN
            return cls.attrs[node.attr]
        base = self.check_expr(node.value, scope)
        attr = node.attr
        if scope.ctx == "kernel":
            if attr not in KERNEL_VALUE_ATTRS:
                self.bad(node, f"attribute .{attr} is not allowed inside kernels", "attribute")
            return UNKNOWN
        if called:
            if attr in HOST_METHODS:
                return HOST_METHODS[attr]
            if base in (TENSOR, TENSORS):
                self.bad(node, f"launcher computes with torch (.{attr}() at line {node.lineno}); the math must "
                         "be in a Triton kernel", "torch-math")
            else:
                self.bad(node, f"method .{attr}() is not allowed in host code", "attribute")
            return UNKNOWN
        if attr not in HOST_ATTRS:
            self.bad(node, f"attribute .{attr} is not allowed in host code", "attribute")
            return UNKNOWN
        if attr in ("max", "min", "eps", "tiny", "bits", "resolution", "smallest_normal") and base in (TENSOR,
                                                                                                         TENSORS):
            self.bad(node, f"attribute .{attr} of a tensor is not allowed", "attribute")
        return HOST_ATTRS[attr]

    def expr_Call(self, node: ast.Call, scope: _Scope) -> str:
        func = node.func
        arg_kinds = [self.check_expr(a.value if isinstance(a, ast.Starred) else a, scope) for a in node.args]
        kw_kinds = {kw.arg: self.check_expr(kw.value, scope) for kw in node.keywords}
        ctx = scope.ctx
        if _is_super_init(func):
            if not scope.is_init or node.args or node.keywords:
                self.bad(node, "super() is only allowed as super().__init__() inside __init__", "name")
            return NONE
        if isinstance(func, ast.Subscript):
            return self.check_launch(node, scope)
        if ctx in ("toplevel", "decorator"):
            fname = _dotted(func)
            ok = fname in _IMPORT_TIME_CALLS or (fname or "").startswith("math.")
            if not ok:
                self.bad(node, f"call {_short(func)!r} is not allowed in module constants or decorators (it would "
                         "run at import time); only triton.Config, triton.cdiv, triton.next_power_of_2, math.*, "
                         "min, max, int, float, bool", "import-time")
                return UNKNOWN
        if isinstance(func, ast.Attribute):
            kind = self.expr_Attribute(func, scope, called=True)
            if (scope.cls is not None and isinstance(func.value, ast.Name) and func.value.id == "self"
                    and func.attr in scope.cls.methods):
                self.calls.setdefault(scope.qualname, set()).add(f"{scope.cls.node.name}.{func.attr}")
            parts = _chain(func)
            if parts and parts[0] in _MODULES and parts[0] not in scope.locals:
                full = ".".join(parts)
                if full == "triton.Config":
                    self.config_keys(node)
                    return OTHER
                if full == "torch.broadcast_shapes":
                    return SHAPE
                if full in ("torch.Size",):
                    return SHAPE
                if full in ("torch.promote_types", "torch.result_type", "torch.get_default_dtype"):
                    return DTYPE
                if full in ("torch.finfo", "torch.iinfo", "torch.device"):
                    return OTHER
                if full in ("torch.is_tensor", "torch.is_floating_point", "torch.cuda.is_available"):
                    return SCALAR
                if parts[0] == "torch":
                    return TENSOR if kind != UNKNOWN else UNKNOWN
                if parts[0] == "math" and ctx == "host" and any(k in (TENSOR, TENSORS) for k in arg_kinds):
                    self.bad(node, f"launcher computes with {full} on a tensor; the math must be in a Triton kernel",
                             "torch-math")
                return SCALAR if parts[0] in ("math", "triton") else OTHER
            if ctx == "host" and kind == "size*":
                return SCALAR if node.args else SHAPE
            if ctx == "host" and func.attr in ("append", "extend") and any(
                    k in (TENSOR, TENSORS) for k in arg_kinds):
                return NONE
            return kind
        if isinstance(func, ast.Name):
            name = func.id
            if name in scope.locals:
                self.bad(node, f"calling the local value {name!r} is not allowed", "name")
                return UNKNOWN
            if name in self.kernels:
                if ctx != "kernel":
                    self.bad(node, f"kernel {name!r} must be launched with a grid: {name}[grid](...)", "launch")
                return OTHER
            if name in self.host_funcs:
                if ctx == "kernel":
                    self.bad(node, f"kernel calls host function {name!r}; only @triton.jit helpers", "name")
                    return UNKNOWN
                if ctx != "host":
                    self.bad(node, f"{name!r} may not be called here", "name")
                    return UNKNOWN
                self.calls.setdefault(scope.qualname, set()).add(name)
                return self.helper_return(name)
            if name in self.classes:
                self.bad(node, f"instantiating {name!r} is not allowed inside the module", "name")
                return UNKNOWN
            allowed = KERNEL_BUILTINS if ctx == "kernel" else HOST_BUILTINS
            if name not in allowed or name in self.constants:
                self.unknown_name(func, name) if name not in self.constants else self.bad(
                    node, f"{name!r} is not callable", "name")
                return UNKNOWN
            if "key" in kw_kinds:
                self.bad(node, f"{name}(key=...) is not allowed", "name")
            if ctx != "kernel":
                tensorish = [k for k in arg_kinds if k in (TENSOR, TENSORS)]
                if tensorish and name not in ("len", "isinstance"):
                    self.bad(node, f"launcher computes with torch (builtin {name}() on a tensor at line "
                             f"{node.lineno}); the math must be in a Triton kernel", "torch-math")
                return self.builtin_kind(name, arg_kinds)
            return SCALAR
        self.bad(node, f"calling {_short(func)!r} is not allowed", "name")
        return UNKNOWN

    @staticmethod
    def builtin_kind(name: str, arg_kinds: list[str]) -> str:
        if name in ("len", "int", "float", "bool", "round", "isinstance", "any", "all", "sum", "abs"):
            return SCALAR
        if name in ("min", "max"):
            return SCALAR if all(k in _NUMERIC for k in arg_kinds) else UNKNOWN
        if name in ("tuple", "list", "sorted", "reversed"):
            if not arg_kinds:
                return SHAPE
            return SHAPE if arg_kinds[0] in (SHAPE, META) else (TENSORS if arg_kinds[0] == TENSORS else UNKNOWN)
        if name == "range":
            return SHAPE
        if name == "divmod":
            return SHAPE
        return OTHER

    def check_launch(self, node: ast.Call, scope: _Scope) -> str:
        sub = node.func
        assert isinstance(sub, ast.Subscript)
        kname = sub.value.id if isinstance(sub.value, ast.Name) else None
        if scope.ctx != "host":
            self.bad(node, "kernels may only be launched from host code", "launch")
            return NONE
        if kname is None or kname not in self.kernels:
            self.bad(node, f"launch of unknown kernel {_short(sub.value)!r}; launch a @triton.jit function of this "
                     "module as kernel[grid](...)", "launch")
            self.check_expr(sub.value, scope)
            return NONE
        self.check_expr(sub.slice, scope)
        self.launches.setdefault(scope.qualname, set()).add(kname)
        k = self.kernels[kname]
        params = k.params
        auto = k.auto_keys or set()
        has_star = any(isinstance(a, ast.Starred) for a in node.args)
        n_fixed = sum(1 for a in node.args if not isinstance(a, ast.Starred))
        kws = [kw.arg for kw in node.keywords]
        problems = []
        kws = [kw for kw in kws if kw not in _LAUNCH_OPTIONS or kw in params]
        for kw in kws:
            if kw not in params:
                problems.append(f"unknown keyword argument {kw!r}")
            elif kw in auto:
                problems.append(f"{kw!r} is supplied by autotune/heuristics and must not be passed")
        if len(set(kws)) != len(kws):
            problems.append("a keyword argument is repeated")
        by_name = set(kws) | auto
        tail_ok = by_name | k.defaults
        if has_star:
            r = len(params)
            while r > n_fixed and params[r - 1] in tail_ok:
                r -= 1
        else:
            r = n_fixed
            if r > len(params):
                problems.append(f"{r} positional arguments for {len(params)} parameters")
                r = len(params)
        for p in params[:r]:
            if p in by_name:
                problems.append(f"parameter {p!r} is given both positionally and by keyword/autotune")
            elif p in k.constexpr:
                problems.append(f"constexpr parameter {p!r} must be passed by keyword or by autotune configs")
        missing = [p for p in params[r:] if p not in tail_ok]
        if missing:
            problems.append(f"missing argument(s) {', '.join(missing)}")
        for msg in problems:
            self.bad(node, f"launch of {kname} does not match its signature "
                     f"({', '.join(params)}): {msg}", "signature")
        return NONE

    def expr_Subscript(self, node: ast.Subscript, scope: _Scope) -> str:
        base = self.check_expr(node.value, scope)
        idx = self.check_expr(node.slice, scope)
        if scope.ctx == "kernel":
            return UNKNOWN
        if idx in (TENSOR, TENSORS) and base in (TENSOR, TENSORS, UNKNOWN):
            self.bad(node, f"launcher computes with torch (tensor indexing {_short(node)!r}); the math must be in a "
                     "Triton kernel", "torch-math")
        if base in (SHAPE, META):
            return SHAPE if isinstance(node.slice, ast.Slice) else SCALAR
        if base == TENSORS:
            return TENSORS if isinstance(node.slice, ast.Slice) else TENSOR
        if base == TENSOR:
            return TENSOR
        return UNKNOWN

    def expr_Slice(self, node: ast.Slice, scope: _Scope) -> str:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                k = self.check_expr(part, scope)
                if scope.ctx == "host" and k in (TENSOR, TENSORS):
                    self.bad(part, "launcher slices with tensor values; the math must be in a Triton kernel",
                             "torch-math")
        return OTHER

    def expr_BinOp(self, node: ast.BinOp, scope: _Scope) -> str:
        left = self.check_expr(node.left, scope)
        right = self.check_expr(node.right, scope)
        if scope.ctx == "kernel":
            return UNKNOWN
        if scope.ctx == "host":
            self.check_arith(node, type(node.op), left, right, scope)
        if left == right:
            return left
        if SHAPE in (left, right) and {left, right} <= {SHAPE, SCALAR}:
            return SHAPE
        return SCALAR if {left, right} <= _NUMERIC else UNKNOWN

    def expr_UnaryOp(self, node: ast.UnaryOp, scope: _Scope) -> str:
        kind = self.check_expr(node.operand, scope)
        if scope.ctx == "host" and kind in (TENSOR, TENSORS):
            self.bad(node, f"launcher computes with torch (tensor arithmetic {_short(node)!r} at line "
                     f"{node.lineno}); the math must be in a Triton kernel", "torch-math")
        if scope.ctx == "host" and not isinstance(node.op, ast.Not) and kind not in _NUMERIC | {TENSOR, TENSORS}:
            self.bad(node, f"launcher arithmetic {_short(node)!r} on a value that is not a size or scalar",
                     "torch-math")
        return SCALAR if kind in _NUMERIC or isinstance(node.op, ast.Not) else kind

    def expr_BoolOp(self, node: ast.BoolOp, scope: _Scope) -> str:
        kinds = [self.check_expr(v, scope) for v in node.values]
        if scope.ctx == "host" and any(k in (TENSOR, TENSORS) for k in kinds):
            self.bad(node, "launcher uses tensors in a boolean expression; the math must be in a Triton kernel",
                     "torch-math")
        out = kinds[0]
        for k in kinds[1:]:
            out = _join(out, k)
        return out

    def expr_Compare(self, node: ast.Compare, scope: _Scope) -> str:
        kinds = [self.check_expr(node.left, scope)] + [self.check_expr(c, scope) for c in node.comparators]
        identity = all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops)
        if scope.ctx == "host" and not identity and any(k in (TENSOR, TENSORS) for k in kinds):
            self.bad(node, f"launcher computes with torch (tensor comparison {_short(node)!r} at line {node.lineno});"
                     " the math must be in a Triton kernel", "torch-math")
        return SCALAR

    def expr_IfExp(self, node: ast.IfExp, scope: _Scope) -> str:
        self.check_cond(node.test, scope)
        return _join(self.check_expr(node.body, scope), self.check_expr(node.orelse, scope))

    def _seq(self, node: ast.Tuple | ast.List, scope: _Scope) -> str:
        kinds = [self.check_expr(e.value if isinstance(e, ast.Starred) else e, scope) for e in node.elts]
        for e in node.elts:
            if isinstance(e, ast.Starred):
                self.bad(e, "starred expressions are only allowed as call arguments", "structure")
        if any(k in (TENSOR, TENSORS) for k in kinds):
            return TENSORS
        if all(k in (SCALAR, META) for k in kinds):
            return SHAPE
        return OTHER

    expr_Tuple = _seq
    expr_List = _seq

    def expr_Dict(self, node: ast.Dict, scope: _Scope) -> str:
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                self.bad(node, "'**' in dict displays is not allowed", "structure")
            else:
                self.check_expr(k, scope)
            self.check_expr(v, scope)
        if scope.ctx == "kernel":
            self.bad(node, "dict displays are not allowed inside kernels", "structure")
        return OTHER

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp, scope: _Scope) -> str:
        if scope.ctx == "kernel":
            self.bad(node, "comprehensions are not allowed inside kernels", "structure")
        inner = scope.child()
        for gen in node.generators:
            if gen.is_async:
                self.bad(node, "async comprehensions are not allowed", "structure")
            kind = self.check_expr(gen.iter, inner)
            self.bind_iter_target(gen.target, gen.iter, kind, inner)
            for cond in gen.ifs:
                inner_kind = self.check_expr(cond, inner)
                if inner.ctx == "host" and inner_kind in (TENSOR, TENSORS):
                    self.bad(cond, "launcher filters on tensor values", "torch-math")
        elt = self.check_expr(node.elt, inner)
        if elt in (TENSOR, TENSORS):
            return TENSORS
        return SHAPE if elt in (SCALAR, META) else OTHER

    expr_ListComp = _comprehension
    expr_GeneratorExp = _comprehension

    def expr_Lambda(self, node: ast.Lambda, scope: _Scope) -> str:
        if scope.ctx == "kernel":
            self.bad(node, "lambda is not allowed inside kernels", "structure")
        inner = scope.child()
        for a in node.args.args:
            inner.bind(a.arg, a, META)
        self.check_expr(node.body, inner)
        return OTHER

    def expr_Starred(self, node: ast.Starred, scope: _Scope) -> str:
        self.bad(node, "starred expressions are only allowed as call arguments", "structure")
        return UNKNOWN

    # -- units --------------------------------------------------------------------------------------------
    def check_units(self) -> None:
        def launches_any(qualname: str, seen: set[str]) -> bool:
            if qualname in seen:
                return False
            seen.add(qualname)
            if self.launches.get(qualname):
                return True
            return any(launches_any(h, seen) for h in self.calls.get(qualname, ()))

        units = [(n, f) for n, f in self.host_funcs.items() if not n.startswith("_")]
        units += [(f"{c}.forward", None) for c, info in self.classes.items() if "forward" in info.methods]
        for qualname, fn in units:
            if not launches_any(qualname, set()):
                node = fn if fn is not None else self.classes[qualname.split(".")[0]].node
                self.bad(node, f"{qualname} never launches a Triton kernel; the math must be in a Triton kernel",
                         "torch-math")
        if not units and not self.kernels:
            self.bad(None, "module defines no kernel and no translated unit", "structure")


class _Scope:
    def __init__(self, checker: _Checker, ctx: str, cls: _Class | None, qualname: str, is_init: bool = False,
                 parent: _Scope | None = None):
        self.checker, self.ctx, self.cls, self.qualname, self.is_init = checker, ctx, cls, qualname, is_init
        self.locals: dict[str, str] = dict(parent.locals) if parent else {}
        self.returns: str | None = None

    def child(self) -> _Scope:
        return _Scope(self.checker, self.ctx, self.cls, self.qualname, self.is_init, parent=self)

    def bind(self, name: str, node: ast.AST, kind: str, allow_self: bool = False) -> None:
        c = self.checker
        if _is_dunder(name):
            return  # reported by generic_scan
        if name == "self" and not allow_self and self.locals.get("self") == "self":
            c.bad(node, "rebinding 'self' is not allowed", "name")
            return
        if name in _MODULES or name in _ALL_BUILTINS or name in c.kernels or name in c.host_funcs \
                or name in c.classes or name in c.constants:
            c.bad(node, f"binding {name!r} shadows a module, builtin or top-level definition", "name")
            return
        prev = self.locals.get(name)
        self.locals[name] = kind if prev is None else _join(prev, kind)

    def peek(self, node: ast.expr) -> str:
        """Kind of an expression without reporting (it is or will be checked elsewhere)."""
        self.checker._peeking += 1
        saved = len(self.checker.out)
        saved_calls = {k: set(v) for k, v in self.checker.calls.items()}
        saved_launches = {k: set(v) for k, v in self.checker.launches.items()}
        try:
            return self.checker.check_expr(node, self)
        finally:
            del self.checker.out[saved:]
            self.checker.calls, self.checker.launches = saved_calls, saved_launches
            self.checker._peeking -= 1


def _as_load(t: ast.expr) -> ast.expr:
    if isinstance(t, ast.Name):
        return ast.copy_location(ast.Name(id=t.id, ctx=ast.Load()), t)
    if isinstance(t, ast.Attribute):
        return ast.copy_location(ast.Attribute(value=t.value, attr=t.attr, ctx=ast.Load()), t)
    if isinstance(t, ast.Subscript):
        return ast.copy_location(ast.Subscript(value=t.value, slice=t.slice, ctx=ast.Load()), t)
    return t


def _short(node: ast.AST, limit: int = 40) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of a parsed tree does not fail
        return type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_semantics(source: str) -> list[Violation]:
    """All rule violations of a candidate module (empty list: allowed). Never executes the source.

    Meant to run after `p2t_grammar.parse_module` accepted the text; on its own it still never raises
    for bad input, it reports a violation instead.
    """
    if not isinstance(source, str):
        return [Violation(0, 0, "module text must be str", "syntax")]
    bad = _BAD_CHARS.search(source)
    if bad is not None:
        line = source.count("\n", 0, bad.start()) + 1
        return [Violation(line, 0, f"control or invisible character {bad.group(0)!r} is not allowed", "syntax")]
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as e:
        return [Violation(e.lineno or 0, e.offset or 0, f"invalid Python: {e.msg}", "syntax")]
    except (RecursionError, MemoryError, ValueError, OverflowError, TypeError) as e:
        return [Violation(0, 0, f"cannot parse module: {type(e).__name__}", "syntax")]
    try:
        found = _Checker(tree).run()
    except RecursionError:
        return [Violation(0, 0, "module is nested too deeply to check", "structure")]
    unique = sorted(set(found))
    return unique
