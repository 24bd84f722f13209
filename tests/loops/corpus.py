"""Loop-style units and their hand-written tensor-style twins.

`TWINS = [(loop_src, tensor_src, unit_name, shapes), ...]`: both sources are whole modules defining `unit_name`
(a function, or a `torch.nn.Module` subclass). `shapes` maps each argument to how the tests make it:
a tuple is a shape of `torch.randn`, `("pos", shape)` a shape of positive values, an int/float is passed as is,
and `"__init__"` holds a Module's constructor arguments. The op-graph equality test of the integrated frontend
can iterate over this list; tests/loops/test_loops.py checks them numerically.
"""

from textwrap import dedent

HEADER = "import math\n\nimport numpy as np\nimport torch\n\n\n"
TWINS: list[tuple[str, str, str, dict]] = []


def unit(name: str, loop: str, twin: str, **shapes) -> None:
    TWINS.append((HEADER + dedent(loop).strip() + "\n", HEADER + dedent(twin).strip() + "\n", name, shapes))


V, W, M = (5,), (3, 5), (3, 5)

# ---------------------------------------------------------------- 1-D elementwise
unit("add1d", """
def add1d(a, b, out):
    for i in range(a.shape[0]):
        out[i] = a[i] + b[i]
""", """
def add1d(a, b, out):
    out.copy_(a + b)
""", a=V, b=V, out=V)

unit("axpy", """
def axpy(alpha: float, x, y):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = alpha * x[i] + y[i]
    return out
""", """
def axpy(alpha: float, x, y):
    return alpha * x + y
""", alpha=0.7, x=V, y=V)

unit("exp1d", """
def exp1d(x, n: int):
    out = torch.zeros(n)
    for i in range(n):
        out[i] = math.exp(x[i])
    return out
""", """
def exp1d(x, n: int):
    return torch.exp(x)
""", x=V, n=5)

unit("sqrt1d", """
def sqrt1d(x, out):
    for i in range(x.size(0)):
        out[i] = math.sqrt(x[i])
    return out
""", """
def sqrt1d(x, out):
    out.copy_(torch.sqrt(x))
    return out
""", x=("pos", V), out=V)

unit("tanh1d", """
def tanh1d(x):
    y = torch.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = math.tanh(x[i]) * 2.0
    return y
""", """
def tanh1d(x):
    return torch.tanh(x) * 2.0
""", x=V)

unit("log1d", """
def log1d(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = math.log(x[i]) + math.log1p(x[i])
    return out
""", """
def log1d(x):
    return torch.log(x) + torch.log1p(x)
""", x=("pos", V))

unit("gelu_erf", """
def gelu_erf(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = 0.5 * x[i] * (1.0 + math.erf(x[i] / math.sqrt(2.0)))
    return out
""", """
def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
""", x=V)

unit("absdiff", """
def absdiff(a, b):
    out = torch.empty_like(a)
    for i in range(len(a)):
        out[i] = math.fabs(a[i] - b[i]) + abs(b[i])
    return out
""", """
def absdiff(a, b):
    return torch.abs(a - b) + torch.abs(b)
""", a=V, b=V)

unit("pow1d", """
def pow1d(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = math.pow(x[i], 3) + x[i] ** 2
    return out
""", """
def pow1d(x):
    return x ** 3 + x ** 2
""", x=V)

unit("maxmin1d", """
def maxmin1d(a, b):
    out = torch.empty_like(a)
    for i in range(len(a)):
        out[i] = max(a[i], b[i]) - min(a[i], b[i])
    return out
""", """
def maxmin1d(a, b):
    return torch.maximum(a, b) - torch.minimum(a, b)
""", a=V, b=V)

unit("clamp1d", """
def clamp1d(x, lo: float, hi: float):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = min(max(x[i], lo), hi)
    return out
""", """
def clamp1d(x, lo: float, hi: float):
    return torch.clamp(torch.clamp(x, min=lo), max=hi)
""", x=V, lo=-0.5, hi=0.5)

unit("relu_ifexp", """
def relu_ifexp(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = x[i] if x[i] > 0 else 0.0
    return out
""", """
def relu_ifexp(x):
    return torch.where(x > 0, x, 0.0)
""", x=V)

