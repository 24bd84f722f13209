"""The compiler engine's differential corpus: distinct translation units, each verified against its own Python.

`CORPUS` is a list of `Case`s: a unit name, a whole module source defining it, optional explicit shapes
(`{"x": (4, 8)}`: they fix the ranks of the parameters for the frontend and add that binding to the verified
shapes), the kernel count the translation must have (None: not checked), and the dtypes to verify.

`KNOWN_BROKEN` maps a case name to the reason it currently fails (see KNOWN_FAILURES.md); test_corpus.py marks
those `xfail(strict=True)`, so a fix shows up as an XPASS failure and the entry must then be removed here.
`TRANSLATE_ONLY` holds numpy-style units whose reference cannot run on torch tensors (numpy reductions take
`axis=`, torch's `sum` does not): they are only translated, not verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from textwrap import dedent, indent

HEADER = "import math\n\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
F32 = ("float32",)
ALL = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    shapes: dict = field(default_factory=dict)
    kernels: int | None = None
    dtypes: tuple[str, ...] = F32
    unit: str = ""

    @property
    def unit_name(self) -> str:
        return self.unit or self.name


CORPUS: list[Case] = []
TRANSLATE_ONLY: list[Case] = []


def fn(name: str, params: str, body: str, shapes: dict | None = None, kernels: int | None = None,
       dtypes: tuple[str, ...] = F32, header: str = HEADER, into: list | None = None) -> None:
    """A function unit `def name(params): body` (body: one expression, or statements ending in a return)."""
    body = dedent(body).strip()
    if "return" not in body:
        body = f"return {body}"
    src = f"{header}def {name}({params}):\n{indent(body, '    ')}\n"
    (CORPUS if into is None else into).append(Case(name, src, dict(shapes or {}), kernels, dtypes))


def module(name: str, source: str, shapes: dict | None = None, kernels: int | None = None,
           dtypes: tuple[str, ...] = F32) -> None:
    CORPUS.append(Case(name, HEADER + dedent(source).strip() + "\n", dict(shapes or {}), kernels, dtypes))


# ------------------------------------------------------------------------------------------ elementwise arithmetic
fn("ew_add", "x, y", "x + y", kernels=1, dtypes=ALL)
fn("ew_sub_mul", "x, y", "(x - y) * x", kernels=1)
fn("ew_div", "x, y", "x / (y.abs() + 1.0)", kernels=1)
fn("ew_scalar_ops", "x", "2.0 * x - 3 / (1 + x * x)", kernels=1, dtypes=ALL)
fn("ew_floordiv", "x", "x // 0.5", kernels=1)
fn("ew_remainder", "x", "x % 0.75", kernels=1)
fn("ew_pow_int", "x", "x ** 2 + x ** 3", kernels=1)
fn("ew_pow_tensor", "x, y", "torch.pow(x.abs() + 0.5, y)", kernels=1)
fn("ew_rpow", "x", "2.0 ** x", kernels=1)
fn("ew_square", "x", "torch.square(x) - x.square() * 0.5", kernels=1)
fn("ew_unary_plus_minus", "x", "-(+x) * -x", kernels=1)
fn("ew_aug_assign", "x, y", """
    z = x * 1.0
    z += y
    z *= 0.5
    z -= x
    z /= 3.0
    return z
""", kernels=1)
fn("ew_float_param", "x, alpha: float", "x * alpha + alpha", kernels=1)
fn("ew_int_param", "x, n: int", "x * n - n", kernels=1)
fn("ew_default_scalar", "x, beta=0.25", "x * beta + 1.0", kernels=1)
fn("ew_math_consts", "x", "x * math.sqrt(2.0) / math.pi + math.e", kernels=1)
fn("ew_two_outputs", "x, y", """
    s = x + y
    return s, s * x
""", kernels=1)
fn("ew_chain10", "x", """
    a = x * 1.5 + 0.25
    b = torch.sin(a) - a * 0.1
    c = torch.exp(-b * b)
    d = c * x + b
    e = torch.abs(d) + 1.0
    f = torch.log(e) * 2.0
    g = torch.sqrt(e) - f
    h = torch.tanh(g) + d
    i = torch.sigmoid(h) * 3.0
    return i - h * 0.5
