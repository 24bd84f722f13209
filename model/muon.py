"""Muon: momentum whose update is orthogonalized by a Newton-Schulz iteration, for 2-D hidden weights.

For a weight matrix W with gradient G, Muon keeps a momentum buffer M (Nesterov), replaces the
update by the nearest (semi-)orthogonal matrix U V^T of its SVD U S V^T, approximately, with five
steps of a quintic Newton-Schulz iteration in bf16, and steps W -= lr * scale * U V^T. All singular
directions then move at the same rate, which is what makes it faster than Adam on hidden matrices.
Embeddings, the output head, norms and biases are not matrices in that sense: AdamW takes them.

Under DDP (train.py) every rank runs this optimizer on all Muon parameters, redundantly: after DDP's
all-reduce every rank holds the same gradients and momentum, so the Newton-Schulz results are identical
and the replicas stay bitwise equal with no communication beyond the gradient all-reduce. Sharding the
orthogonalization (each rank a subset of the matrices, then an all-gather of the updates) would save at
most (1 - 1/N) of the Newton-Schulz time, which at the 50m preset is a few percent of a step (~6e11 FLOPs
against ~2.4e13 for forward and backward at batch 96 x ~820 tokens), at the price of an all-gather of
every hidden matrix each step and of momentum buffers that only exist on their owner rank, which the
checkpoint (written by rank 0) and resuming on a different number of ranks would then have to gather and
redistribute. See model/README.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import TrainConfig

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic tuned to push singular values in (0, 1] towards ~[0.7, 1.2]


def newton_schulz(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximate U V^T for G = U S V^T (G is (..., rows, cols)); the result is bf16."""
    a, b, c = NS_COEFFS
    X = G.bfloat16().reshape(-1, *G.shape[-2:])  # (batch, r, c): the leading dims as one batch
    tall = X.size(-2) > X.size(-1)
    if tall:  # iterate on the wide orientation: X X^T is then the smaller Gram matrix
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)  # Frobenius norm >= spectral norm: singular values <= 1
    for _ in range(steps):  # three GEMMs a step, the scaled sums in their epilogues (not five more kernels)
        A = X @ X.mT  # (r, r)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = torch.baddbmm(X, B, X, beta=a)  # X <- a X + b (X X^T) X + c (X X^T)^2 X
    return (X.mT if tall else X).reshape(G.shape)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters. lr is the spectral size of a step (a float, or a 0-dim tensor that a CUDA graph of
    the step reads at each replay); weight_decay is decoupled (W *= 1 - lr wd)."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay, ns_steps=ns_steps))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D parameters only; got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            by_shape: dict[tuple[int, ...], list[nn.Parameter]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
            # Matrices of one shape are orthogonalized as one stacked batch: the same arithmetic per matrix, in
            # a few large launches instead of ~20 small ones per matrix (72 matrices at the 50m preset).
            for shape, params in by_shape.items():
                grads = [p.grad for p in params]
                bufs = []
                for p, g in zip(params, grads, strict=True):
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(g, dtype=torch.float32)
                    bufs.append(state["momentum_buffer"])
                torch._foreach_mul_(bufs, mom)
                torch._foreach_add_(bufs, [g.float() for g in grads])  # M <- mu M + G
                updates = torch._foreach_add([g.float() for g in grads], bufs, alpha=mom) if group["nesterov"] \
                    else bufs  # Nesterov: G + mu M
                # one cast of the stack, not one a matrix: 60 of the 64 casts of a step at the 50m preset
                ortho = newton_schulz(torch.stack(updates), steps=group["ns_steps"]).to(params[0].dtype)
                scale = max(1.0, shape[0] / shape[1]) ** 0.5  # tall matrices: keep per-element RMS comparable
                if wd:
                    torch._foreach_mul_(params, 1 - lr * wd)
                # lr is a float, or a device tensor under a CUDA graph (model/step.py): scaled as a tensor op
                torch._foreach_add_(params, ortho.mul_(-lr * scale).unbind(0))
        return loss


def split_params(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """(muon, adamw) named parameters: 2-D weights of the transformer blocks go to Muon; the
    embedding (and the head tied to it, or an untied head), norms and biases go to AdamW."""
    muon, adamw = [], []
    for name, p in model.named_parameters():  # a tied parameter is yielded once, under its first name
        if not p.requires_grad:
            continue
        hidden_matrix = p.ndim == 2 and name.startswith("blocks.")
        (muon if hidden_matrix else adamw).append((name, p))
    return muon, adamw


def build_optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """[Muon, AdamW] over the model's parameters (cfg.optimizer "muon"), or one AdamW with a group for the
    hidden matrices ("adamw"); asserts each parameter is in exactly one group."""
    if cfg.optimizer not in ("muon", "adamw"):
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: muon or adamw")
    hidden, rest = split_params(model)
    ids = [id(p) for _, p in hidden] + [id(p) for _, p in rest]
    every = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)), "a parameter is in both optimizer groups"
    assert set(ids) == every, "a parameter is in no optimizer group"
    adamw_groups = [{"params": [p for _, p in rest], "lr": cfg.adam_lr, "weight_decay": cfg.adam_weight_decay}]
    opts = []
    if cfg.optimizer == "muon":
        opts.append(Muon([p for _, p in hidden], lr=cfg.muon_lr, momentum=cfg.muon_momentum,
                         weight_decay=cfg.muon_weight_decay))
    else:
        adamw_groups.insert(0, {"params": [p for _, p in hidden], "lr": cfg.adamw_hidden_lr,
                                "weight_decay": cfg.adamw_hidden_weight_decay})
    opts.append(torch.optim.AdamW(adamw_groups, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps,
                                  fused=all(p.is_cuda for p in model.parameters()) or None))
    for opt in opts:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]  # the schedule multiplies base_lr
    return opts