unit("leaky_ifelse", """
def leaky_ifelse(x, out, slope: float = 0.1):
    for i in range(len(x)):
        if x[i] >= 0:
            out[i] = x[i]
        else:
            out[i] = slope * x[i]
""", """
def leaky_ifelse(x, out, slope: float = 0.1):
    out.copy_(torch.where(x >= 0, x, slope * x))
""", x=V, out=V)

unit("sigmoid1d", """
def sigmoid1d(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = 1.0 / (1.0 + math.exp(-x[i]))
    return out
""", """
def sigmoid1d(x):
    return 1.0 / (1.0 + torch.exp(-x))
""", x=V)

unit("silu1d", """
def silu1d(x, out):
    for i in range(len(x)):
        t = math.exp(-x[i])
        out[i] = x[i] / (1.0 + t)
    return out
""", """
def silu1d(x, out):
    out.copy_(x / (1.0 + torch.exp(-x)))
    return out
""", x=V, out=V)

unit("np_zeros_like", """
def np_zeros_like(x, y):
    out = np.zeros_like(x)
    for i in range(len(x)):
        out[i] = x[i] * y[i] - 1.0
    return out
""", """
def np_zeros_like(x, y):
    return x * y - 1.0
""", x=V, y=V)

unit("elif_chain", """
def elif_chain(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        if x[i] > 0.5:
            out[i] = 1.0
        elif x[i] < -0.5:
            out[i] = -1.0
        else:
            out[i] = x[i] * 2.0
    return out
""", """
def elif_chain(x):
    return torch.where(x > 0.5, 1.0, torch.where(x < -0.5, -1.0, x * 2.0))
""", x=V)

unit("scalar_math", """
def scalar_math(x, d: int):
    scale = 1.0 / math.sqrt(d)
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = x[i] * scale + math.cos(math.pi * d)
    return out
""", """
def scalar_math(x, d: int):
    scale = 1.0 / math.sqrt(d)
    return x * scale + math.cos(math.pi * d)
""", x=V, d=4)

unit("update_twice", """
def update_twice(x, out):
    for i in range(len(x)):
        out[i] = x[i] + 1.0
        out[i] = out[i] * out[i]
        out[i] += x[i]
""", """
def update_twice(x, out):
    out.copy_((x + 1.0) * (x + 1.0) + x)
""", x=V, out=V)

unit("clone_clip", """
def clone_clip(x):
    y = x.clone()
    for i in range(len(x)):
        if y[i] < 0:
            y[i] = 0.0
    return y
""", """
def clone_clip(x):
    return torch.where(x < 0, 0.0, x)
""", x=V)

unit("two_outputs", """
def two_outputs(x):
    a = torch.empty_like(x)
    b = torch.empty_like(x)
    for i in range(len(x)):
        a[i] = x[i] * 2.0
        b[i] = a[i] + 1.0
    return a, b
""", """
def two_outputs(x):
    return x * 2.0, x * 2.0 + 1.0
""", x=V)

unit("chained_cmp", """
def chained_cmp(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = x[i] if -0.5 < x[i] < 0.5 or x[i] > 1.0 else 0.0
    return out
""", """
def chained_cmp(x):
    return torch.where((-0.5 < x) & (x < 0.5) | (x > 1.0), x, 0.0)
""", x=V)

# ---------------------------------------------------------------- 2-D elementwise
unit("add2d", """
def add2d(x, y, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] + y[i, j]
""", """
def add2d(x, y, out):
    out.copy_(x + y)
""", x=M, y=M, out=M)

unit("chained_sub2d", """
def chained_sub2d(x, y):
    n, m = x.shape
    out = torch.empty(n, m)
    for i in range(n):
        for j in range(m):
            out[i][j] = x[i][j] * y[i][j] - math.exp(y[i][j])
    return out
""", """
def chained_sub2d(x, y):
    return x * y - torch.exp(y)
""", x=M, y=M)

unit("bias_cols", """
def bias_cols(x, b):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] + b[j]
    return out
""", """
def bias_cols(x, b):
    return x + b
""", x=M, b=(5,))

unit("scale_rows", """
def scale_rows(x, r):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] * r[i]
    return out
""", """
def scale_rows(x, r):
    return x * r[:, None]
""", x=M, r=(3,))