""", kernels=1)

# ------------------------------------------------------------------------------------------ comparisons, where, clamp
fn("cmp_lt_float", "x, y", "(x < y).float()", kernels=1)
fn("cmp_ge_bool", "x, y", "x >= y", kernels=1)
fn("cmp_eq_ne", "x, y", "(x == y).float() + (x != y).float() * 2.0", kernels=1)
fn("cmp_gt_scalar_mask", "x", "x * (x > 0.5)", kernels=1)
fn("cmp_le_torch", "x, y", "torch.le(x, y)", kernels=1)
fn("logical_and_or", "x, y", "((x > 0) & (y > 0)).float() + ((x > 0) | (y < 0)).float()", kernels=1)
fn("where_tensors", "x, y", "torch.where(x > 0, x, y)", kernels=1, dtypes=ALL)
fn("where_scalar", "x", "torch.where(x > 0, x, 0.0)", kernels=1)
fn("where_both_scalars", "x", "torch.where(x < -0.5, -1.0, 1.0) * x", kernels=1)
fn("clamp_both", "x", "torch.clamp(x, -0.5, 0.5)", kernels=1, dtypes=ALL)
fn("clamp_min_kw", "x", "x.clamp(min=0.0)", kernels=1)
fn("clamp_max_kw", "x", "torch.clamp(x, max=0.25)", kernels=1)
fn("clip_method", "x", "x.clip(-1.0, 1.0) * 2.0", kernels=1)
fn("clamp_min_method", "x", "x.clamp_min(0.1) + x.clamp_max(-0.1)", kernels=1)

# ------------------------------------------------------------------------------------------ casts
fn("cast_half", "x", "x.half()", kernels=1)
fn("cast_float_from_cmp", "x", "(x > 0).float() * x", kernels=1)
fn("cast_to_bf16", "x", "x.to(torch.bfloat16)", kernels=1)
fn("cast_roundtrip", "x", "x.to(torch.float16).float() - x", kernels=1)
fn("cast_float_all", "x", "x.float() * 2.0", kernels=1, dtypes=ALL)
fn("cast_to_float32_kw", "x", "x.to(dtype=torch.float32) + 1.0", kernels=1, dtypes=ALL)

# ------------------------------------------------------------------------------------------ unary math and activations
UNARY = {
    "abs": "torch.abs(x)", "neg": "x.neg()", "exp": "torch.exp(x)", "exp2": "torch.exp2(x)",
    "log": "torch.log(x.abs() + 0.1)", "log_nan": "x.log()", "log2": "torch.log2(x.abs() + 0.1)",
    "log1p": "torch.log1p(x.abs())", "sqrt": "x.abs().sqrt()", "sqrt_nan": "torch.sqrt(x)",
    "rsqrt": "torch.rsqrt(x.abs() + 0.5)", "sin": "torch.sin(x)", "cos": "x.cos()", "tanh": "torch.tanh(x)",
    "tanh_method": "x.tanh()", "sigmoid": "torch.sigmoid(x)", "sigmoid_f": "F.sigmoid(x)", "relu": "torch.relu(x)",
    "relu_f": "F.relu(x)", "relu_method": "x.relu()", "leaky_relu": "F.leaky_relu(x)",
    "leaky_relu_slope": "F.leaky_relu(x, negative_slope=0.2)", "elu": "F.elu(x)", "elu_alpha": "F.elu(x, alpha=0.5)",
    "selu": "F.selu(x)", "selu_torch": "torch.selu(x)", "gelu_erf": "F.gelu(x)",
    "gelu_tanh": "F.gelu(x, approximate='tanh')", "silu": "F.silu(x)", "softplus": "F.softplus(x)",
    "softplus_beta": "F.softplus(x * 10.0, beta=2.0)", "softsign": "F.softsign(x)", "hardtanh": "F.hardtanh(x)",
    "hardtanh_bounds": "F.hardtanh(x, -2.0, 0.5)", "hardsigmoid": "F.hardsigmoid(x * 4.0)",
    "hardswish": "F.hardswish(x * 4.0)", "mish": "F.mish(x)", "pow_half": "x.abs().pow(0.5)",
    "pow_frac": "torch.pow(x, 2.5)", "pow_neg": "torch.pow(x.abs() + 0.5, -1.5)", "reciprocal": "torch.reciprocal(x)",
    "reciprocal_method": "(x + 3.0).reciprocal()", "floor": "torch.floor(x * 3.0)", "ceil": "(x * 3.0).ceil()",
    "sign": "torch.sign(x)", "expm1": "torch.expm1(x)", "log10": "torch.log10(x.abs() + 1.0)",
    "trunc": "torch.trunc(x * 2.5)", "erf": "torch.erf(x)", "relu6": "F.relu6(x * 4.0)",
    "logsigmoid": "F.logsigmoid(x)", "celu": "F.celu(x, alpha=2.0)", "tan": "torch.tan(x * 0.5)",
}
# Each verification starts a worker process (seconds of torch/triton imports), so the unary ops are verified in
# multi-output units of four: one kernel with four stores, each output checked on its own.
_UNARY = list(UNARY.items())
for _k in range(0, len(_UNARY), 4):
    _group = _UNARY[_k:_k + 4]
    fn("un_" + "__".join(n for n, _ in _group), "x", "return " + ", ".join(e for _, e in _group), kernels=1)
fn("un_lowp_a", "x", "return " + ", ".join(UNARY[n] for n in ("exp", "tanh", "sigmoid", "gelu_erf")), kernels=1,
   dtypes=ALL)
fn("un_lowp_b", "x", "return " + ", ".join(UNARY[n] for n in ("silu", "rsqrt", "log1p", "mish")), kernels=1,
   dtypes=ALL)
fn("bin_maximum", "x, y", "torch.maximum(x, y)", kernels=1)
fn("bin_minimum", "x, y", "torch.minimum(x, y) + x.maximum(y)", kernels=1)
fn("bias_gelu", "x, b", "F.gelu(x + b)", {"x": (9, 33), "b": (33,)}, kernels=1, dtypes=ALL)
fn("swiglu", "x, y", "F.silu(x) * y", kernels=1, dtypes=ALL)
fn("geglu_tanh", "x, y", "F.gelu(x, approximate='tanh') * y", kernels=1)

# ------------------------------------------------------------------------------------------ broadcasting and glue
fn("bc_row_bias", "x, b", "x + b", {"x": (7, 13), "b": (13,)}, kernels=1)
fn("bc_col_index_none", "x, v", "x * v[:, None]", {"x": (7, 13), "v": (7,)}, kernels=1)
fn("bc_unsqueeze", "x, v", "x - v.unsqueeze(1)", {"x": (7, 13), "v": (7,)}, kernels=1)
fn("bc_unsqueeze0", "x, v", "x - v.unsqueeze(0)", {"x": (7, 13), "v": (13,)}, kernels=1)
fn("bc_outer", "a, b", "a[:, None] * b[None, :]", {"a": (9,), "b": (11,)}, kernels=1)
fn("bc_3d_row", "x, b", "x * b + 1.0", {"x": (3, 5, 7), "b": (7,)}, kernels=1)
fn("bc_4d", "x, y", "torch.relu(x) * y", {"x": (2, 3, 4, 5), "y": (2, 3, 4, 5)}, kernels=1)
fn("ew_1d", "x, y", "torch.sigmoid(x) * y", {"x": (37,), "y": (37,)}, kernels=1)
fn("ew_3d", "x", "F.silu(x) - x", {"x": (3, 4, 9)}, kernels=1)
fn("glue_transpose_T", "x, y", "x.T + y", {"x": (5, 9), "y": (9, 5)}, kernels=1)
fn("glue_transpose_fn", "x, y", "torch.transpose(x, 0, 1) * y", {"x": (5, 9), "y": (9, 5)}, kernels=1)
fn("glue_t_method", "x", "x.t().exp()", kernels=1)
fn("glue_view_flat", "x", "x.view(-1) * 2.0", kernels=1)
fn("glue_reshape_row", "x, v", "x + v.reshape(1, -1)", {"x": (6, 10), "v": (10,)}, kernels=1)
fn("glue_view_col", "x, v", "x * v.view(-1, 1)", {"x": (6, 10), "v": (6,)}, kernels=1)
fn("glue_flatten_sum", "x", "x.reshape(-1).sum()", kernels=1)

# ------------------------------------------------------------------------------------------ reductions
fn("red_sum_last", "x", "x.sum(-1)", kernels=1, dtypes=ALL)
fn("red_sum_dim0", "x", "x.sum(dim=0)", kernels=1)
fn("red_sum_dim1_keep", "x", "torch.sum(x, 1, keepdim=True)", kernels=1)
fn("red_sum_whole", "x", "x.sum()", kernels=1)
fn("red_sum_1d", "x", "torch.sum(x)", {"x": (100,)}, kernels=1)
fn("red_sum_3d_mid", "x", "x.sum(dim=1)", {"x": (3, 5, 4)}, kernels=1)
fn("red_sum_3d_neg2", "x", "x.sum(-2, keepdim=True)", {"x": (3, 5, 4)}, kernels=1)
fn("red_sum_3d_tuple", "x", "x.sum(dim=(0, 2))", {"x": (3, 5, 4)}, kernels=1)
fn("red_sum_4d_last", "x", "x.sum(-1)", {"x": (2, 3, 4, 5)}, kernels=1)
fn("red_sum_4d_dim1_keep", "x", "x.sum(1, keepdim=True)", {"x": (2, 3, 4, 5)}, kernels=1)
fn("red_mean_last", "x", "x.mean(-1)", kernels=1, dtypes=ALL)
fn("red_mean_dim0", "x", "torch.mean(x, dim=0)", kernels=1)
fn("red_mean_keep", "x", "x.mean(dim=-1, keepdim=True)", kernels=1)
fn("red_mean_whole", "x", "x.mean()", kernels=1)
fn("red_mean_3d_neg2", "x", "x.mean(-2)", {"x": (4, 6, 3)}, kernels=1)
fn("red_mean_4d_whole", "x", "torch.mean(x)", {"x": (2, 3, 4, 5)}, kernels=1)
fn("red_max_whole", "x", "x.max()", kernels=1)
fn("red_max_dim_index0", "x", "torch.max(x, 1)[0]", kernels=1)
fn("red_max_values", "x", "torch.max(x, dim=0).values", kernels=1)
fn("red_max_indices", "x", "x.max(dim=-1).indices", kernels=1)
fn("red_max_unpack", "x", """
    v, i = torch.max(x, -1, keepdim=True)
    return v * 2.0, i
