"""Loop bodies the rewrite must refuse: UnsupportedError naming the dependency, located at path:line:col."""

from __future__ import annotations

from textwrap import dedent

import libcst as cst
import pytest

from p2t_core.errors import UnsupportedError

from .test_loops import normalize_loops

H = "import math\nimport torch\n\n\n"

# (id, body, substring the message must contain, text whose first occurrence is the reported location)
REJECT = [
    ("prefix_sum", """
def f(x, out):
    for i in range(len(x)):
        out[i] = out[i - 1] + x[i]
""", "loop-carried dependency: out[i] reads out[i - 1] written by an earlier iteration", "out[i - 1]"),
    ("data_dependent", """
def f(x, idx, out):
    for i in range(len(x)):
        out[i] = x[idx[i]]
""", "data-dependent index `x[idx[i]]`", "x[idx[i]]"),
    ("while", """
def f(x, out):
    i = 0
    while i < len(x):
        out[i] = x[i]
        i += 1
""", "`while` loop", "while"),
    ("break", """
def f(x, out):
    for i in range(len(x)):
        out[i] = x[i]
        if x[i] > 0:
            break
""", "`break` (a loop must run its whole range)", "break"),
    ("break_plain", """
def f(x, out):
    for i in range(len(x)):
        out[i] = x[i]
        break
""", "`break`", "break"),
    ("continue", """
def f(x, out):
    for i in range(len(x)):
        continue
""", "`continue`", "continue"),
    ("loop_over_tensor", """
def f(x, out):
    for v in x:
        out[0] = v
""", "loop over `x`", "x:"),
    ("enumerate", """
def f(x, out):
    for i, v in enumerate(x):
        out[i] = v
""", "loop target `i, v`", "i, v"),
    ("range_start", """
def f(x, out):
    for i in range(1, len(x)):
        out[i] = x[i]
""", "range start other than 0", "range(1"),
    ("range_step", """
def f(x, out):
    for i in range(0, len(x), 2):
        out[i] = x[i]
""", "range step other than 1", "range(0"),
    ("same_element_not_reduction", """
def f(x, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i] = x[i, j]
""", "`out[i]` is written by every iteration of the loop over `j`", "out[i] ="),
    ("scalar_last_write", """
def f(x):
    s = 0.0
    for i in range(len(x)):
        s = x[i]
    return s
""", "`s` is written by every iteration of the loop over `i`", "s = x[i]"),
    ("acc_read_before_finish", """
def f(x, out):
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j]
            out[i, j] = x[i, j] / acc
""", "read of accumulator `acc` inside the loop over `j`", "/ |acc"),
    ("running_sum_rows", """
def f(x, out):
    acc = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            acc += x[i, j]
        out[i] = acc
""", "read of accumulator `acc` inside the loop over `i`", "out[i] = |acc"),
    ("acc_read_before_update", """
def f(x, out):
    acc = 0.0
    for i in range(len(x)):
        out[i] = acc
        acc += x[i]
""", "read of accumulator `acc` inside the loop over `i`", "out[i] = |acc"),
    ("matmul_epilogue_in_k_outer", """
def f(a, b):
    c = torch.zeros(a.shape[0], b.shape[1])
    for k in range(a.shape[1]):
        for i in range(a.shape[0]):
            for j in range(b.shape[1]):
                c[i][j] += a[i][k] * b[k][j]
                c[i][j] = math.tanh(c[i][j])
    return c
""", "read of accumulator `c[i][j]` inside the loop over `k`", "tanh(|c[i][j]"),
    ("index_arith", """
def f(x, out):
    for i in range(len(out)):
        out[i] = x[i + 1] - x[i]
""", "index arithmetic `x[i + 1]`", "x[i + 1]"),
    ("reverse_index", """
def f(x, out):
    n = len(x)
    for i in range(n):
        out[i] = x[n - 1 - i]
""", "index arithmetic", "x[n - 1 - i]"),
    ("constant_index", """
def f(x, out):
    for i in range(len(x)):
        out[i] = x[i] - x[0]
""", "constant index `x[0]`", "x[0]"),
    ("diagonal", """
def f(x, out):
    for i in range(len(out)):
        out[i] = x[i, i]
""", "repeated loop variable in `x[i, i]`", "x[i, i]"),
    ("non_loop_index", """
def f(x, out, k: int):
    for i in range(len(out)):
        out[i] = x[k]
""", "index `k` in `x[k]` is not a loop variable", "x[k]"),
    ("nested_function", """
def f(x, out):
    def g(v):
        return v * 2
    for i in range(len(x)):
        out[i] = g(x[i])
""", "nested function", "def g"),
    ("lambda", """
def f(x, out):
    for i in range(len(x)):
        out[i] = (lambda v: v)(x[i])
""", "nested function", "lambda"),
    ("loop_var_value", """
def f(x, out):
    for i in range(len(x)):
        out[i] = x[i] * i
""", "loop variable `i` used as a value", "* |i"),
    ("last_iteration_value", """
def f(x, out):
    for i in range(len(x)):
        t = x[i] * 2.0
        out[i] = t
    return t
""", "`t` is assigned inside the loop over `i` and read after it", "return |t"),
    ("uninitialised", """
def f(x):
    out = torch.empty(len(x))
    for i in range(len(x)):
        out[i] += x[i]
    return out
""", "read of `out[i]` before any loop writes it", "out[i]"),
    ("uninit_one_branch", """
def f(x):
    out = torch.empty(len(x))
    for i in range(len(x)):
        if x[i] > 0:
            out[i] = x[i]
    return out
""", "written on only one branch of the `if`", "if x[i]"),
    ("one_branch_temp", """
def f(x, out):
    for i in range(len(x)):
        if x[i] > 0:
            t = x[i]
        out[i] = t
""", "`t` is assigned on only one branch", "out[i] = |t"),
    ("loop_in_if", """
def f(x, out, flag: bool):
    if flag:
        for i in range(len(x)):
            out[i] = x[i]
""", "loop or return inside an `if`", "for i"),
    ("for_else", """
def f(x, out):
    for i in range(len(x)):
        out[i] = x[i]
    else:
        pass
""", "`for ... else`", "for i"),
    ("cross_writes", """
def f(x, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j]
            out[j, i] = x[i, j]
""", "`out` written as out[j, i] and as out[i, j]", "out[i, j] ="),
    ("read_other_row", """
def f(x, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] + out[j, i]
""", "loop-carried dependency: out[i, j] reads out[j, i] written by another iteration", "out[j, i]"),
    ("mixed_accumulation", """
def f(x, y):
    acc = 0.0
    for i in range(len(x)):
        acc += x[i]
        acc *= y[i]
    return acc
""", "mixed accumulation into `acc`", "acc *="),
    ("not_a_reduction_update", """
def f(x):
    acc = 0.0
    for i in range(len(x)):
        acc = acc * 0.5 + x[i]
    return acc
""", "read of accumulator `acc`", "acc * 0.5"),
    ("unknown_call", """
def f(x, out):
    for i in range(len(x)):
        out[i] = print(x[i])
""", "call to `print`", "print"),
    ("slice", """
def f(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i, :]
""", "slice in `x[i, :]`", ":]"),
    ("rank_mismatch", """
def f(x, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] + x[i]
""", "`x` indexed with 1 and with 2 subscripts", "+ |x[i]"),
]


@pytest.mark.parametrize("case_id,body,what,at", REJECT, ids=[r[0] for r in REJECT])
def test_rejected(case_id, body, what, at):
    src = H + dedent(body).lstrip()
    with pytest.raises(UnsupportedError) as ei:
        normalize_loops(cst.parse_module(src), "unit.py")
    err = ei.value
    assert what in err.message, err.message
    assert str(err).startswith(f"unit.py:{err.line}:{err.col}: unsupported ")
    assert "; supported: " in str(err)
    # the reported position is where `at` first occurs (after the `def` line)
    lines = src.splitlines(keepends=True)
    start = src.index("\ndef ") + 1
    prefix, _, rest = at.rpartition("|")  # `a|b`: the position of b in the first occurrence of ab
    k = src.index(prefix + rest, start) + len(prefix)
    line = src.count("\n", 0, k) + 1
    col = k - (src.rfind("\n", 0, k) + 1) + 1
    assert (err.line, err.col) == (line, col), (str(err), lines[line - 1])