unit("outer", """
def outer(a, b):
    out = torch.empty(len(a), len(b))
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = a[i] * b[j]
    return out
""", """
def outer(a, b):
    return a[:, None] * b
""", a=(3,), b=(5,))

unit("transpose", """
def transpose(x, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = x[j, i]
    return out
""", """
def transpose(x, out):
    out.copy_(x.T)
    return out
""", x=(5, 3), out=M)

unit("transpose_add", """
def transpose_add(x, y):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] + 2.0 * y[j, i]
    return out
""", """
def transpose_add(x, y):
    return x + 2.0 * y.T
""", x=M, y=(5, 3))

unit("cols_outer_loop", """
def cols_outer_loop(x, b, out):
    for j in range(x.shape[1]):
        for i in range(x.shape[0]):
            out[i, j] = math.tanh(x[i, j]) * b[j]
""", """
def cols_outer_loop(x, b, out):
    out.copy_(torch.tanh(x) * b)
""", x=M, b=(5,), out=M)

unit("ifelse2d", """
def ifelse2d(x, y, t: float):
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if x[i, j] > t:
                v = x[i, j] - y[i, j]
            else:
                v = y[i, j] * 0.5
            out[i, j] = v * v
    return out
""", """
def ifelse2d(x, y, t: float):
    v = torch.where(x > t, x - y, y * 0.5)
    return v * v
""", x=M, y=M, t=0.1)

unit("one_branch_zeros", """
def one_branch_zeros(x):
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if x[i, j] > 0:
                out[i, j] = math.sqrt(x[i, j])
    return out
""", """
def one_branch_zeros(x):
    return torch.where(x > 0, torch.sqrt(torch.abs(x)), 0.0)
""", x=M)

unit("broadcast_const", """
def broadcast_const(b, n: int):
    out = torch.empty(n, b.shape[0])
    for i in range(n):
        for j in range(b.shape[0]):
            out[i, j] = b[j] * 3.0
    return out
""", """
def broadcast_const(b, n: int):
    return (b * 3.0).expand(n, b.shape[0])
""", b=(5,), n=3)

unit("full_scalar", """
def full_scalar(n: int, v: float):
    out = torch.empty(n)
    for i in range(n):
        out[i] = v * 2.0
    return out
""", """
def full_scalar(n: int, v: float):
    return torch.full((n,), v * 2.0)
""", n=4, v=1.5)

# ---------------------------------------------------------------- reductions
unit("row_sum", """
def row_sum(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j]
        out[i] = acc
    return out
""", """
def row_sum(x):
    return x.sum(-1)
""", x=M)

unit("row_prod", """
def row_prod(x, out):
    for i in range(x.shape[0]):
        p = 1.0
        for j in range(x.shape[1]):
            p *= x[i, j]
        out[i] = p
""", """
def row_prod(x, out):
    out.copy_(x.prod(-1))
""", x=M, out=(3,))

unit("row_max", """
def row_max(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        mx = -math.inf
        for j in range(x.shape[1]):
            mx = max(mx, x[i, j])
        out[i] = mx
    return out
""", """
def row_max(x):
    return x.amax(-1)
""", x=M)

unit("row_min_if", """
def row_min_if(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        mn = float('inf')
        for j in range(x.shape[1]):
            if x[i, j] < mn:
                mn = x[i, j]
        out[i] = mn
    return out
""", """
def row_min_if(x):
    return x.amin(-1)
""", x=M)

unit("row_mean", """
def row_mean(x):
    n, m = x.shape
    out = torch.empty(n)
    for i in range(n):
        s = 0.0
        for j in range(m):
            s += x[i, j]
        out[i] = s / m
    return out
""", """
def row_mean(x):
    return x.mean(-1)
""", x=M)

unit("row_rms", """
def row_rms(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j] * x[i, j]
        out[i] = math.sqrt(acc / x.shape[1])
    return out
""", """
def row_rms(x):
    return torch.sqrt((x * x).sum(-1) / x.shape[1])
""", x=M)

unit("row_l2", """
def row_l2(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j] ** 2
        out[i] = math.sqrt(acc)
    return out
""", """
def row_l2(x):
    return torch.linalg.vector_norm(x, dim=-1)
""", x=M)