""")
fn("red_max_pair", "x, y", "torch.max(x, y)", kernels=1)
fn("red_min_whole", "x", "torch.min(x)", kernels=1)
fn("red_min_dim_values", "x", "x.min(dim=1).values", kernels=1)
fn("red_min_dim_index1", "x", "torch.min(x, 0)[1]", kernels=1)
fn("red_amax_last", "x", "torch.amax(x, dim=-1)", kernels=1, dtypes=ALL)
fn("red_amax_3d_dim0", "x", "x.amax(0)", {"x": (3, 5, 4)}, kernels=1)
fn("red_amin_keep", "x", "x.amin(dim=0, keepdim=True)", kernels=1)
fn("red_prod_dim", "x", "x.prod(dim=-1)", {"x": (5, 6)}, kernels=1)
fn("red_prod_dim0", "x", "torch.prod(x, 0)", {"x": (4, 9)}, kernels=1)
fn("red_argmax_last", "x", "torch.argmax(x, dim=-1)", kernels=1)
fn("red_argmax_dim0", "x", "x.argmax(0)", kernels=1)
fn("red_argmax_whole", "x", "torch.argmax(x)", kernels=1)
fn("red_argmax_3d", "x", "x.argmax(dim=1)", {"x": (3, 7, 4)}, kernels=1)
fn("red_argmin_dim1", "x", "torch.argmin(x, dim=1)", kernels=1)
fn("red_argmin_keep", "x", "x.argmin(-1, keepdim=True)", kernels=1)
fn("red_var_last", "x", "x.var(-1)", kernels=1)
fn("red_var_biased_dim0", "x", "torch.var(x, 0, unbiased=False)", kernels=1)
fn("red_var_keep", "x", "x.var(dim=-1, keepdim=True)", kernels=1)
fn("red_var_whole", "x", "x.var()", kernels=1)
fn("red_var_correction0", "x", "x.var(1, correction=0)", kernels=1)
fn("red_std_last", "x", "x.std(-1)", kernels=1, dtypes=ALL)
fn("red_std_whole", "x", "torch.std(x)", kernels=1)
fn("red_std_3d", "x", "x.std(dim=1, keepdim=True)", {"x": (3, 7, 4)}, kernels=1)
fn("red_norm_l2_last", "x", "x.norm(dim=-1)", kernels=1)
fn("red_norm_fro_whole", "x", "torch.norm(x)", kernels=1)
fn("red_norm_fro_kw", "x", "torch.norm(x, p='fro')", kernels=1)
fn("red_norm_l1_dim1", "x", "x.norm(p=1, dim=1)", kernels=1)
fn("red_linalg_norm", "x", "torch.linalg.norm(x, dim=-1, keepdim=True)", kernels=1)
fn("red_vector_norm_l1", "x", "torch.linalg.vector_norm(x, ord=1, dim=0)", kernels=1)
fn("red_norm_inf", "x", "x.norm(p=float('inf'), dim=-1)", kernels=1)
fn("red_logsumexp_last", "x", "torch.logsumexp(x, dim=-1)", kernels=1, dtypes=ALL)
fn("red_logsumexp_dim0_keep", "x", "x.logsumexp(0, keepdim=True)", kernels=1)
fn("red_logsumexp_3d", "x", "torch.logsumexp(x, 1)", {"x": (3, 6, 5)}, kernels=1)
fn("red_sum_dtype", "x", "x.sum(-1, dtype=torch.float32)", kernels=1, dtypes=ALL)

# reductions with a fused prologue/epilogue
fn("red_sq_sum_sqrt", "x", "torch.sqrt((x * x).sum(1))", kernels=1)
fn("red_exp_sum_log", "x", "x.exp().sum(-1).log()", kernels=1)
fn("red_epilogue_affine", "x", "x.sum(-1) * 2.0 + 1.0", kernels=1)
fn("red_abs_max", "x", "x.abs().amax(-1)", kernels=1)
fn("rmsnorm_fn", "x, w", "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w", {"x": (9, 130), "w": (130,)},
   kernels=1, dtypes=ALL)
fn("rmsnorm_3d", "x, w", "x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + 1e-5) * w",
   {"x": (2, 5, 40), "w": (40,)}, kernels=1)
fn("rmsnorm_f", "x, w", "F.rms_norm(x, (x.shape[-1],), w, 1e-6)", {"x": (6, 40), "w": (40,)})
fn("l2_normalize", "x", "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)", kernels=1)
fn("l2_normalize_f", "x", "F.normalize(x, dim=-1)", kernels=1)
fn("l2_normalize_dim0", "x", "F.normalize(x, p=2.0, dim=0)", kernels=1)
fn("center_cols", "x", "x - x.mean(dim=0)", kernels=None)
fn("layernorm_fn", "x, w, b", """
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b
""", {"x": (7, 50), "w": (50,), "b": (50,)}, kernels=1)
fn("var_mean_same_rows", "x", "x.var(-1) + x.mean(-1)", kernels=1)
fn("mse_manual", "x, y", "((x - y) ** 2).mean()", kernels=1)
fn("huber_manual", "x, y", """
    d = (x - y).abs()
    return torch.where(d < 1.0, 0.5 * d * d, d - 0.5).mean()
