"""Hypothesis: mutated loop bodies are either refused with UnsupportedError or rewritten to code that still
computes what the (mutated) loops compute. Square shapes keep most mutations runnable as plain Python."""

from __future__ import annotations

import libcst as cst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2t_core.errors import UnsupportedError

from .corpus import TWINS
from .test_loops import assert_close, call, rewrite


def _square(spec):
    if isinstance(spec, tuple) and spec and spec[0] == "pos":
        return ("pos", tuple(3 for _ in spec[1]))
    if isinstance(spec, tuple) and spec and isinstance(spec[0], int):
        return tuple(3 for _ in spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return 3
    return spec


BASE = [(t[0], t[2], {k: _square(v) for k, v in t[3].items()}) for t in TWINS
        if t[2] in {"add2d", "bias_cols", "scale_rows", "transpose_add", "row_sum", "row_max", "row_normalize",
                    "rmsnorm", "matmul_ijk", "matmul_kji", "matmul_epilogue_inside", "matmul_acc_bias_relu",
                    "softmax_loops", "ifelse2d", "col_sum", "whole_sum", "outer", "matvec", "positive_sum",
                    "update_twice", "leaky_ifelse", "row_min_if", "center_rows", "matmul_inplace_acc"}]
KINDS = ["swap", "replace", "minus1", "aug_to_assign", "range1", "swap_stmts", "drop_stmt"]


class Mutate(cst.CSTTransformer):
    def __init__(self, kind: str, k: int, pick: int, loopvars: list[str]):
        self.kind, self.k, self.pick, self.loopvars, self.seen = kind, k, pick, loopvars, 0

    def _hit(self) -> bool:
        self.seen += 1
        return self.seen - 1 == self.k

    def leave_Subscript(self, orig, node):
        names = [e for e in node.slice if isinstance(e.slice, cst.Index) and isinstance(e.slice.value, cst.Name)
                 and e.slice.value.value in self.loopvars]
        if not names:
            return node
        if self.kind == "swap" and len(node.slice) >= 2 and self._hit():
            return node.with_changes(slice=list(reversed(node.slice)))
        if self.kind in ("replace", "minus1") and self._hit():
            el = names[self.pick % len(names)]
            if self.kind == "replace":
                new = cst.Name(self.loopvars[self.pick % len(self.loopvars)])
            else:
                new = cst.parse_expression(f"{el.slice.value.value} - 1")
            sl = [e.with_changes(slice=cst.Index(new)) if e is el else e for e in node.slice]
            return node.with_changes(slice=sl)
        return node

    def leave_AugAssign(self, orig, node):
        if self.kind == "aug_to_assign" and self._hit():
            return cst.Assign(targets=[cst.AssignTarget(node.target)], value=node.value)
        return node

    def leave_Call(self, orig, node):
        if self.kind == "range1" and isinstance(node.func, cst.Name) and node.func.value == "range" \
                and len(node.args) == 1 and self._hit():
            return node.with_changes(args=[cst.Arg(cst.Integer("1")), node.args[0]])
        return node

    def leave_IndentedBlock(self, orig, node):
        body = list(node.body)
        if self.kind == "swap_stmts" and len(body) >= 2 and self._hit():
            p = self.pick % (len(body) - 1)
            body[p], body[p + 1] = body[p + 1], body[p]
            return node.with_changes(body=body)
        if self.kind == "drop_stmt" and len(body) >= 2 and self._hit():
            del body[self.pick % len(body)]
            return node.with_changes(body=body)
        return node


def mutate(src: str, kind: str, k: int, pick: int) -> str:
    mod = cst.parse_module(src)
    loopvars = sorted({f.target.value for f in _fors(mod)})
    probe = Mutate(kind, -1, pick, loopvars)  # count the sites, then mutate the k-th modulo their number
    mod.visit(probe)
    if not probe.seen:
        return src
    return mod.visit(Mutate(kind, k % probe.seen, pick, loopvars)).code


def _fors(mod):
    import libcst.matchers as m
    return m.findall(mod, m.For(target=m.Name()))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(base=st.sampled_from(BASE), kind=st.sampled_from(KINDS), k=st.integers(0, 8), pick=st.integers(0, 7))
def test_mutated_loops_are_refused_or_equivalent(base, kind, k, pick):
    loop_src, name, shapes = base
    src = mutate(loop_src, kind, k, pick)
    if src == loop_src:
        return
    try:
        new = rewrite(src)
    except UnsupportedError:
        return
    if new == src:  # no loop left (a dropped loop): untouched, and may return uninitialised memory
        return
    try:
        want = call(src, name, shapes)
    except Exception:  # the mutated loops themselves fail (IndexError, NameError, ...): nothing to compare
        return
    assert_close(call(new, name, shapes), want)