unit("col_sum", """
def col_sum(x):
    out = torch.zeros(x.shape[1])
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[j] += x[i, j]
    return out
""", """
def col_sum(x):
    return x.sum(0)
""", x=M)

unit("whole_sum", """
def whole_sum(x):
    acc = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            acc += x[i, j]
    return acc
""", """
def whole_sum(x):
    return x.sum()
""", x=M)

unit("whole_max", """
def whole_max(x):
    best = -math.inf
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            best = max(best, x[i, j])
    return best
""", """
def whole_max(x):
    return x.amax()
""", x=M)

unit("whole_min", """
def whole_min(x):
    best = math.inf
    for i in range(len(x)):
        best = min(x[i], best)
    return best
""", """
def whole_min(x):
    return x.amin()
""", x=V)

unit("l2_norm", """
def l2_norm(x):
    acc = 0.0
    for i in range(len(x)):
        acc += x[i] * x[i]
    return math.sqrt(acc)
""", """
def l2_norm(x):
    return torch.sqrt((x * x).sum())
""", x=V)

unit("whole_mean", """
def whole_mean(x):
    n, m = x.shape
    s = 0.0
    for i in range(n):
        for j in range(m):
            s += x[i, j]
    return s / (n * m)
""", """
def whole_mean(x):
    return x.mean()
""", x=M)

unit("sum_init_one", """
def sum_init_one(x):
    acc = 1.0
    for i in range(len(x)):
        acc += x[i]
    return acc
""", """
def sum_init_one(x):
    return 1.0 + x.sum()
""", x=V)

unit("whole_prod", """
def whole_prod(x):
    acc = 2.0
    for i in range(len(x)):
        acc *= x[i]
    return acc
""", """
def whole_prod(x):
    return 2.0 * x.prod()
""", x=V)

unit("dot", """
def dot(a, b):
    acc = 0.0
    for i in range(len(a)):
        acc += a[i] * b[i]
    return acc
""", """
def dot(a, b):
    return a @ b
""", a=V, b=V)

unit("matvec", """
def matvec(A, v):
    y = torch.empty(A.shape[0])
    for i in range(A.shape[0]):
        acc = 0.0
        for k in range(A.shape[1]):
            acc += A[i, k] * v[k]
        y[i] = acc
    return y
""", """
def matvec(A, v):
    return A @ v
""", A=M, v=(5,))

unit("vecmat", """
def vecmat(v, A):
    y = torch.zeros(A.shape[1])
    for k in range(A.shape[0]):
        for j in range(A.shape[1]):
            y[j] += v[k] * A[k, j]
    return y
""", """
def vecmat(v, A):
    return v @ A
""", v=(3,), A=M)

unit("row_normalize", """
def row_normalize(x, out):
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j]
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] / acc
    return out
""", """
def row_normalize(x, out):
    out.copy_(x / x.sum(-1, keepdim=True))
    return out
""", x=("pos", M), out=M)

unit("rmsnorm", """
def rmsnorm(x, w, eps: float = 1e-6):
    n, d = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        ss = 0.0
        for j in range(d):
            ss += x[i, j] * x[i, j]
        r = 1.0 / math.sqrt(ss / d + eps)
        for j in range(d):
            out[i, j] = x[i, j] * r * w[j]
    return out
""", """
def rmsnorm(x, w, eps: float = 1e-6):
    d = x.shape[1]
    return x * (1.0 / torch.sqrt((x * x).sum(-1, keepdim=True) / d + eps)) * w
""", x=M, w=(5,))

unit("center_rows", """
def center_rows(x):
    n, d = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        mu = 0.0
        for j in range(d):
            mu += x[i, j]
        mu = mu / d
        for j in range(d):
            out[i, j] = x[i, j] - mu
    return out
""", """
def center_rows(x):
    return x - x.mean(-1, keepdim=True)
""", x=M)

unit("positive_sum", """
def positive_sum(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            if x[i, j] > 0:
                acc += x[i, j]
        out[i] = acc
    return out
""", """
def positive_sum(x):
    return torch.relu(x).sum(-1)
""", x=M)