""", kernels=1)
fn("hinge", "x, y", "torch.clamp(1 - x * y, min=0).mean()", kernels=1)
fn("kl_manual", "p, q", "(p.abs() * (torch.log(p.abs() + 1e-6) - torch.log(q.abs() + 1e-6))).sum(-1)", kernels=1)

# ------------------------------------------------------------------------------------------ losses
for _loss in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
    fn(f"loss_{_loss}_none", "x, y", f"F.{_loss}(x, y, reduction='none')", kernels=1)
    fn(f"loss_{_loss}_mean_sum", "x, y", f"F.{_loss}(x, y, reduction='mean'), F.{_loss}(x, y, reduction='sum')")
fn("loss_mse_default", "x, y", "F.mse_loss(x, y)", kernels=1, dtypes=ALL)
fn("loss_smooth_l1_beta", "x, y", "F.smooth_l1_loss(x, y, beta=0.5)", kernels=1)
fn("loss_huber_delta", "x, y", "F.huber_loss(x, y, delta=2.0, reduction='sum')", kernels=1)
fn("loss_bce_none", "x, y", "F.binary_cross_entropy(torch.sigmoid(x), torch.sigmoid(y), reduction='none')", kernels=1)
fn("loss_bce_mean_sum", "x, y", """
    p, t = torch.sigmoid(x), torch.sigmoid(y)
    return F.binary_cross_entropy(p, t), F.binary_cross_entropy(p, t, reduction='sum')
