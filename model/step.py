"""The optimizer step of training (clip the gradient norm, step Muon and AdamW, zero the gradients), eager or, on a
GPU with `train.graph_step`, replayed from one CUDA graph.

Eagerly the step is ~250 small launches (Muon's momentum, Newton-Schulz and update per shape group, fused AdamW, the
foreach norm and clip), and on an H200 the GPU waited on the host for most of it: the fifteenth session's profile
saw 122 ms of Muon range for 48 ms of its kernels over 12 steps (docs/BENCHMARKS.md). The parameters, gradients and
optimizer state never move, so after a few eager steps have created the state the whole step is captured once and
each later step is one `replay()`. What a graph cannot take as a constant is passed through device tensors: the
learning rates (the schedule fills them every step) and AdamW's step count (`capturable=True` keeps it on the GPU).
Gradients are zeroed in place instead of set to None, so backward accumulates into the addresses the graph reads.

Measured (scripts/train_profile.py, 50m model on real pairs): no gain yet. The profile of a step has ~106 ms of
kernels in ~118 ms of wall time, the optimizer's ~4 ms among them: the step is GPU-bound now (cached launches, the
RoPE kernel, pinned batches since that profile), and the graph's runs were within the noise between modes of one
process. So `TrainConfig.graph_step` is off by default.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class OptimizerStep:
    """`step()` clips, steps every optimizer (through `scaler` under fp16) and zeroes the gradients, and returns the
    gradient norm before clipping (a 0-dim tensor on the device). With `graph` (CUDA only) the first `warmup` steps
    run eagerly on a side stream and the next one captures the step into a CUDA graph that every later step replays.
    With `grads_in_place` (implied by `graph`) every gradient exists from the start and is zeroed in place."""

    def __init__(self, model: nn.Module, optimizers: list[torch.optim.Optimizer], grad_clip: float, *,
                 graph: bool = False, warmup: int = 3, scaler: torch.amp.GradScaler | None = None,
                 grads_in_place: bool = False):
        if graph and scaler is not None:  # the scaler skips a step on a host check of found_inf
            raise ValueError("a CUDA graph of the optimizer step cannot take a grad scaler")
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizers = optimizers
        self.grad_clip = grad_clip
        self.scaler = scaler
        self.graph_enabled = graph
        # Gradients at fixed addresses, zeroed in place: what a graph of this step reads, and what a backward replayed
        # from CUDA graphs needs (`train.cuda_graphs`): a first micro-batch's gradient would otherwise become .grad
        # itself, a buffer of the graphs' memory pool that the next micro-batch's replay overwrites.
        self.grads_in_place = graph or grads_in_place
        if self.grads_in_place:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        self.warmup = warmup
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_norm: torch.Tensor | None = None
        if graph:
            device = self.params[0].device
            if device.type != "cuda":
                raise ValueError("a CUDA graph of the optimizer step needs the parameters on a GPU")
            self.stream = torch.cuda.Stream(device)
            for opt in optimizers:
                for group in opt.param_groups:  # the graph reads the rate from here at every replay
                    group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
                    if "capturable" in group:  # AdamW: its step count on the device, its updates graph-safe
                        group["capturable"] = True

    def set_lr(self, multiplier: float) -> None:
        """The schedule: every group's rate is its base_lr times `multiplier`."""
        for opt in self.optimizers:
            for group in opt.param_groups:
                lr = group["base_lr"] * multiplier
                if torch.is_tensor(group["lr"]):
                    group["lr"].fill_(lr)  # a launch, no host sync
                else:
                    group["lr"] = lr

    def _step(self) -> torch.Tensor:
        if self.scaler is not None:  # fp16: clip and step the true gradients; the scaler skips steps that overflowed
            for opt in self.optimizers:
                self.scaler.unscale_(opt)
        norm = nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        for opt in self.optimizers:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=not self.grads_in_place)
        return norm

    def step(self) -> torch.Tensor:
        if not self.graph_enabled:
            return self._step()
        current = torch.cuda.current_stream()
        self.stream.wait_stream(current)  # the gradients of this step's backward are complete
        if self.graph is None and self.eager_steps >= self.warmup:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self.graph_norm = self._step()
        with torch.cuda.stream(self.stream):
            if self.graph is not None:
                self.graph.replay()  # capturing ran nothing: this step runs here too
                norm = self.graph_norm.clone()  # the next replay overwrites the graph's output
            else:
                norm = self._step()
                self.eager_steps += 1
        current.wait_stream(self.stream)
        return norm
