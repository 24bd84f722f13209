"""softmax and log_softmax over any dim, fused with an elementwise prologue (scale, additive mask) and
epilogue; rows of any length, in registers when they fit and with an online max/sum when they do not."""

from __future__ import annotations

import torch

from p2t_core.codegen.rows import RowLowering
from p2t_core.hookspecs import hookimpl
from p2t_core.ops import OpDef
from p2t_core.validate import function_case


def _softmax(log: bool):
    def expand(b, x, dim=None, dtype=None, _stacklevel=3):
        if dim is None:
            raise b.unsupported("softmax without dim", "softmax(x, dim=...)")
        x = b.cast(x, dtype.name) if dtype is not None else x
        return b.softmax(x, dim, log=log)

    return expand


OPS = [
    OpDef("softmax", "composite", ("x", "dim", "dtype", "_stacklevel"),
          ("torch.softmax", "torch.Tensor.softmax", "torch.nn.functional.softmax", "torch.special.softmax"),
          defaults={"dim": None, "dtype": None, "_stacklevel": 3}, expand=_softmax(False), reference=torch.softmax),
    OpDef("log_softmax", "composite", ("x", "dim", "dtype", "_stacklevel"),
          ("torch.log_softmax", "torch.Tensor.log_softmax", "torch.nn.functional.log_softmax",
           "torch.special.log_softmax"),
          defaults={"dim": None, "dtype": None, "_stacklevel": 3}, expand=_softmax(True), reference=torch.log_softmax),
]


@hookimpl
def p2t_register_ops(registry):
    for op in OPS:
        registry.add(op)


@hookimpl
def p2t_lower_group(group, ctx):
    if group.kind == "softmax":
        return RowLowering(group, ctx, online_softmax=True).lower()
    return None


@hookimpl
def p2t_validation_cases():
    return SOFTMAX_CASES




SOFTMAX_CASES = [
    function_case("row_softmax", "    return torch.softmax(x, dim=-1)"),
    function_case("scaled_softmax", "    return F.softmax(x * scale, dim=-1)", "x, scale: float = 0.125"),
    function_case("masked_softmax", "    return (x + mask).softmax(-1)", "x, mask"),
    function_case("col_log_softmax", "    return F.log_softmax(x, dim=0)"),
    function_case("long_rows", "    return torch.softmax(x, -1)", shapes=[{"x": (3, 9000)}]),
    function_case("softmax_3d_mid", "    return x.softmax(1) * 2.0", shapes=[{"x": (2, 37, 5)}]),
    function_case("softmax_epilogue", "    p = torch.softmax(x, -1)\n    return p * y", "x, y"),
]


@hookimpl
def p2t_example_units(rng, count):
    """Example units for the data pipeline (built-in generators): softmax / log_softmax with scales and masks."""
    from p2t_core.data.generators import generate_units

    return generate_units(rng, max(1, count // 2), ["softmax"])