unit("count_rows", """
def count_rows(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        c = 0.0
        for j in range(x.shape[1]):
            c += 1.0
        out[i] = c
    return out
""", """
def count_rows(x):
    return torch.full((x.shape[0],), float(x.shape[1]))
""", x=M)

unit("sum_of_two", """
def sum_of_two(x, y):
    acc = 0.0
    for i in range(len(x)):
        acc += x[i]
        acc -= 0.5 * y[i]
    return acc
""", """
def sum_of_two(x, y):
    return (x - 0.5 * y).sum()
""", x=V, y=V)

# ---------------------------------------------------------------- matmul
_ORDERS = ["ijk", "ikj", "jik", "jki", "kij", "kji"]
_RANGE = {"i": "range(n)", "j": "range(m)", "k": "range(kk)"}
for _o in _ORDERS:
    _body = "".join("    " * (d + 1) + f"for {v} in {_RANGE[v]}:\n" for d, v in enumerate(_o))
    _body += "    " * 4 + "c[i][j] += a[i][k] * b[k][j]\n"
    unit(f"matmul_{_o}", f"""
def matmul_{_o}(a, b):
    n, kk = a.shape
    m = b.shape[1]
    c = torch.zeros(n, m)
{_body}    return c
""", f"""
def matmul_{_o}(a, b):
    return a @ b
""", a=(3, 4), b=(4, 5))

unit("matmul_acc_bias_relu", """
def matmul_acc_bias_relu(a, b, bias):
    n, kk = a.shape
    m = b.shape[1]
    c = torch.empty(n, m)
    for i in range(n):
        for j in range(m):
            acc = 0.0
            for k in range(kk):
                acc += a[i, k] * b[k, j]
            c[i, j] = max(acc + bias[j], 0.0)
    return c
""", """
def matmul_acc_bias_relu(a, b, bias):
    return torch.relu(a @ b + bias)
""", a=(3, 4), b=(4, 5), bias=(5,))

unit("matmul_epilogue_loop", """
def matmul_epilogue_loop(a, b, bias):
    n, kk = a.shape
    m = b.shape[1]
    c = torch.zeros(n, m)
    for k in range(kk):
        for i in range(n):
            for j in range(m):
                c[i][j] += a[i][k] * b[k][j]
    for i in range(n):
        for j in range(m):
            c[i][j] = max(c[i][j] + bias[j], 0.0)
    return c
""", """
def matmul_epilogue_loop(a, b, bias):
    return torch.relu(a @ b + bias)
""", a=(3, 4), b=(4, 5), bias=(5,))

unit("matmul_epilogue_inside", """
def matmul_epilogue_inside(a, b, bias):
    n, kk = a.shape
    m = b.shape[1]
    c = torch.zeros(n, m)
    for i in range(n):
        for j in range(m):
            for k in range(kk):
                c[i][j] += a[i][k] * b[k][j]
            c[i][j] = max(c[i][j] + bias[j], 0.0)
    return c
""", """
def matmul_epilogue_inside(a, b, bias):
    return torch.relu(a @ b + bias)
""", a=(3, 4), b=(4, 5), bias=(5,))

unit("matmul_scale", """
def matmul_scale(a, b, alpha: float):
    c = torch.empty(a.shape[0], b.shape[1])
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = 0.0
            for k in range(a.shape[1]):
                acc += a[i, k] * b[k, j]
            c[i, j] = alpha * acc
    return c
""", """
def matmul_scale(a, b, alpha: float):
    return alpha * (a @ b)
""", a=(3, 4), b=(4, 5), alpha=0.5)

unit("matmul_scaled_inside", """
def matmul_scaled_inside(a, b, alpha: float):
    c = torch.zeros(a.shape[0], b.shape[1])
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            for k in range(a.shape[1]):
                c[i, j] += alpha * a[i, k] * b[k, j]
    return c
""", """
def matmul_scaled_inside(a, b, alpha: float):
    return alpha * (a @ b)
""", a=(3, 4), b=(4, 5), alpha=0.5)

unit("matmul_at", """
def matmul_at(a, b):
    c = torch.zeros(a.shape[1], b.shape[1])
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            for k in range(a.shape[0]):
                c[i][j] += a[k][i] * b[k][j]
    return c
""", """
def matmul_at(a, b):
    return a.T @ b
""", a=(4, 3), b=(4, 5))

