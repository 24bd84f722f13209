"""Muon: Newton-Schulz orthogonalization and the optimizer groups."""

from __future__ import annotations

import pytest
import torch
from p2t_model import muon as muon_mod
from p2t_model.config import preset
from p2t_model.model import MinimalLLM
from p2t_model.muon import Muon, build_optimizers, newton_schulz, split_params
from torch.utils._python_dispatch import TorchDispatchMode


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (128, 128)])
def test_newton_schulz_singular_values_near_one(shape):
    torch.manual_seed(0)
    r = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], r))
    v, _ = torch.linalg.qr(torch.randn(shape[1], r))
    s = torch.logspace(-1.3, 0, r)  # condition number 20
    g = 3.0 * u @ torch.diag(s) @ v.T
    out = newton_schulz(g)
    assert out.dtype == torch.bfloat16 and out.shape == g.shape
    sv = torch.linalg.svdvals(out.float())
    assert sv.min() > 0.65 and sv.max() < 1.2, (sv.min(), sv.max())  # the quintic's band ~[0.68, 1.14]
    # the singular directions are kept: U^T out V is diagonal, with gains in the same band
    proj = u.T @ out.float() @ v
    gains = proj.diag()
    assert gains.min() > 0.6 and gains.max() < 1.25
    assert (proj - torch.diag(gains)).abs().max() < 0.05


def test_muon_step_uses_orthogonal_update_and_scale():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(32, 8))
    opt = Muon([w], lr=0.1, momentum=0.0, nesterov=False)
    w.grad = torch.randn(32, 8)
    opt.step()
    sv = torch.linalg.svdvals(w.detach())
    scale = (32 / 8) ** 0.5
    assert torch.all((sv > 0.6 * 0.1 * scale) & (sv < 1.25 * 0.1 * scale))


def test_muon_rejects_vectors():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.nn.Parameter(torch.zeros(4))])


def test_group_assignment():
    model = MinimalLLM(preset("tiny")[0])
    muon, adamw = split_params(model)
    muon_names, adam_names = {n for n, _ in muon}, {n for n, _ in adamw}
    for i in range(model.config.n_layer):
        for w in ("attn.qkv", "attn.proj", "ffn.gate", "ffn.up", "ffn.down"):
            assert f"blocks.{i}.{w}.weight" in muon_names
        assert {f"blocks.{i}.norm1.weight", f"blocks.{i}.norm2.weight"} <= adam_names
    assert {"tok_emb.weight", "norm.weight"} <= adam_names
    assert all(p.ndim == 2 for _, p in muon)
    opts = build_optimizers(model, preset("tiny")[1])
    assert isinstance(opts[0], Muon) and isinstance(opts[1], torch.optim.AdamW)
    in_opts = [id(p) for o in opts for g in o.param_groups for p in g["params"]]
    assert sorted(in_opts) == sorted(id(p) for p in model.parameters())


def test_build_optimizers_asserts_each_parameter_in_exactly_one_group(monkeypatch):
    model = MinimalLLM(preset("tiny")[0])
    muon, adamw = split_params(model)
    monkeypatch.setattr(muon_mod, "split_params", lambda m: (muon, adamw + muon[:1]))
    with pytest.raises(AssertionError, match="both"):
        build_optimizers(model, preset("tiny")[1])
    monkeypatch.setattr(muon_mod, "split_params", lambda m: (muon, adamw[1:]))
    with pytest.raises(AssertionError, match="no optimizer group"):
        build_optimizers(model, preset("tiny")[1])


def test_adamw_baseline_puts_every_parameter_in_one_adamw():
    model = MinimalLLM(preset("tiny")[0])
    cfg = preset("tiny")[1]
    cfg.optimizer = "adamw"
    (opt,) = build_optimizers(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    hidden, rest = opt.param_groups
    assert hidden["lr"] == cfg.adamw_hidden_lr and hidden["weight_decay"] == cfg.adamw_hidden_weight_decay
    assert {id(p) for p in hidden["params"]} == {id(p) for _, p in split_params(model)[0]}
    assert sorted(id(p) for g in opt.param_groups for p in g["params"]) == sorted(id(p) for p in model.parameters())
    cfg.optimizer = "sgd"
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizers(model, cfg)


class _CountCasts(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.casts += func.overloadpacket is torch.ops.aten._to_copy
        return func(*args, **(kwargs or {}))


def test_muon_step_casts_each_stack_of_same_shape_matrices_once():
    """Every cast is a kernel launch on the GPU, where the optimizer step is bound by the host: the bf16 update of
    a shape group comes back to the parameters' dtype in one cast of the stack, not one a matrix."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(16, 8)) for _ in range(5)] + [torch.nn.Parameter(torch.randn(8, 8))]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = Muon(params, lr=0.01)
    with _CountCasts() as count:
        opt.step()
    assert count.casts == 2 * 2  # per shape group: the stack to bf16 for Newton-Schulz, the update back