""")
fn("loss_kl_none", "x, y", "F.kl_div(x, y.abs(), reduction='none')", kernels=1)
fn("loss_kl_mean_sum", "x, y", "F.kl_div(x, y.abs(), reduction='mean'), F.kl_div(x, y.abs(), reduction='sum')")
fn("loss_kl_batchmean", "x, y", "F.kl_div(F.log_softmax(x, -1), F.softmax(y, -1), reduction='batchmean')")
fn("loss_kl_log_target", "x, y", "F.kl_div(x, y, reduction='sum', log_target=True)", kernels=1)
fn("loss_kl_negative_target", "x, y", "F.kl_div(x, y, reduction='none')", kernels=1)

# ------------------------------------------------------------------------------------------ matmul
fn("mm_at", "x, w", "x @ w", kernels=1, dtypes=ALL)
fn("mm_torch_mm", "x, w", "torch.mm(x, w)", kernels=1)
fn("mm_matmul_method", "x, w", "x.matmul(w)", kernels=1)
fn("mm_bmm", "x, w", "torch.bmm(x, w)", kernels=1, dtypes=ALL)
fn("mm_batched_3d_2d", "x, w", "torch.matmul(x, w)", {"x": (3, 9, 12), "w": (12, 10)}, kernels=1)
fn("mm_batched_3d_3d", "x, w", "x @ w", {"x": (2, 7, 5), "w": (2, 5, 6)}, kernels=1)
fn("mm_mv", "x, v", "torch.mv(x, v)", kernels=1)
fn("mm_mat_vec_at", "x, v", "x @ v", {"x": (9, 14), "v": (14,)}, kernels=1)
fn("mm_vec_mat_at", "v, w", "v @ w", {"v": (14,), "w": (14, 9)}, kernels=1)
fn("mm_xT_w", "x, w", "x.T @ w", {"x": (13, 7), "w": (13, 9)}, kernels=1)
fn("mm_x_wt", "x, w", "x @ w.t()", {"x": (7, 13), "w": (9, 13)}, kernels=1)
fn("mm_both_T", "x, w", "x.T @ w.T", {"x": (13, 7), "w": (9, 13)}, kernels=1)
fn("mm_transpose_fn", "x, w", "torch.transpose(x, 0, 1) @ w", {"x": (13, 7), "w": (13, 9)}, kernels=1)
fn("mm_odd_row", "x, w", "x @ w", {"x": (1, 7), "w": (7, 129)}, kernels=1)
fn("mm_odd_col", "x, w", "x @ w", {"x": (65, 3), "w": (3, 1)}, kernels=1)
fn("mm_bias", "x, w, b", "x @ w + b", {"x": (17, 24), "w": (24, 19), "b": (19,)}, kernels=1)
fn("mm_bias_relu", "x, w, b", "torch.relu(x @ w + b)", {"x": (17, 24), "w": (24, 19), "b": (19,)}, kernels=1,
   dtypes=ALL)
fn("mm_scale", "x, w, s: float", "(x @ w) * s", kernels=1)
fn("mm_residual", "x, w, r", "x @ w + r", kernels=1)
fn("mm_residual_square", "x, w", "x @ w + x", {"x": (9, 16), "w": (16, 16)}, kernels=1)
fn("mm_gelu", "x, w", "F.gelu(x @ w)", kernels=1)
fn("mm_sigmoid_gate", "x, w, g", "torch.sigmoid(x @ w) * g", kernels=1)
fn("linear_nobias", "x, w", "F.linear(x, w)", {"x": (10, 16), "w": (12, 16)}, kernels=1)
fn("linear_bias", "x, w, b", "F.linear(x, w, b)", {"x": (10, 16), "w": (12, 16), "b": (12,)}, kernels=1, dtypes=ALL)
fn("linear_silu", "x, w, b", "F.silu(F.linear(x, w, b))", {"x": (10, 16), "w": (12, 16), "b": (12,)}, kernels=1)
fn("linear_3d", "x, w", "F.linear(x, w)", {"x": (2, 5, 16), "w": (12, 16)}, kernels=1)
fn("addmm", "b, x, w", "torch.addmm(b, x, w)", {"b": (19,), "x": (17, 24), "w": (24, 19)}, kernels=1)

# ------------------------------------------------------------------------------------------ softmax
fn("sm_last", "x", "torch.softmax(x, dim=-1)", kernels=1, dtypes=ALL)
fn("sm_dim0", "x", "F.softmax(x, dim=0)", kernels=1)
fn("sm_dim1_method", "x", "x.softmax(1)", kernels=1)
fn("sm_1d", "x", "torch.softmax(x, 0)", {"x": (50,)}, kernels=1)
fn("sm_3d_mid", "x", "x.softmax(dim=1)", {"x": (2, 9, 5)}, kernels=1)
fn("sm_3d_first", "x", "torch.softmax(x, 0)", {"x": (4, 3, 5)}, kernels=1)
fn("sm_4d_last", "x", "F.softmax(x, dim=-1)", {"x": (2, 3, 4, 7)}, kernels=1)
fn("sm_scale", "x, scale: float", "F.softmax(x * scale, dim=-1)", kernels=1)
fn("sm_temperature", "x, t: float", "torch.softmax(x / t, -1)", kernels=1)
fn("sm_mask_add", "x, mask", "(x + mask).softmax(-1)", kernels=1)
fn("sm_scale_mask", "x, mask", "torch.softmax(x * 0.125 + mask, dim=-1)", kernels=1, dtypes=ALL)
fn("sm_where_mask", "x, m", "torch.softmax(torch.where(m > 0, x, -1e4), dim=-1)", kernels=1)
fn("sm_long_rows", "x", "torch.softmax(x, -1)", {"x": (2, 9000)}, kernels=1)
fn("logsm_long_rows", "x", "F.log_softmax(x, dim=-1)", {"x": (2, 9000)}, kernels=1)
fn("logsm_last", "x", "F.log_softmax(x, dim=-1)", kernels=1, dtypes=ALL)
fn("logsm_dim0", "x", "torch.log_softmax(x, 0)", kernels=1)
fn("logsm_3d", "x", "x.log_softmax(2)", {"x": (2, 3, 11)}, kernels=1)
fn("sm_dtype_kw", "x", "torch.softmax(x, dim=-1, dtype=torch.float32)", kernels=1, dtypes=ALL)
fn("sm_epilogue", "x, y", "torch.softmax(x, -1) * y", kernels=1)
fn("sm_manual", "x", """
    e = torch.exp(x - x.max(-1, keepdim=True)[0])
    return e / e.sum(-1, keepdim=True)