unit("matmul_bt", """
def matmul_bt(a, b):
    c = torch.zeros(a.shape[0], b.shape[0])
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            for k in range(a.shape[1]):
                c[i][j] += a[i][k] * b[j][k]
    return c
""", """
def matmul_bt(a, b):
    return a @ b.T
""", a=(3, 4), b=(5, 4))

unit("matmul_inplace_acc", """
def matmul_inplace_acc(a, b, c):
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            for j in range(b.shape[1]):
                c[i, j] += a[i, k] * b[k, j]
    return c
""", """
def matmul_inplace_acc(a, b, c):
    c.copy_(c + a @ b)
    return c
""", a=(3, 4), b=(4, 5), c=(3, 5))

unit("matmul_bias_init", """
def matmul_bias_init(a, b, bias):
    c = torch.empty(a.shape[0], b.shape[1])
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = float(bias[j])
            for k in range(a.shape[1]):
                acc += a[i, k] * b[k, j]
            c[i, j] = math.tanh(acc)
    return c
""", """
def matmul_bias_init(a, b, bias):
    return torch.tanh(bias + a @ b)
""", a=(3, 4), b=(4, 5), bias=(5,))

# ---------------------------------------------------------------- softmax
unit("softmax_loops", """
def softmax_loops(x):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        mx = -math.inf
        for j in range(x.shape[1]):
            mx = max(mx, x[i, j])
        s = 0.0
        for j in range(x.shape[1]):
            s += math.exp(x[i, j] - mx)
        for j in range(x.shape[1]):
            out[i, j] = math.exp(x[i, j] - mx) / s
    return out
""", """
def softmax_loops(x):
    m = x.amax(-1, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(-1, keepdim=True)
""", x=M)

unit("softmax_inplace_if", """
def softmax_inplace_if(x, out):
    n, d = x.shape
    for i in range(n):
        mx = -1e30
        for j in range(d):
            if x[i, j] > mx:
                mx = x[i, j]
        for j in range(d):
            out[i, j] = math.exp(x[i, j] - mx)
        s = 0.0
        for j in range(d):
            s += out[i, j]
        for j in range(d):
            out[i, j] = out[i, j] / s
""", """
def softmax_inplace_if(x, out):
    out.copy_(torch.softmax(x, dim=-1))
""", x=M, out=M)

unit("log_softmax_loops", """
def log_softmax_loops(x):
    n, d = x.shape
    out = torch.empty(n, d)
    for i in range(n):
        mx = float('-inf')
        for j in range(d):
            mx = max(mx, x[i, j])
        s = 0.0
        for j in range(d):
            s += math.exp(x[i, j] - mx)
        lse = mx + math.log(s)
        for j in range(d):
            out[i, j] = x[i, j] - lse
    return out
""", """
def log_softmax_loops(x):
    return torch.log_softmax(x, dim=-1)
""", x=M)

# ---------------------------------------------------------------- modules
unit("ScaleShift", """
class ScaleShift(torch.nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def forward(self, x):
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = self.alpha * x[i, j] + self.beta
        return out
""", """
class ScaleShift(torch.nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def forward(self, x):
        return self.alpha * x + self.beta
""", x=M, __init__=(0.5, -1.0))

unit("LoopRMSNorm", """
from torch import nn


class LoopRMSNorm(nn.Module):
    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x, w):
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            acc = 0.0
            for j in range(x.shape[1]):
                acc += x[i, j] * x[i, j]
            inv = 1.0 / math.sqrt(acc / x.shape[1] + self.eps)
            for j in range(x.shape[1]):
                out[i, j] = x[i, j] * inv * w[j]
        return out
""", """
from torch import nn


class LoopRMSNorm(nn.Module):
    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w
""", x=M, w=(5,), __init__=())

unit("alias_import", """
def alias_import(x):
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = exp(x[i]) - sqrt(abs(x[i]))
    return out
""".replace("def alias_import", "from math import exp, sqrt\n\n\ndef alias_import"), """
def alias_import(x):
    return torch.exp(x) - torch.sqrt(torch.abs(x))
""", x=V)
