"""The training loop of MinimalLLM.

    for each step: set the learning rate (linear warmup, cosine decay to min_lr_ratio)
                   accumulate gradients over grad_accum micro-batches (bf16 autocast on GPU)
                   clip the global gradient norm; step Muon and AdamW
                   every eval_interval: validation losses (+ the caller's eval_fn); every ckpt_interval: checkpoint

The loss is the mean cross-entropy over the target tokens of the whole accumulated batch: each
micro-batch contributes sum(loss) / (target tokens of all micro-batches), which is "divide by
grad_accum" when micro-batches hold equal token counts and stays exact when they do not.
Resuming restores weights, optimizer state, loader position and RNG states, so the next loss equals
that of an uninterrupted run.

Under torchrun (`rank`, `world_size` > 1, a process group initialised: see `distributed.py`) the model
is wrapped in DistributedDataParallel and a step is the same computation as a single process's:

- `grad_accum` counts the micro-batches of a step over all ranks (the global batch is micro_batch x
  grad_accum whatever the number of ranks; nanoGPT's convention), so each rank runs grad_accum /
  world_size micro-batches; the loader gives the ranks disjoint batches whose union is what a single
  process takes, and its position is global (resume on any number of ranks).
- The target-token count of the step is all-reduced before the backward passes; each micro-batch's
  loss is sum(loss) / (global target tokens) x world_size, because DDP averages gradients over ranks:
  the averaged gradient is then the single-process one (bitwise when world_size is a power of two,
  which scales exactly). Gradients are all-reduced only on the last micro-batch (`no_sync` before).
- Every rank then holds the same gradients and steps the same optimizers (Muon's Newton-Schulz runs
  redundantly on every rank: see muon.py), so the replicas stay bitwise identical (checked at each
  checkpoint). Validation losses are summed over the ranks' shares of the same fixed batches.
- Rank 0 alone logs, shows the progress bar, runs eval_fn, plots and writes checkpoints; the other
  ranks wait at a barrier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_optimizer_state,
    load_weights,
    resolve,
    save_checkpoint,
    set_rng_state,
)
from .config import ModelConfig, TrainConfig
from .data import SPLITS, Batch, BatchLoader, fixed_batches, load_split
from .distributed import all_reduce_sum, barrier, broadcast_str, replicas_identical, wrap_ddp
from .model import MinimalLLM, flops_per_token
from .muon import build_optimizers
from .step import OptimizerStep
from .tokenizer import P2TTokenizer

EvalFn = Callable[[MinimalLLM, P2TTokenizer, int], dict]


def resolve_device(device: str | None = None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def amp_dtype(device: torch.device, name: str = "auto") -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU has it, else fp16 (with a GradScaler); None (fp32) on CPU."""
    if name == "fp32" or device.type != "cuda":
        return None
    if name == "bf16" or name == "auto" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from 1 to min_lr_ratio at max_steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def compile_for_training(module: torch.nn.Module, cuda_graphs: bool = False) -> torch.nn.Module:
    """torch.compile as training runs it: dynamic shapes (batches come in many lengths: one graph for all); with
    cuda_graphs, mode="reduce-overhead": each batch shape's forward and backward recorded once, then replayed (give
    the step `OptimizerStep(grads_in_place=True)` and `accumulate_gradients(cuda_graphs=True)`)."""
    return torch.compile(module, dynamic=True, mode="reduce-overhead" if cuda_graphs else None)


def accumulate_gradients(model, batches: list[Batch], device: torch.device, dtype: torch.dtype | None = None,
                         scaler: torch.amp.GradScaler | None = None, *, total_targets: int | None = None,
                         grad_scale: float = 1.0, no_sync: Callable | None = None,
                         cuda_graphs: bool = False) -> torch.Tensor:
    """Backward over micro-batches, each normalized by `total_targets` (default: the target tokens of
    these micro-batches); returns this process's share of the mean loss (the mean loss in one process).
    Under DDP: total_targets is the count over all ranks, grad_scale the world size (DDP averages over
    ranks) and no_sync the DDP module's, entered for all micro-batches but the last. The loss stays a 0-dim
    tensor on the device (reading it is a host sync). cuda_graphs: `model` is compiled with mode="reduce-overhead";
    each micro-batch then starts a new generation of its CUDA graphs (the last one's outputs are dead by then)."""
    total = max(1, sum(b.n_targets for b in batches) if total_targets is None else total_targets)
    loss_sum = torch.zeros((), device=device)
    for i, b in enumerate(batches):
        b = b.to(device)
        sync = no_sync is None or i == len(batches) - 1
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with contextlib.nullcontext() if sync else no_sync():
            with autocast(device, dtype):
                loss = model(b.x, targets=b.y, reduction="sum", **b.model_inputs()) / total
            scaled = loss * grad_scale if grad_scale != 1.0 else loss
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.detach()
    return loss_sum


