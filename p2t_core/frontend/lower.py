"""libcst → op graph: evaluates a unit's straight-line body symbolically through the op registry.

Calls resolve by qualified name (`QualifiedNameProvider`), so `import torch as t; t.exp(x)` and
`from torch import exp` both reach the op registered with the spelling `torch.exp`; methods on tensors
resolve as `torch.Tensor.<name>`. Values during evaluation are graph `Node`s (tensors and scalars),
Python numbers, tuples, dtypes (`DTypeName`), and a few frontend-only values (shapes, `torch.max`'s
named tuple).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider, QualifiedNameProvider

from p2t_core.builder import Builder, Sizes
from p2t_core.errors import P2TError, SourceError, UnsupportedError
from p2t_core.frontend.units import ParsedFile, Unit, _force
from p2t_core.ir import Graph, Node
from p2t_core.ops import MATH_CONSTANTS, OpRegistry
from p2t_core.signature import InitArg, ModuleTensor, ScalarParam, Signature, TensorParam

STATEMENTS_HINT = "assignments, augmented assignments, one return, docstrings, pass"
DTYPE_NAMES = {
    "float32": "float32", "float": "float32", "float16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "float64": "float64", "double": "float64", "bool": "bool",
}  # fmt: skip
SCALAR_KINDS = {"builtins.int": "int", "builtins.float": "float", "builtins.bool": "bool"}
BINOPS = {
    "Add": "operator.add", "Subtract": "operator.sub", "Multiply": "operator.mul", "Divide": "operator.truediv",
    "FloorDivide": "operator.floordiv", "Modulo": "operator.mod", "Power": "operator.pow",
    "MatrixMultiply": "operator.matmul", "BitAnd": "operator.and_", "BitOr": "operator.or_",
    "BitXor": "operator.xor",
}  # fmt: skip
CMPOPS = {
    "LessThan": "operator.lt", "LessThanEqual": "operator.le", "GreaterThan": "operator.gt",
    "GreaterThanEqual": "operator.ge", "Equal": "operator.eq", "NotEqual": "operator.ne",
}  # fmt: skip
UNOPS = {"Minus": "operator.neg", "BitInvert": "operator.invert", "Not": "operator.not_", "Plus": None}


@dataclass(frozen=True)
class DTypeName:
    name: str


@dataclass(frozen=True)
class ShapeValue:
    """`x.shape`: a tuple of sizes, each an int or a `size` node."""

    items: tuple


@dataclass(frozen=True)
class MinMaxResult:
    """`torch.max(x, dim)`: a named tuple usable as `[0]`, `.values`, `.indices`, or unpacked."""

    values: Node
    indices: Node

    def __getitem__(self, i):
        return (self.values, self.indices)[i]


class Frontend:
    def __init__(self, parsed: ParsedFile, registry: OpRegistry, ranks: dict[str, int] | None = None):
        self.parsed = parsed
        self.registry = registry
        self.meta = parsed.metadata()
        self.rank_hints = ranks or {}

    # -- locations and errors ---------------------------------------------------------------------
    def where(self, node: cst.CSTNode) -> dict:
        pos = self.meta[PositionProvider].get(node)
        if pos is None:  # a node the loop normalizer wrote: point at its unit
            return {"path": self.parsed.path, "line": getattr(self, "unit_line", 1), "col": 1}
        return {"path": self.parsed.path, "line": pos.start.line, "col": pos.start.column + 1}

    def unsupported(self, node: cst.CSTNode, what: str, hint: str) -> UnsupportedError:
        return UnsupportedError(what, hint, **self.where(node))

    def qualified(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in _force(self.meta[QualifiedNameProvider].get(node, ()))}

    # -- units ------------------------------------------------------------------------------------
    def build(self, unit: Unit) -> tuple[Graph, Signature]:
        self.b = Builder(self.registry, Sizes())
        self.env: dict[str, object] = {}
        self.attrs: dict[str, object] = {}
        self.init_plan: list = []
        self.inplace: dict[str, Node] = {}  # parameter written in place (`P.copy_(v)`) -> its new value
        self.unit_line = unit.line
        if unit.kind == "function":
            fn = unit.node
            params, sig_params = self.bind_params(fn, skip_self=False)
            init_args, module_tensors = (), ()
        else:
            init_args, module_tensors = self.read_init(unit.node)
            fn = self.method(unit.node, "forward")
            params, sig_params = self.bind_params(fn, skip_self=True)
        outputs, returns_tuple = self.run_body(fn)
        graph = Graph(
            unit.name,
            params,
            outputs,
            kind=unit.kind,
            module_tensors=[t for t in self.attrs.values() if isinstance(t, Node) and t.op == "module_tensor"],
            returns_tuple=bool(returns_tuple),
            inplace={v.id: name for name, v in self.inplace.items()},
            returns_none=returns_tuple is None,
            init_params=[(a.name, a.default) for a in init_args],
            init_plan=self.init_plan,
        )
        self.resolve_shapes(graph)
        find = self.b.sizes.find
        sig = Signature(
            unit=unit.name,
            kind=unit.kind,
            params=tuple(
                TensorParam(p.name, tuple(find(s) for s in n.shape)) if isinstance(p, TensorParam) else p
                for p, n in zip(sig_params, params, strict=True)
            ),
            n_outputs=len(outputs) if returns_tuple else (0 if returns_tuple is None else 1),
            inplace=tuple(self.inplace),
            init_args=tuple(
                InitArg(a.name, a.kind, a.default, find(a.size_var) if a.size_var else None) for a in init_args
            ),
            module_tensors=tuple(ModuleTensor(t.name, tuple(find(s) for s in t.dims), t.init) for t in module_tensors),
        )
        return graph, sig

    def resolve_shapes(self, graph: Graph) -> None:
        for n in graph.nodes() + graph.params + graph.module_tensors:
            n.shape = self.b.sizes.shape(n.shape)
            if n.op == "size":
                n.attrs["dims"] = self.b.sizes.shape(n.attrs["dims"])

    def method(self, cls: cst.ClassDef, name: str) -> cst.FunctionDef:
        for stmt in cls.body.body:
            if m.matches(stmt, m.FunctionDef(name=m.Name(name))):
                return stmt
        raise SourceError(f"Module class {cls.name.value} has no {name}()", **self.where(cls))

    def bind_params(self, fn: cst.FunctionDef, skip_self: bool):
        p = fn.params
        if p.star_arg not in (None, cst.MaybeSentinel.DEFAULT) or p.star_kwarg or p.posonly_params:
            raise self.unsupported(fn, "*args, **kwargs or positional-only parameters", "plain named parameters")
        params: list[Node] = []
        sig: list[TensorParam | ScalarParam] = []
        plist = list(p.params) + list(p.kwonly_params)
        if skip_self:
            if not plist or plist[0].name.value != "self":
                raise self.unsupported(fn, "forward without self", "def forward(self, ...)")
            plist = plist[1:]
        for param in plist:
            name = param.name.value
            kind = self.scalar_kind(param)
            if kind:
                default = self.literal(param.default) if param.default else None
                node = self.b.scalar(name, kind)
                sig.append(ScalarParam(name, kind, default))
            else:
                node = self.b.input(name, self.rank_hints.get(name, 2))
                sig.append(TensorParam(name, node.shape))
            self.env[name] = node
            params.append(node)
        return params, sig

    def scalar_kind(self, param: cst.Param) -> str | None:
        if param.annotation is not None:
            names = self.qualified(param.annotation.annotation)
            for qn, kind in SCALAR_KINDS.items():
                if qn in names:
                    return kind
            if names & {"torch.Tensor"}:
                return None
            raise self.unsupported(param.annotation, "parameter annotation", "int, float, bool or torch.Tensor")
        if param.default is not None:
            value = self.literal(param.default)
            return {bool: "bool", int: "int", float: "float"}[type(value)]
        return None

    def literal(self, expr: cst.BaseExpression):
        value = self.eval_const(expr)
        if not isinstance(value, (bool, int, float)):
            raise self.unsupported(expr, "default value", "an int, float or bool literal")
        return value

    def eval_const(self, expr):
        if m.matches(expr, m.UnaryOperation(operator=m.Minus())):
            v = self.eval_const(expr.expression)
            return -v if isinstance(v, (int, float)) else None
        if m.matches(expr, m.Integer()):
            return int(expr.evaluated_value)
        if m.matches(expr, m.Float()):
            return float(expr.evaluated_value)
        if m.matches(expr, m.Name("True") | m.Name("False")):
            return expr.value == "True"
        return None

    def read_init(self, cls: cst.ClassDef):
        """Scalar attributes from constructor arguments and tensor parameters (`nn.Parameter(torch.ones(dim))`)."""
        if not any(m.matches(st, m.FunctionDef(name=m.Name("__init__"))) for st in cls.body.body):
            return [], []  # a Module without parameters: nothing to replay
        init = self.method(cls, "__init__")
        args: list[InitArg] = []
        plist = list(init.params.params)[1:]
        locals_: dict[str, object] = {}
        for param in plist:
            default = self.literal(param.default) if param.default else None
            kind = self.scalar_kind(param) or "int"
            args.append(InitArg(param.name.value, kind, default))
            locals_[param.name.value] = ("arg", param.name.value, kind, default)
        tensors: list[ModuleTensor] = []
        size_vars: dict[str, str] = {}
        self.init_plan = []
        for stmt in init.body.body:
            if m.matches(stmt, m.SimpleStatementLine(body=[m.Expr(m.Call(func=m.Attribute(attr=m.Name("__init__"))))])):
                continue
            if m.matches(stmt, m.SimpleStatementLine(body=[m.Expr(m.SimpleString())])):
                continue
            target = m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(m.Attribute(m.Name("self")))])])
            if not m.matches(stmt, target):
                raise self.unsupported(stmt, "statement in __init__", "super().__init__() and self.attr = ...")
            assign = stmt.body[0]
            attr = assign.targets[0].target.attr.value
            value = assign.value
            self.b.where = self.where(stmt)
            tensor = self.init_tensor(value, locals_, size_vars)
            if tensor is not None:
                dims, init_kind = tensor
                node = self.b.module_tensor(attr, dims, init_kind)
                self.attrs[attr] = node
                tensors.append(ModuleTensor(attr, dims, init_kind))
                by_var = {v: k for k, v in size_vars.items()}
                self.init_plan.append(("tensor", attr, tuple(by_var.get(d, d) for d in dims), init_kind))
                continue
            if m.matches(value, m.Name()) and value.value in locals_:
                _, arg, kind, default = locals_[value.value]
                self.attrs[attr] = self.b.scalar(f"self.{attr}", kind)
                self.attrs[attr].attrs["init_arg"] = arg
                self.init_plan.append(("arg", attr, arg))
                continue
            const = self.eval_const(value)
            if const is None:
                raise self.unsupported(value, "attribute value", "a constructor argument, a number, or nn.Parameter")
            self.attrs[attr] = self.b.const(const)
            self.init_plan.append(("const", attr, const))
        args = [InitArg(a.name, a.kind, a.default, size_vars.get(a.name)) for a in args]
        return args, tensors

    def init_tensor(self, value, locals_, size_vars):
        call = value
        parameter = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
        if m.matches(call, m.Call()) and self.qualified(call.func) & parameter:
            call = call.args[0].value
        if not m.matches(call, m.Call()):
            return None
        names = self.qualified(call.func)
        kinds = {"torch.ones": "ones", "torch.zeros": "zeros", "torch.randn": "randn", "torch.empty": "empty"}
        kind = next((k for q, k in kinds.items() if q in names), None)
        if kind is None:
            return None
        dims = []
        for a in call.args:
            if a.keyword is not None:
                continue
            if m.matches(a.value, m.Name()) and a.value.value in locals_:
                arg = a.value.value
                size_vars.setdefault(arg, self.b.sizes.fresh(f"{arg}_"))
                dims.append(size_vars[arg])
            elif m.matches(a.value, m.Integer()):
                dims.append(int(a.value.value))
            else:
                raise self.unsupported(a.value, "tensor size in __init__", "constructor arguments or int literals")
        return tuple(dims), kind

    # -- statements -------------------------------------------------------------------------------
    def run_body(self, fn: cst.FunctionDef):
        body = fn.body.body
        result = None
        for i, stmt in enumerate(body):
            if m.matches(stmt, m.SimpleStatementLine()):
                for small in stmt.body:
                    self.b.where = self.where(small)
                    if m.matches(small, m.Return()):
                        if result is not None or i != len(body) - 1:
                            raise self.unsupported(small, "return before the end of the body", "one final return")
                        if small.value is None:
                            raise self.unsupported(small, "return without a value", "return a tensor or a tuple")
                        result = self.eval(small.value)
                    else:
                        self.statement(small)
            elif m.matches(stmt, m.For() | m.While()):
                raise self.unsupported(stmt, "loop", "loops over range() written as in docs (loop-style units)")
            else:
                kind = type(stmt).__name__.lower()
                raise self.unsupported(stmt, f"statement ({kind})", STATEMENTS_HINT)
        if result is None and self.inplace:
            return list(self.inplace.values()), None  # the unit writes its outputs in place, returns None
        if result is None:
            raise self.unsupported(fn, "function without a return", "return a tensor or a tuple of tensors")
        if isinstance(result, tuple):
            outs = [self.tensor_out(r, fn) for r in result]
            return outs, True
        return [self.tensor_out(result, fn)], False

    def tensor_out(self, value, where):
        if isinstance(value, Node) and (value.rank or _reads_a_tensor(value)):
            return value
        if isinstance(value, MinMaxResult):
            raise self.unsupported(where, "returning a (values, indices) pair", "return .values or .indices")
        shown = "a Python number or scalar" if isinstance(value, (int, float, bool, Node)) else type(value).__name__
        raise self.unsupported(where, f"returning {shown}", "return a tensor or a tuple of tensors")

    def statement(self, small):
        if m.matches(small, m.Expr(m.SimpleString() | m.ConcatenatedString())):
            return
        if m.matches(small, m.Expr(m.Call(func=m.Attribute(value=m.Name(), attr=m.Name("copy_")), args=[m.Arg()]))):
            self.write_inplace(small.value.func.value.value, self.eval(small.value.args[0].value), small)
            return
        if m.matches(small, m.Pass()):
            return
        if m.matches(small, m.Assign()):
            value = self.eval(small.value)
            for target in small.targets:
                self.assign(target.target, value)
            return
        if m.matches(small, m.AnnAssign()) and small.value is not None:
            self.assign(small.target, self.eval(small.value))
            return
        if m.matches(small, m.AugAssign()):
            op = type(small.operator).__name__.replace("Assign", "")
            current = self.eval(small.target)
            self.assign(small.target, self.binop(BINOPS[op], current, self.eval(small.value), small))
            return
        if m.matches(small, m.Import() | m.ImportFrom()):
            return  # imports inside a body only feed qualified names
        kind = type(small).__name__.lower()
        raise self.unsupported(small, f"statement ({kind})", STATEMENTS_HINT)

    def write_inplace(self, name: str, value, where) -> None:
        """`P.copy_(v)`: the unit writes parameter P; later reads of P see v."""
        target = self.env.get(name)
        if not isinstance(target, Node) or target.op != "input":
            raise self.unsupported(where, f"in-place write to {name}", "copy_ into a tensor parameter")
        if not isinstance(value, Node) or value.rank == 0:
            raise self.unsupported(where, "copy_ of a scalar", "copy_ of a tensor expression")
        value = self.b.expand(value, target.shape) if value.shape != target.shape else value
        if value.op in ("input", "module_tensor", "expand", "reshape", "permute"):  # a copy still needs a kernel
            value = self.b.elementwise("mul", x=value, y=self.b.const(1.0))
        self.inplace[name] = value
        self.env[name] = value

    def assign(self, target, value):
        if m.matches(target, m.Name()):
            self.env[target.value] = value
        elif m.matches(target, m.Tuple() | m.List()):
            if isinstance(value, ShapeValue):  # `n, m = x.shape`
                value = tuple(value.items)
            items = list(value) if isinstance(value, (tuple, MinMaxResult)) else None
            if items is None and isinstance(value, MinMaxResult):
                items = [value.values, value.indices]
            if items is None or len(items) != len(target.elements):
                raise self.unsupported(target, "tuple unpacking of this value", "unpacking a tuple of equal length")
            for el, v in zip(target.elements, items, strict=True):
                self.assign(el.value, v)
        else:
            raise self.unsupported(target, "assignment target", "a name or a tuple of names")

    # -- expressions ------------------------------------------------------------------------------
    def eval(self, expr: cst.BaseExpression):
        self.b.where = self.where(expr)
        method = getattr(self, f"eval_{type(expr).__name__}", None)
        if method is None:
            raise self.unsupported(expr, f"expression ({type(expr).__name__})", "tensor arithmetic and calls")
        return method(expr)

    def eval_Name(self, expr: cst.Name):
        if expr.value in self.env:
            return self.env[expr.value]
        if expr.value in ("True", "False"):
            return expr.value == "True"
        if expr.value == "None":
            return None
        value = self.global_value(expr)
        if value is None:
            raise SourceError(f"name {expr.value!r} is not defined in the unit", **self.where(expr))
        return value

    def global_value(self, expr):
        """What an imported name or attribute chain stands for: a dtype, a math constant, a callable; None if the
        qualified-name provider knows nothing of it."""
        names = self.qualified(expr)
        dtype = self.dtype_of(names)
        if dtype:
            return dtype
        const = next((MATH_CONSTANTS[q] for q in names if q in MATH_CONSTANTS), None)
        if const is not None:
            return const
        return ("callable", expr) if names else None

    def dtype_of(self, names) -> DTypeName | None:
        for q in names:
            for prefix in ("torch.", "numpy."):
                if q.startswith(prefix) and q[len(prefix) :] in DTYPE_NAMES:
                    return DTypeName(DTYPE_NAMES[q[len(prefix) :]])
        return None

    def eval_Integer(self, expr):
        return int(expr.evaluated_value)

    def eval_Float(self, expr):
        return float(expr.evaluated_value)

    def eval_SimpleString(self, expr):
        return expr.evaluated_value

    def eval_Tuple(self, expr):
        return tuple(self.eval(e.value) for e in expr.elements)

    eval_List = eval_Tuple

    def eval_BinaryOperation(self, expr):
        op = BINOPS.get(type(expr.operator).__name__)
        if op is None:
            raise self.unsupported(expr, f"operator {type(expr.operator).__name__}", "+ - * / // % ** @ & |")
        return self.binop(op, self.eval(expr.left), self.eval(expr.right), expr)

    def binop(self, spelling, left, right, where):
        if isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(left, bool):
            import operator

            try:
                return getattr(operator, spelling.split(".")[1])(left, right)
            except (ZeroDivisionError, OverflowError, ValueError) as e:
                raise SourceError(f"constant arithmetic fails: {e}", **self.where(where)) from None
        return self.apply(spelling, [left, right], {}, where)

    def eval_UnaryOperation(self, expr):
        spelling = UNOPS.get(type(expr.operator).__name__)
        value = self.eval(expr.expression)
        if spelling is None:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and spelling == "operator.neg":
            return -value
        return self.apply(spelling, [value], {}, expr)

    def eval_Comparison(self, expr):
        if len(expr.comparisons) != 1:
            raise self.unsupported(expr, "chained comparison", "one comparison per expression")
        comp = expr.comparisons[0]
        spelling = CMPOPS.get(type(comp.operator).__name__)
        if spelling is None:
            raise self.unsupported(expr, f"comparison {type(comp.operator).__name__}", "< <= > >= == !=")
        return self.apply(spelling, [self.eval(expr.left), self.eval(comp.comparator)], {}, expr)

    def eval_Attribute(self, expr: cst.Attribute):
        if m.matches(expr.value, m.Name("self")):
            attr = expr.attr.value
            if attr not in self.attrs:
                raise SourceError(f"self.{attr} is not set in __init__", **self.where(expr))
            return self.attrs[attr]
        if not self.root_is_local(expr):
            value = self.global_value(expr)
            if value is not None:
                return value
        base = self.eval(expr.value)
        attr = expr.attr.value
        if isinstance(base, MinMaxResult):
            if attr in ("values", "indices"):
                return getattr(base, attr)
        if isinstance(base, Node):
            if attr == "shape":
                return self.shape_of(base)
            if attr == "ndim":
                return base.rank
            if attr in ("T", "mT"):
                if base.rank < 2:
                    return base
                return self.b.transpose(base, -2, -1) if attr == "mT" or base.rank == 2 else self.b.permute(
                    base, tuple(reversed(range(base.rank)))
                )
            return ("method", base, attr, expr)
        raise self.unsupported(expr, f"attribute .{attr}", "tensor methods, .shape, .T, .values, .indices")

    def root_is_local(self, expr) -> bool:
        """Whether an attribute chain starts at a value of the unit (not at an imported module)."""
        root = expr
        while m.matches(root, m.Attribute() | m.Subscript()):
            root = root.value
        if m.matches(root, m.Call()):  # an attribute of a call's result: a value, not a module path
            return True
        return not m.matches(root, m.Name()) or root.value in self.env or root.value == "self"

    def shape_of(self, node: Node) -> ShapeValue:
        return ShapeValue(tuple(s if isinstance(s, int) else self.b.size((s,)) for s in node.shape))

    def eval_Subscript(self, expr: cst.Subscript):
        base = self.eval(expr.value)
        elements = expr.slice
        if isinstance(base, (ShapeValue, tuple, MinMaxResult)):
            if len(elements) != 1 or not m.matches(elements[0].slice, m.Index()):
                raise self.unsupported(expr, "slicing a shape or tuple", "an integer index like x.shape[-1]")
            idx = self.eval(elements[0].slice.value)
            items = base.items if isinstance(base, ShapeValue) else base
            if not isinstance(idx, int) or not -len(tuple(items)) <= idx < len(tuple(items)):
                raise SourceError(f"index {idx} out of range", **self.where(expr))
            return items[idx] if not isinstance(base, MinMaxResult) else base[idx]
        if not isinstance(base, Node) or base.rank == 0:
            raise self.unsupported(expr, "subscript of a non-tensor", "x[:, None], x[..., None], x.shape[i]")
        return self.index_tensor(base, elements, expr)

    def index_tensor(self, x: Node, elements, expr):
        """Only views that insert size-1 dims: `x[:, None]`, `x[None]`, `x[..., None]`."""
        items = []
        for el in elements:
            s = el.slice
            if m.matches(s, m.Slice(lower=None, upper=None, step=None)):
                items.append(":")
            elif m.matches(s, m.Index(value=m.Name("None"))):
                items.append("None")
            elif m.matches(s, m.Index(value=m.Ellipsis())):
                items.append("...")
            else:
                raise self.unsupported(expr, "tensor indexing other than inserting dims", "x[:, None], x[..., None]")
        if items.count("...") > 1:
            raise SourceError("more than one ellipsis in an index", **self.where(expr))
        n_real = sum(1 for i in items if i == ":")
        if n_real > x.rank:
            raise self.b.shape_error(f"too many indices for a tensor of rank {x.rank}")
        if "..." in items:
            k = items.index("...")
            items = items[:k] + [":"] * (x.rank - n_real) + items[k + 1 :]
        else:
            items += [":"] * (x.rank - n_real)
        shape, dim = [], 0
        for item in items:
            if item == "None":
                shape.append(1)
            else:
                shape.append(x.shape[dim])
                dim += 1
        return self.b.reshape(x, tuple(shape))

    def eval_Call(self, expr: cst.Call):
        func = self.eval(expr.func) if not m.matches(expr.func, m.Name()) or expr.func.value in self.env else None
        args, kwargs = [], {}
        for a in expr.args:
            if a.star:
                raise self.unsupported(a, "*args/**kwargs in a call", "plain positional and keyword arguments")
            value = self.eval(a.value)
            if a.keyword is not None:
                kwargs[a.keyword.value] = value
            else:
                args.append(value)
        if isinstance(func, tuple) and func and func[0] == "method":
            _, receiver, attr, _ = func
            return self.apply(f"torch.Tensor.{attr}", [receiver, *args], kwargs, expr)
        names = self.qualified(expr.func)
        for name in sorted(names):
            if name in self.registry.by_spelling or name in BUILTIN_CALLS:
                return self.apply(name, args, kwargs, expr)
        shown = sorted(names)[0] if names else cst.Module([]).code_for_node(expr.func)
        raise self.unsupported(expr, f"call to {shown}", "torch/F/numpy ops (run `p2t plugins` for the list)")

    def eval_IfExp(self, expr):
        cond = self.eval(expr.test)
        if isinstance(cond, bool):
            return self.eval(expr.body) if cond else self.eval(expr.orelse)
        return self.apply("torch.where", [cond, self.eval(expr.body), self.eval(expr.orelse)], {}, expr)

    # -- calls ------------------------------------------------------------------------------------
    def apply(self, spelling: str, args: list, kwargs: dict, where):
        self.b.where = self.where(where)
        if spelling in BUILTIN_CALLS:
            return BUILTIN_CALLS[spelling](self, args, kwargs, where)
        op = self.registry.lookup(spelling)
        if op is None:
            raise self.unsupported(where, f"call to {spelling}", "torch/F/numpy ops (run `p2t plugins` for the list)")
        args = [self.to_operand(a, where) for a in args]
        kwargs = {k: self.to_operand(v, where) for k, v in kwargs.items()}
        kwargs = {op.aliases.get(k, k): v for k, v in kwargs.items()} if op.aliases else kwargs
        try:
            return self.b.call(op.name, *args, **kwargs)
        except P2TError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise SourceError(f"cannot apply {spelling}: {e}", **self.where(where)) from None

    def to_operand(self, value, where):
        if isinstance(value, ShapeValue):
            return tuple(value.items)
        if isinstance(value, MinMaxResult):
            raise self.unsupported(where, "a (values, indices) pair as an operand", "use .values or .indices")
        if isinstance(value, tuple) and value and value[0] in ("method", "callable"):
            raise self.unsupported(where, "a function used as a value", "calling it")
        return value


def _reads_a_tensor(node: Node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op in ("input", "module_tensor"):
            return True
        stack.extend(n.inputs)
    return False


# -- frontend built-ins: shape glue and dtype casts, which are not ops of any plugin ------------------
def _size_arg(fe: Frontend, value, where):
    if isinstance(value, int):
        return value
    if isinstance(value, Node) and value.op == "size" and len(value.attrs["dims"]) == 1:
        return value.attrs["dims"][0]
    if isinstance(value, Node) and value.op == "const" and isinstance(value.attrs["value"], int):
        return value.attrs["value"]
    raise fe.unsupported(where, "a size that is not an int or x.shape[i]", "ints, -1 and x.shape[i]")


def _shape_args(fe, args, where):
    if len(args) == 1 and isinstance(args[0], (tuple, list, ShapeValue)):
        args = list(args[0].items if isinstance(args[0], ShapeValue) else args[0])
    return [_size_arg(fe, a, where) for a in args]


def _reshape(fe: Frontend, args, kwargs, where):
    x, *rest = args
    sizes = _shape_args(fe, rest or [kwargs.get("shape")], where)
    if sizes.count(-1) > 1:
        raise SourceError("more than one -1 in a reshape", **fe.where(where))
    if sizes == [-1] and x.rank == 1:
        return x
    # -1 becomes a fresh size: the launcher applies the same reshape at run time.
    sizes = [fe.b.sizes.fresh("r") if s == -1 else s for s in sizes]
    return fe.b.reshape(x, tuple(sizes))


def _cast(dtype):
    return lambda fe, args, kwargs, where: fe.b.cast(args[0], dtype)


def _to(fe: Frontend, args, kwargs, where):
    x = args[0]
    rest = [a for a in args[1:] if isinstance(a, DTypeName)] + [v for v in kwargs.values() if isinstance(v, DTypeName)]
    if not rest:
        raise fe.unsupported(where, ".to() without a dtype", "x.to(torch.float16), x.float(), x.half()")
    return fe.b.cast(x, rest[0].name)


def _view_method(name):
    def apply(fe: Frontend, args, kwargs, where):
        x = args[0]
        if not isinstance(x, Node):
            raise fe.unsupported(where, f"{name} of a non-tensor", "tensors")
        rest = [*args[1:], *kwargs.values()]
        if name == "unsqueeze":
            return fe.b.unsqueeze(x, rest[0])
        if name == "squeeze":
            return fe.b.squeeze(x, rest[0] if rest else None)
        if name == "transpose":
            return fe.b.transpose(x, rest[0], rest[1])
        if name == "t":
            return fe.b.transpose(x, 0, 1) if x.rank == 2 else x
        if name == "permute":
            perm = rest[0] if len(rest) == 1 and isinstance(rest[0], tuple) else rest
            return fe.b.permute(x, tuple(perm))
        if name == "expand":
            sizes = _shape_args(fe, rest, where)
            sizes = [x.shape[i - (len(sizes) - x.rank)] if s == -1 else s for i, s in enumerate(sizes)]
            return fe.b.expand(x, tuple(sizes))
        if name == "expand_as":
            return fe.b.expand(x, rest[0].shape)
        if name == "contiguous":
            return x
        if name == "flatten":
            return _reshape(fe, [x, -1], {}, where) if x.rank != 1 else x
        raise AssertionError(name)

    return apply


def _size(fe: Frontend, args, kwargs, where):
    x = args[0]
    if len(args) == 1 and not kwargs:
        return fe.shape_of(x)
    d = fe.b.norm_dim((args[1:] or [kwargs.get("dim")])[0], x.rank)
    s = x.shape[d]
    return s if isinstance(s, int) else fe.b.size((s,))


def _numel(fe: Frontend, args, kwargs, where):
    return fe.b.size(args[0].shape)


def _len(fe: Frontend, args, kwargs, where):
    x = args[0]
    if isinstance(x, Node) and x.rank:
        return x.shape[0] if isinstance(x.shape[0], int) else fe.b.size(x.shape[:1])
    if isinstance(x, (tuple, ShapeValue)):
        return len(x.items if isinstance(x, ShapeValue) else x)
    raise fe.unsupported(where, "len() of this value", "len(tensor) or len(x.shape)")


def _dim(fe: Frontend, args, kwargs, where):
    return args[0].rank


def _number(kind):
    def apply(fe: Frontend, args, kwargs, where):
        (v,) = args
        if isinstance(v, (int, float, bool)) or (isinstance(v, str) and kind is float):
            try:
                return kind(v)
            except ValueError:
                raise fe.unsupported(where, f"{kind.__name__}({v!r})", "a number") from None
        return v  # a scalar parameter or size stays a runtime scalar

    return apply


VIEW_METHODS = ("unsqueeze", "squeeze", "transpose", "t", "permute", "expand", "expand_as", "contiguous", "flatten")
BUILTIN_CALLS = {
    **{f"torch.Tensor.{n}": _view_method(n) for n in VIEW_METHODS},
    **{f"torch.{n}": _view_method(n) for n in ("unsqueeze", "squeeze", "transpose", "t", "permute", "flatten")},
    "torch.Tensor.view": _reshape,
    "torch.Tensor.reshape": _reshape,
    "torch.reshape": _reshape,
    "numpy.reshape": _reshape,
    "numpy.expand_dims": _view_method("unsqueeze"),
    "numpy.transpose": lambda fe, a, k, w: _view_method("permute" if len(a) > 1 else "t")(fe, a, k, w),
    "torch.Tensor.clone": _view_method("contiguous"),
    "torch.Tensor.float": _cast("float32"),
    "torch.Tensor.half": _cast("float16"),
    "torch.Tensor.bfloat16": _cast("bfloat16"),
    "torch.Tensor.double": _cast("float64"),
    "torch.Tensor.bool": _cast("bool"),
    "torch.Tensor.to": _to,
    "torch.Tensor.type": _to,
    "torch.Tensor.astype": _to,
    "torch.Tensor.size": _size,
    "torch.Tensor.numel": _numel,
    "torch.numel": _numel,
    "torch.Tensor.dim": _dim,
    "builtins.len": _len,
    "builtins.float": _number(float),
    "builtins.int": _number(int),
}

