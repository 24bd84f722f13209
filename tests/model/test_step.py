"""model/step.py: the optimizer step, eager on the CPU, replayed from a CUDA graph on a GPU (same parameters either
way); learning rates held in tensors for the graph survive a checkpoint and load on a machine without a GPU."""

from __future__ import annotations

import json

import pytest
import torch
from p2t_model.checkpoint import load_optimizer_state, optimizer_state
from p2t_model.config import preset
from p2t_model.model import MinimalLLM
from p2t_model.muon import build_optimizers
from p2t_model.step import OptimizerStep


def _setup(device: str, seed: int = 0):
    model_cfg, train_cfg = preset("tiny")
    torch.manual_seed(seed)
    model = MinimalLLM(model_cfg).to(device)
    return model, build_optimizers(model, train_cfg), train_cfg


def _train(model, stepper, steps: int, device: str, lrs=(1.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.3, 0.6)):
    """`steps` steps on fixed random batches, the schedule changing every step; the gradient norms."""
    gen = torch.Generator().manual_seed(1)
    norms = []
    for k in range(steps):
        idx = torch.randint(0, model.config.vocab_size, (3, 40), generator=gen).to(device)
        stepper.set_lr(lrs[k % len(lrs)])
        model(idx, targets=idx).backward()
        norms.append(float(stepper.step()))
    return norms


def test_muon_and_adamw_take_a_tensor_learning_rate_as_they_take_a_float():
    """The graph reads rates from 0-dim tensors: Muon's update and AdamW's must be the float rate's."""
    models = []
    for as_tensor in (False, True):
        model, optimizers, cfg = _setup("cpu")
        if as_tensor:
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = torch.tensor(group["lr"])
        stepper = OptimizerStep(model, optimizers, cfg.grad_clip)
        _train(model, stepper, 4, "cpu")
        models.append(model)
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5, msg=name)


def test_the_step_clips_steps_and_zeroes_like_the_loop_it_replaced():
    model, optimizers, cfg = _setup("cpu")
    reference, ref_optimizers, _ = _setup("cpu")
    stepper = OptimizerStep(model, optimizers, cfg.grad_clip)
    idx = torch.randint(0, model.config.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    for m in (model, reference):
        m(idx, targets=idx).backward()
    norm = stepper.step()
    ref_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), cfg.grad_clip)
    for opt in ref_optimizers:
        opt.step()
    assert float(norm) == pytest.approx(float(ref_norm))
    assert all(p.grad is None for p in model.parameters())  # eagerly: set to None, as before
    for p, q in zip(reference.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(q, p)


def test_gradients_in_place_stay_at_one_address_and_train_as_gradients_set_to_none():
    """`grads_in_place` (what a backward replayed from CUDA graphs needs): every gradient exists before the first
    backward, keeps its storage through every step, is zeroed after each, and the parameters end as the eager
    step's, which sets gradients to None."""
    runs = []
    for in_place in (False, True):
        model, optimizers, cfg = _setup("cpu")
        stepper = OptimizerStep(model, optimizers, cfg.grad_clip, grads_in_place=in_place)
        addresses = [p.grad.data_ptr() for p in model.parameters()] if in_place else None
        norms = _train(model, stepper, 4, "cpu")
        if in_place:
            assert [p.grad.data_ptr() for p in model.parameters()] == addresses
            assert all(not p.grad.any() for p in model.parameters())
        else:
            assert all(p.grad is None for p in model.parameters())
        runs.append((model, norms))
    (eager, eager_norms), (in_place, in_place_norms) = runs
    assert in_place_norms == pytest.approx(eager_norms, rel=1e-6)
    for (name, p), q in zip(eager.named_parameters(), in_place.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5, msg=name)


def test_a_graph_needs_a_gpu():
    model, optimizers, cfg = _setup("cpu")
    with pytest.raises(ValueError, match="GPU"):
        OptimizerStep(model, optimizers, cfg.grad_clip, graph=True)
    with pytest.raises(ValueError, match="grad scaler"):  # fp16's scaler decides on the host whether to step
        OptimizerStep(model, optimizers, cfg.grad_clip, graph=True, scaler=torch.amp.GradScaler("cpu"))


def test_tensor_rates_and_capturable_groups_are_checkpointed_as_numbers_and_load_on_a_cpu():
    """A run whose step was a CUDA graph (rates in tensors, AdamW capturable) resumes on a CPU: the checkpoint holds
    the rates as numbers, and how to step (fused, capturable) is the resuming trainer's own."""
    model, optimizers, cfg = _setup("cpu")
    _train(model, OptimizerStep(model, optimizers, cfg.grad_clip), 2, "cpu")
    for opt in optimizers:  # what OptimizerStep(graph=True) leaves in the groups on a GPU
        for group in opt.param_groups:
            group["lr"] = torch.tensor(0.125)
            if "capturable" in group:
                group["capturable"] = group["fused"] = True
    tensors, meta = optimizer_state(optimizers)
    meta = json.loads(json.dumps(meta))  # as the checkpoint writes it
    assert {g["lr"] for m in meta for g in m["param_groups"]} == {0.125}
    fresh, fresh_optimizers, _ = _setup("cpu", seed=1)
    load_optimizer_state(fresh_optimizers, tensors, meta)
    adamw = fresh_optimizers[-1].param_groups[0]
    assert adamw["lr"] == 0.125 and not adamw["capturable"] and not adamw["fused"]
    fresh.load_state_dict(model.state_dict())
    _train(fresh, OptimizerStep(fresh, fresh_optimizers, cfg.grad_clip), 1, "cpu")  # it steps


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_replays_give_the_eager_steps_parameters_on_cuda():
    """Eight steps with a changing rate: three eager warm-up steps, the capture, four replays. The gradients are
    fixed random tensors, the same in both runs: a backward's nondeterministic kernels (attention's atomics) would
    differ between runs by more than the step does, and AdamW turns a tiny gradient's noise into a full step."""
    runs = []
    for graph in (False, True):
        model, optimizers, cfg = _setup("cuda")
        stepper = OptimizerStep(model, optimizers, cfg.grad_clip, graph=graph)
        gen = torch.Generator(device="cuda").manual_seed(1)
        norms = []
        for k in range(8):
            stepper.set_lr((1.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.3, 0.6)[k])
            for p in model.parameters():
                g = torch.randn(p.shape, device="cuda", generator=gen) * 0.1
                if p.grad is None:
                    p.grad = g
                else:  # under the graph: into the buffers it reads, as backward accumulates
                    p.grad.copy_(g)
            norms.append(float(stepper.step()))
        runs.append((model, norms, stepper))
    (eager, eager_norms, _), (graphed, graph_norms, stepper) = runs
    assert stepper.graph is not None  # the last steps were replays
    assert graph_norms == pytest.approx(eager_norms, rel=1e-5)
    for (name, p), q in zip(eager.named_parameters(), graphed.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-4, msg=name)
