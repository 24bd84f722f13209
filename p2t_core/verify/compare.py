"""Output comparison against the float64 truth, with torch eager's own error in the tested dtype as a yardstick."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from p2t_core.verify.cases import EAGER_FACTOR


@dataclass
class Verdict:
    ok: bool
    message: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    tolerance: float | None = None


def _classes(x: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 +inf, 2 -inf, 3 NaN."""
    c = torch.zeros(x.shape, dtype=torch.int8)
    c[torch.isposinf(x)] = 1
    c[torch.isneginf(x)] = 2
    c[torch.isnan(x)] = 3
    return c


def _where(mask: torch.Tensor) -> str:
    idx = mask.nonzero()
    if idx.numel() == 0:
        return ""
    first = tuple(int(i) for i in idx[0])
    return f"{int(mask.sum())} of {mask.numel()} elements, first at {first}"


def compare_output(name: str, cand: torch.Tensor, truth: torch.Tensor, eager: torch.Tensor | None,
                   rtol: float) -> Verdict:
    """Compare one output. `truth` is the reference in float64 (or its exact int/bool result), `eager` the
    reference run in the tested dtype (None when torch could not run it there)."""
    cand = cand.detach().cpu()
    want_dtype = eager.dtype if eager is not None else (cand.dtype if truth.dtype == torch.float64 else truth.dtype)
    want_shape = tuple(truth.shape)
    if tuple(cand.shape) != want_shape:
        return Verdict(False, f"{name}: wrong shape {tuple(cand.shape)}, expected {want_shape}")
    if cand.dtype != want_dtype:
        return Verdict(False, f"{name}: wrong dtype {str(cand.dtype).removeprefix('torch.')}, "
                              f"expected {str(want_dtype).removeprefix('torch.')}")
    if cand.numel() == 0:
        return Verdict(True, max_abs=0.0, max_rel=0.0, tolerance=rtol)
    if not (cand.dtype.is_floating_point or cand.dtype.is_complex):
        exact = truth.to(cand.dtype)
        bad = cand != exact
        if eager is not None:
            bad &= cand != eager
        if bad.any():
            return Verdict(False, f"{name}: wrong values at {_where(bad)}", tolerance=0.0)
        return Verdict(True, max_abs=0.0, max_rel=0.0, tolerance=0.0)

    c = cand.double()
    t = truth.double()
    tc = truth.to(cand.dtype).double()  # the truth rounded to the output dtype: overflow becomes inf
    e = eager.double() if eager is not None else None
    cc, tcc = _classes(c), _classes(tc)
    ok_special = cc == tcc
    if e is not None:
        ok_special |= cc == _classes(e)
    if not ok_special.all():
        bad = ~ok_special
        if (bad & (cc == 3)).any():
            what = "NaN where the reference has none"
            bad &= cc == 3
        elif (bad & (tcc == 3)).any():
            what = "a number where the reference has NaN"
        else:
            what = "infinity mismatch"
        return Verdict(False, f"{name}: {what} at {_where(bad)}")

    fin = (cc == 0) & (tcc == 0)
    if not fin.any():
        return Verdict(True, max_abs=0.0, max_rel=0.0, tolerance=rtol)
    cf, tf = c[fin], t[fin]
    tiny = torch.finfo(cand.dtype).tiny
    rms = float(tf.square().mean().sqrt())
    atol = rtol * rms + tiny
    allowed = atol + rtol * tf.abs()
    err = (cf - tf).abs()
    ratio = float((err / allowed).max())
    tnorm = max(float(tf.norm()), atol)
    norm_err = float((cf - tf).norm()) / tnorm
    mult, norm_allowed = 1.0, rtol
    if e is not None:
        ef = e[fin]
        efin = torch.isfinite(ef)
        if efin.any():
            eager_ratio = float(((ef[efin] - tf[efin]).abs() / allowed[efin]).max())
            mult = max(1.0, EAGER_FACTOR * eager_ratio)
            norm_allowed = max(rtol, EAGER_FACTOR * float((ef[efin] - tf[efin]).norm()) / tnorm)
    max_abs = float(err.max())
    max_rel = float((err / (tf.abs() + atol)).max())
    tol = rtol * mult
    if ratio > mult or norm_err > norm_allowed:
        i = int((err / allowed).argmax())
        pos = tuple(int(k) for k in fin.nonzero()[i])
        why = "elementwise" if ratio > mult else f"norm-wise ({norm_err:.2e} > {norm_allowed:.2e})"
        return Verdict(False, f"{name}: wrong values ({why}): max abs err {max_abs:.3e}, at {pos} got "
                              f"{float(cf[i]):.6g} expected {float(tf[i]):.6g} "
                              f"(rtol {tol:.1e}, atol {atol * mult:.1e})",
                       max_abs, max_rel, tol)
    return Verdict(True, "", max_abs, max_rel, tol)