""", kernels=1)
fn("sm_manual_amax", "x", """
    z = x - torch.amax(x, dim=1, keepdim=True)
    return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))
""")

# ------------------------------------------------------------------------------------------ import styles
fn("alias_torch_t", "x", "t.exp(x) + t.tanh(x)", kernels=1,
   header="import torch as t\n\n\n")
fn("alias_from_import", "x", "exp(x) * sigmoid(x)", kernels=1,
   header="from torch import exp, sigmoid\n\n\n")
fn("alias_functional_fn", "x", "fn.gelu(x) + fn.relu(x)", kernels=1,
   header="import torch.nn.functional as fn\n\n\n")
fn("alias_from_nn_functional", "x", "functional.silu(x).sum(-1)", kernels=1,
   header="from torch.nn import functional\n\n\n")
fn("alias_np_exp", "x", "np.exp(x) * 0.5", kernels=1)
fn("alias_np_maximum", "x, y", "np.maximum(x, y) + np.tanh(x)", kernels=1)
fn("alias_np_sqrt_abs", "x", "np.sqrt(np.abs(x))", kernels=1)
fn("alias_np_clip", "x", "np.clip(x, -0.5, 0.5)", kernels=1)
fn("alias_np_matmul", "x, w", "np.matmul(x, w)", kernels=1)
fn("alias_math_exp_scalar", "x, s: float", "x * math.exp(s)", kernels=1)

# numpy spellings a torch tensor does not accept (axis=, keepdims=): translated, not verified
fn("np_sum_axis", "x", "np.sum(x, axis=1)", into=TRANSLATE_ONLY)
fn("np_mean_keepdims", "x", "np.mean(x, axis=-1, keepdims=True)", into=TRANSLATE_ONLY)
fn("np_max_axis", "x", "np.max(x, axis=0)", into=TRANSLATE_ONLY)
fn("np_where", "x", "np.where(x > 0, x, 0.0)", into=TRANSLATE_ONLY)
fn("np_softmax", "x", "np.exp(x - np.max(x, axis=-1, keepdims=True)) / np.sum("
   "np.exp(x - np.max(x, axis=-1, keepdims=True)), axis=-1, keepdims=True)", into=TRANSLATE_ONLY)

# ------------------------------------------------------------------------------------------ Module classes
module("RMSNormModule", """
class RMSNormModule(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
""", kernels=1, dtypes=ALL)
module("LayerNormModule", """
class LayerNormModule(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias
""", kernels=1)
module("ScaledTanh", """
class ScaledTanh(nn.Module):
    \"\"\"A docstring, and a comment below.\"\"\"

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        self.alpha = alpha  # scale

    def forward(self, x):
        return self.alpha * torch.tanh(x / self.alpha)
""", kernels=1)
module("LinearModule", """
class LinearModule(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features))

    def forward(self, x):
        return F.relu(F.linear(x, self.weight, self.bias))
""", kernels=1)
module("SoftmaxTemp", """
class SoftmaxTemp(nn.Module):
    def __init__(self, temperature=0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, x):
        return torch.softmax(x / self.temperature, dim=-1)
""", kernels=1)
module("GeluModule", """
class GeluModule(nn.Module):
    def forward(self, x):
        return F.gelu(x) * 1.702
""", kernels=1)
module("ConstAttr", """
class ConstAttr(nn.Module):
    def __init__(self):
        super().__init__()
        self.eps = 1e-3
        self.scale = 4

    def forward(self, x, y):
        return (x * self.scale) / (y.abs() + self.eps)
""", kernels=1)

# ------------------------------------------------------------------------------------------ loop-style bodies
module("loop_rows_scale", """
def loop_rows_scale(x, alpha: float):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i] * alpha + 1.0
    return out
""", kernels=1)
module("loop_row_sum", """
def loop_row_sum(x):
    out = torch.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j]
        out[i] = acc
    return out
""", kernels=1)


# ------------------------------------------------------------------------------------------ known failures
# name -> reason; test_corpus.py marks these xfail(strict=True). See KNOWN_FAILURES.md for the messages.
KNOWN_BROKEN: dict[str, str] = {
}

NAMES = [c.name for c in CORPUS]
BY_NAME = {c.name: c for c in CORPUS + TRANSLATE_ONLY}
