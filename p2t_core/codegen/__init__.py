"""Codegen helpers shared by the lowerings: an indented-code writer, the per-kernel context, and the
emitter that spells graph nodes as Triton expressions through the op registry."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from p2t_core.ir import BOOL, Node
from p2t_core.ops import OpRegistry

TL_DTYPES = {"float32": "tl.float32", "float16": "tl.float16", "bfloat16": "tl.bfloat16", "float64": "tl.float64"}


class Writer:
    """Lines of Python with an indentation level, as in TorchInductor's IndentedBuffer."""

    def __init__(self, indent: int = 0):
        self.lines: list[str] = []
        self.level = indent

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    def lines_(self, texts) -> None:
        for t in texts:
            self.line(t)

    @contextlib.contextmanager
    def indent(self):
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def jit_def(self, name: str, params: list[str]) -> None:
        """`@triton.jit` and the signature of kernel `name`, its parameters wrapped at 100 columns."""
        self.line("@triton.jit")
        self.line(f"def {name}(")
        with self.indent():
            line = ""
            for p in params:
                if line and len(line) + len(p) + 2 > 100:
                    self.line(line)
                    line = ""
                line = f"{line} {p},".strip()
            if line:
                self.line(line)
        self.line("):")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class Kernel:
    """What a plugin returns for a group: the kernel's source and the launcher lines that run it."""

    name: str
    source: str  # the @triton.jit function (with any @triton.autotune decorator)
    launch: list[str]  # launcher statements: allocate the outputs (named by ctx.out_name) and launch
    helpers: tuple[str, ...] = ()  # names of registry helpers the kernel calls


@dataclass
class LoweringContext:
    """Everything a lowering needs besides the group: names, the registry, the launcher's environment."""

    unit: str
    kernel_name: str
    registry: OpRegistry
    launcher: LauncherEnv
    autotune: bool = True
    helpers: set[str] = field(default_factory=set)

    def emitter(self, names: dict[int, str]) -> ExprEmitter:
        return ExprEmitter(self, names)


class LauncherEnv:
    """Python expressions, inside the launcher function, for the values a kernel reads or writes."""

    def __init__(self):
        self.exprs: dict[int, str] = {}
        self.dtypes: dict[str, str] = {}  # dtype atom -> expression
        self.sizes: dict[str, str] = {}  # size variable -> expression
        self.inplace: dict[int, str] = {}  # output node id -> parameter written in place
        self.prelude: set[str] = set()  # launcher helpers (p2t_core.codegen.prelude) the module needs
        self.counter = 0
        self.used: set[str] = set()

    def alloc(self, node: Node, shape: str, dtype: str, device: str, var: str) -> str:
        """The launcher line that provides the buffer of an output: a new tensor, or the parameter the unit
        writes in place (loop-style `out[i] = ...`)."""
        self.exprs[node.id] = var
        if node.id in self.inplace:
            self.prelude.add("_p2t_inplace")
            return f"{var} = _p2t_inplace({self.inplace[node.id]}, {shape})"
        return f"{var} = torch.empty({shape}, dtype={dtype}, device={device})"

    def size(self, s) -> str:
        return str(s) if isinstance(s, int) else self.sizes[s]

    def fresh(self, prefix: str) -> str:
        name = prefix
        while name in self.used:
            self.counter += 1
            name = f"{prefix}_{self.counter}"
        self.used.add(name)
        return name

    def tensor(self, node: Node) -> str:
        return self.exprs[node.id]

    def scalar(self, node: Node) -> str:
        if node.op == "const":
            return literal(node.attrs["value"])
        return self.exprs[node.id]

    def dtype(self, node: Node) -> str:
        if node.dtype == BOOL:
            return "torch.bool"
        fixed = node.dtype.fixed
        if fixed:
            return f"torch.{fixed}"
        atoms = sorted(node.dtype.atoms)
        if not atoms:
            return "torch.float32"
        exprs = [self.dtypes.get(atom, f"torch.{atom}") for atom in atoms]
        expr = exprs[0]
        for other in exprs[1:]:
            expr = f"torch.promote_types({expr}, {other})"
        return expr


def literal(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if value != value:
            return 'float("nan")'
        if value in (float("inf"), float("-inf")):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    return repr(value)


def _round_to_bf16(v: str) -> str:
    """fp32 `v` rounded to the nearest bf16 value (ties to even), still as fp32; NaN stays NaN."""
    bits = f"{v}.to(tl.uint32, bitcast=True)"
    rounded = f"((({bits} + 0x7FFF + (({bits} >> 16) & 1)) >> 16) << 16).to(tl.float32, bitcast=True)"
    return f"tl.where({v} != {v}, {v}, {rounded})"


def _integral(node: Node) -> bool:
    """An int or bool value in the kernel: an integer scalar argument, or an integer/bool tensor's load."""
    if node.op == "scalar":
        return node.attrs.get("kind") in ("int", "bool")
    return node.op != "const" and not node.dtype.is_float


class ExprEmitter:
    """Spells member nodes as Triton statements; `names` maps node ids to kernel variable names."""

    def __init__(self, ctx: LoweringContext, names: dict[int, str]):
        self.ctx, self.names = ctx, names
        self.counter = 0

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def operand(self, node: Node) -> str:
        if node.op == "const":
            value = node.attrs["value"]
            return literal(float(value) if isinstance(value, int) and not isinstance(value, bool) else value)
        return self.names[node.id]

    def emit(self, node: Node) -> str:
        """Statement lines are returned by `lines`; this returns the expression for `node`."""
        if node.op == "cast":
            (x,) = node.inputs
            target = node.attrs["to"]
            v = self.operand(x)
            if target == "bool":
                return f"{v} != 0"
            if x.dtype == BOOL:
                return f"{v}.to(tl.float32)"
            if target == "bfloat16":  # round to nearest even on the bits, as torch does; keep computing in fp32
                return _round_to_bf16(v)  # (the interpreter's own fp32 -> bf16 conversion truncates)
            if target == "float16":  # round as torch does, keep computing in fp32
                return f"{v}.to(tl.float16).to(tl.float32)"
            return v
        op = self.ctx.registry[node.op]
        values = [self.operand(i) for i in node.inputs]
        if op.result == "float":  # float math of an int (`math.sqrt(d)` for `d: int`): tl.sqrt wants fp32
            values = [f"{v}.to(tl.float32)" if _integral(i) else v for i, v in zip(node.inputs, values, strict=True)]
        operands = dict(zip(node.attrs["operands"], values, strict=True))
        for name in op.static:
            operands[name] = literal(node.attrs[name])
        text = op.spell(operands)
        # only the helpers this spelling calls (`x ** 3` spells as a product, not through `_p2t_pow`)
        self.ctx.helpers.update(h for h in op.helpers if re.search(rf"\b{h}\(", text))
        return text

    def lines(self, nodes: list[Node]) -> list[str]:
        out = []
        for node in nodes:
            if node.id in self.names:
                continue
            var = self.fresh()
            out.append(f"{var} = {self.emit(node)}")
            self.names[node.id] = var
        return out