@torch.no_grad()
def evaluate_sums(model, batches: list[Batch], device: torch.device,
                  dtype: torch.dtype | None = None) -> tuple[float, int]:
    """(summed cross-entropy, target tokens) over fixed batches."""
    was_training = model.training
    model.eval()
    loss, n = 0.0, 0
    for b in batches:
        b = b.to(device)
        with autocast(device, dtype):
            loss += float(model(b.x, targets=b.y, reduction="sum", **b.model_inputs()))
        n += b.n_targets
    model.train(was_training)
    return loss, n


def evaluate(model, batches: list[Batch], device: torch.device, dtype: torch.dtype | None = None) -> float:
    """Mean cross-entropy per target token over fixed batches."""
    loss, n = evaluate_sums(model, batches, device, dtype)
    return loss / max(1, n)


def plot_losses(history: list[dict], path: Path) -> bool:
    """loss.png of the train and validation curves; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if train:
        ax.plot(*zip(*train, strict=True), label="train", lw=0.8, alpha=0.8)
    for split in SPLITS[1:]:
        pts = [(h["step"], h[f"val_{split}"]) for h in history if f"val_{split}" in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / target token)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    passes = {s: [(h["step"], h[f"pass_{s}"]) for h in history if f"pass_{s}" in h] for s in SPLITS[1:]}
    if any(passes.values()):  # the verified pass-rate of an eval_fn (`p2t train --verify-units`), on its own axis
        ax2 = ax.twinx()
        for split, pts in passes.items():
            if pts:
                ax2.plot(*zip(*pts, strict=True), marker="s", ls="--", label=f"pass@1 {split}")
        ax2.set_ylabel("verified pass@1 (greedy)")
        ax2.set_ylim(0, 1)
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return True


def _silent(_msg: str) -> None:
    pass


class StopRequest:
    """SIGINT or SIGTERM while training: the loop finishes the step in flight, writes a checkpoint and returns,
    so a job cut off by its time limit (`timeout -s INT`) loses no steps; a second signal interrupts at once.
    Installed only in the main thread (signal handlers can be set nowhere else), for the loop alone: before it,
    while the data loads, a signal interrupts as usual."""

    def __init__(self, log: Callable[[str], None]):
        self.signal: str | None = None
        self._log = log
        self._previous: dict[int, object] = {}

    def _handle(self, signum, _frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        self._log(f"{self.signal}: stopping after this step with a checkpoint (again to interrupt at once)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    step: int
    n_params: int
    out_dir: Path
    checkpoint: Path | None
    history: list[dict] = field(default_factory=list)
    dropped: dict = field(default_factory=dict)
    stopped_by: str | None = None  # the signal that ended the run early, if one did


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path, *,
          resume: bool = False, max_steps: int | None = None, device: str | None = None,
          eval_fn: EvalFn | None = None, progress: bool = True, log: Callable[[str], None] = print,
          rank: int = 0, world_size: int = 1, stop_after: int | None = None,
          use_compile: bool | None = None, tokenizer: P2TTokenizer | None = None,
          init_weights: str | Path | None = None) -> TrainResult:
    """Train (or resume training) into out_dir: checkpoints `step_NNNNNNNN/`, `latest`, `train_log.jsonl`,
    `loss.png`. `eval_fn(model, tokenizer, step) -> dict` runs at each evaluation (e.g. a verified pass-rate).
    `stop_after` ends the run (with a checkpoint) at that step without changing the schedule, which
    `max_steps` sets: a time-limited job stops early and a later `resume=True` continues it.
    On resume the checkpoint's configs are used; `max_steps` and `use_compile` still override them.
    `tokenizer`: use this vocabulary instead of training one on the data (runs meant to be compared share one).
    `init_weights`: start a fresh run (new optimizer state and schedule) from these weights, either format (an
    int8 export or a checkpoint): fine-tuning, or continuing a run whose optimizer state was lost.
    With world_size > 1 the caller has initialised the process group (`distributed.init_from_env`) and
    passes this process's rank and device; only rank 0 calls `log`."""
    if world_size > 1 and not torch.distributed.is_initialized():
        raise ValueError(f"world_size {world_size} without a process group: launch with torchrun")
    if rank != 0:
        log = _silent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    ck = None
    if resume:
        try:
            resolve(out_dir)
        except CheckpointError:
            log(f"no checkpoint in {out_dir}; starting fresh")
        else:
            ck = load_checkpoint(out_dir)  # refuses a corrupted or truncated checkpoint
            model_cfg, train_cfg = ck["model_config"], ck["train_config"] or train_cfg
            log(f"resuming from {ck['dir']} at step {ck['step']}")
    train_cfg = dataclasses.replace(train_cfg)  # the caller's config is not modified
    if max_steps is not None:  # the only schedule setting a resumed run may change
        train_cfg.max_steps = max_steps
    if use_compile is not None:
        train_cfg.compile = use_compile
    cfg = train_cfg
    if cfg.grad_accum % world_size:
        raise ValueError(f"grad_accum {cfg.grad_accum} (micro-batches per step over all ranks) is not a "
                         f"multiple of the {world_size} ranks")
    accum = cfg.grad_accum // world_size  # this rank's micro-batches per step
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # --- tokenizer and data ---
    if ck is not None:
        tokenizer = ck["tokenizer"]
    elif tokenizer is None:  # trained by rank 0 and sent to the others: every rank has the very same vocabulary
        text = None
        if rank == 0:
            text = P2TTokenizer.train_on_jsonl(Path(data_dir) / "train.jsonl",
                                               vocab_size=cfg.tokenizer_vocab or model_cfg.vocab_size,
                                               pair_format=model_cfg.pair_format).to_str()
        tokenizer = P2TTokenizer.from_str(broadcast_str(text))
    if tokenizer.vocab_size > model_cfg.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens, the model only {model_cfg.vocab_size}")
    datasets = {s: load_split(data_dir, s, tokenizer, model_cfg.context, model_cfg.pair_format) for s in SPLITS}
    dropped = {s: ds.dropped for s, ds in datasets.items() if ds is not None}
    for s, ds in datasets.items():
        if ds is not None:
            log(f"{s}: {len(ds):,} pairs, {ds.n_tokens:,} tokens, {ds.dropped:,} dropped (longer than "
                f"{model_cfg.context} tokens)")
    loader = BatchLoader(datasets["train"], cfg.micro_batch, tokenizer.pad_id, model_cfg.context, seed=cfg.seed,
                         group=cfg.grad_accum, pad_multiple=cfg.pad_multiple, rank=rank, world_size=world_size,
                         packed=cfg.pack, least_padding=cfg.least_padding,
                         row_multiple=cfg.row_multiple, unpad=cfg.unpad)
    val_batches = {s: fixed_batches(ds, cfg.micro_batch, tokenizer.pad_id, model_cfg.context, cfg.eval_batches,
                                    cfg.pad_multiple, rank, world_size)
                   for s, ds in datasets.items() if s != "train" and ds is not None and len(ds)}

    # --- model and optimizers ---
    model = MinimalLLM(model_cfg).to(dev)
    n_params = model.num_params()
    log(f"MinimalLLM: {n_params:,} parameters ({model_cfg.n_layer} layers, d_model {model_cfg.d_model}, "
        f"{model_cfg.n_head} heads, vocab {model_cfg.vocab_size}, context {model_cfg.context})")
    if init_weights is not None and ck is None:
        from .checkpoint import load_model
        from .quantize import INDEX, load_quantized

        load = load_quantized if (Path(init_weights) / INDEX).exists() else load_model
        start, _ = load(init_weights, "cpu", dtype=torch.float32)  # int8 weights dequantized
        shape = {**dataclasses.asdict(start.config), "pair_format": model_cfg.pair_format}  # text forms may differ
        if shape != dataclasses.asdict(model_cfg):
            raise ValueError(f"{init_weights}: its model config differs from this run's")
        load_weights(model, {k: v.float().to(dev) for k, v in start.state_dict().items()})
        log(f"initialized from {init_weights} (pair format {start.config.pair_format}, now {model_cfg.pair_format})")
    optimizers = build_optimizers(model, cfg)
    dtype = amp_dtype(dev, cfg.dtype)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    step, history = 0, []
    if ck is not None:
        load_weights(model, {k: v.to(dev) for k, v in ck["weights"].items()})
        if ck["optim_tensors"] is None or "optimizers" not in ck:
            raise CheckpointError(f"{ck['dir']}: has no optimizer state; it cannot be resumed (weights only)")
        load_optimizer_state(optimizers, ck["optim_tensors"], ck["optimizers"])
        loader.load_state_dict(ck["data_state"])
        step, history = ck["step"], ck["history"]
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        if "rng" in ck:
            set_rng_state(ck["rng"])
    # One CUDA graph for the optimizer step (model/step.py): not under a grad scaler, whose step skips on a host
    # check of found_inf, nor under DDP, whose reducer writes the gradients
    graph = cfg.graph_step and dev.type == "cuda" and scaler is None and world_size == 1
    # The compiled forward and backward replayed from CUDA graphs: not under DDP, whose reducer hooks run eagerly
    cuda_graphs = cfg.cuda_graphs and cfg.compile and dev.type == "cuda" and world_size == 1
    stepper = OptimizerStep(model, optimizers, cfg.grad_clip, graph=graph, scaler=scaler, grads_in_place=cuda_graphs)
    ddp = wrap_ddp(model, dev) if world_size > 1 else None
    run = ddp if ddp is not None else model
    if cfg.compile and dev.type == "cuda":  # compile the DDP module: dynamo splits graphs at its buckets
        run = compile_for_training(run, cuda_graphs)
    no_sync = ddp.no_sync if ddp is not None else None

    # --- the loop ---
    log_path = out_dir / "train_log.jsonl"
    if ck is not None and log_path.exists() and rank == 0:  # drop lines a crashed run wrote after its checkpoint
        kept = [line for line in log_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        log_path.write_text("".join(line + "\n" for line in kept))
    log_file = open(log_path, "a") if rank == 0 else None

    def record(entry: dict):
        history.append(entry)
        if log_file is not None:
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, unit="step", dynamic_ncols=True)
    last_ckpt = None
    # The step's loss and gradient norm stay on the device until the next log point, where the steps in between
    # are read back in one transfer: no host sync inside a step, so the CPU queues the next micro-batches while
    # the GPU computes. Throughput is measured over the same interval (wall time between two read-backs).
    pending: list[tuple[dict, torch.Tensor, torch.Tensor]] = []
    interval_start, interval_tokens = time.perf_counter(), 0

    def read_back() -> dict:
        nonlocal interval_start, interval_tokens
        values = torch.stack([torch.stack([loss.float(), gnorm.float()]) for _, loss, gnorm in pending]).tolist()
        now = time.perf_counter()
        tok_s = interval_tokens / (now - interval_start)  # over all ranks
        for (entry, _, _), (loss, gnorm) in zip(pending, values, strict=True):
            mfu = flops_per_token(model_cfg, n_params, entry.pop("seq")) * tok_s / (cfg.peak_flops * world_size)
            entry.update(loss=loss, grad_norm=gnorm, tokens_per_s=tok_s, mfu=mfu)  # mfu per GPU
            history.append(entry)
        last = pending[-1][0]
        pending.clear()
        interval_start, interval_tokens = now, 0
        return last

    with StopRequest(log) as stop:
        try:
            while step < cfg.max_steps:
                mult = lr_multiplier(step, cfg)
                stepper.set_lr(mult)
                batches = [loader.next_batch() for _ in range(accum)]
                counts = [sum(b.n_targets for b in batches), sum(b.n_tokens for b in batches)]
                if world_size > 1:
                    counts = all_reduce_sum(torch.tensor(counts, dtype=torch.int64, device=dev)).tolist()
                loss = accumulate_gradients(run, batches, dev, dtype, scaler, total_targets=counts[0],
                                            grad_scale=float(world_size), no_sync=no_sync, cuda_graphs=cuda_graphs)
                if world_size > 1:
                    loss = all_reduce_sum(loss.float())  # float32, as one process sums its micro-batches' losses
                gnorm = stepper.step()
                step += 1
                interval_tokens += counts[1]
                span = sum(b.attn_span * b.n_tokens for b in batches) / max(1, sum(b.n_tokens for b in batches))
                entry = {"step": step, "lr_mult": mult, "epoch": loader.epoch, "time": time.time(), "seq": span}
                if world_size > 1:
                    entry["world_size"] = world_size
                pending.append((entry, loss, gnorm))
                evaluating = step % cfg.eval_interval == 0 or step == cfg.max_steps
                signalled = stop.signal is not None
                if world_size > 1:  # the ranks stop at the same step; agreed where the log read-back syncs anyway
                    signalled = step % cfg.log_interval == 0 and bool(
                        all_reduce_sum(torch.tensor(float(signalled), device=dev)).item())
                stopping = (stop_after is not None and step >= stop_after) or signalled
                checkpointing = step % cfg.ckpt_interval == 0 or step == cfg.max_steps or stopping
                if step % cfg.log_interval == 0 or step == 1 or evaluating or checkpointing:
                    entry = read_back()
                    if log_file is not None:
                        log_file.write(json.dumps(entry) + "\n")
                        log_file.flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{mult:.3f}",
                                        tok_s=f"{entry['tokens_per_s']:,.0f}", mfu=f"{entry['mfu']:.1%}")
                if bar is not None:
                    bar.update(1)
                if evaluating:
                    ev = {"step": step}
                    if val_batches:  # each rank its share of the fixed batches, summed over ranks
                        sums = [x for vb in val_batches.values() for x in evaluate_sums(model, vb, dev, dtype)]
                        sums = torch.tensor(sums, dtype=torch.float64, device=dev)
                        sums = all_reduce_sum(sums).tolist()
                        for k, s in enumerate(val_batches):
                            ev[f"val_{s}"] = sums[2 * k] / max(1, sums[2 * k + 1])
                    if eval_fn is not None and rank == 0:
                        model.eval()
                        ev.update(eval_fn(model, tokenizer, step) or {})
                        model.train()
                    record(ev)
                    msg = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in ev.items())
                    (bar.write if bar is not None else log)(f"eval {msg}")
                    if rank == 0:
                        plot_losses(history, out_dir / "loss.png")
                if checkpointing:
                    if world_size > 1 and not replicas_identical(model):
                        log(f"warning: step {step}: the ranks' parameters differ (nondeterministic kernels?); "
                            "the checkpoint holds rank 0's")
                    name = f"step_{step:08d}"
                    if rank == 0:
                        save_checkpoint(
                            out_dir, name, model=model, tokenizer=tokenizer, model_cfg=model_cfg,
                            train_cfg=cfg, optimizers=optimizers, step=step, data_state=loader.state_dict(),
                            history=history, scaler_state=scaler.state_dict() if scaler is not None else None,
                            keep=cfg.keep_checkpoints)
                    barrier()  # the checkpoint is complete before any rank goes on (or exits, or resumes)
                    last_ckpt = out_dir / name
                elif eval_fn is not None and step % cfg.eval_interval == 0:
                    barrier()  # rank 0's eval_fn is done
                if stopping:
                    break
                if not pending:  # read back this step: evaluation and checkpoint time are not training throughput
                    interval_start = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
            if log_file is not None:
                log_file.close()
    if stop.signal is not None:
        log(f"stopped by {stop.signal} at step {step} of {cfg.max_steps}; continue with resume")
    return TrainResult(step=step, n_params=n_params, out_dir=out_dir, checkpoint=last_ckpt, history=history,
                       dropped=dropped, stopped_by=stop.signal)
