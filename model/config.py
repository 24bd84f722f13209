"""Configuration of MinimalLLM and of its training: two dataclasses, each value with its reason.

`ModelConfig()` is the shipped ~50M model; `preset("tiny")` is the CPU test model. A config file
(JSON or TOML) has two optional tables, `model` and `train`, whose keys are the field names below.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from p2t_core.llm.pairform import PAIR_FORMAT


@dataclass
class ModelConfig:
    # Byte-level BPE over Python + Triton source: 8192 covers the identifiers, keywords and the
    # indentation runs of both languages; a larger vocab mostly buys rare names at 0.5M params/1k.
    vocab_size: int = 8192
    # A pair in the model's text form (pair format 2: prompt with ranks + kernels and launcher, no library helpers)
    # is 815 tokens at the median and 2,430 at the longest on valid_random; 2048 drops 0.4% of the 50k corpus
    # (format 1, with the helpers, was p50 1,599 / max 3,364 and was trained at 3072). RoPE: nothing is learned
    # per position.
    context: int = 2048
    # 512 wide x 12 deep: the usual ~50M shape (GPT-2-small's depth at 2/3 of its width);
    # depth matters more than width for the long-range copying that code translation needs.
    d_model: int = 512
    n_layer: int = 12
    # 8 heads of 64: the head size FlashAttention kernels are fastest at, and RoPE wants it even.
    n_head: int = 8
    # SwiGLU hidden size 1792 = 3.5 x d_model (a multiple of 128 for tensor cores). Three matrices
    # of 512x1792 cost about what GELU's 4x costs with two, and SwiGLU trains better per FLOP.
    ffn_hidden: int = 1792
    # RoPE base 10000: the standard; positions here never exceed 2048, so no extension is needed.
    rope_base: float = 10000.0
    # RMSNorm epsilon; the norm runs in fp32, so a small value is safe.
    norm_eps: float = 1e-6
    # No dropout: the corpus is generated, large and deduplicated; we stop early, we do not regularize.
    dropout: float = 0.0
    # Output head tied to the token embedding (same storage): saves vocab x d_model = 4.2M params.
    tie_embeddings: bool = True
    # The text form of a pair the model reads and writes (p2t_core.llm.pairform): 2 = canonical unit name, tensor
    # ranks in the prompt, targets without the library helpers (38% fewer tokens at the median). It is a
    # property of the weights, so it lives here and travels with every checkpoint. 3 = 2 with the prompt in
    # three-address form numbered like the kernels (p2t_core.llm.flatten): format-2 weights dropped nested operations.
    # 4 = 3 in the kernels' order, constants folded (the shipped weights are format 3; new runs write 4).
    pair_format: int = PAIR_FORMAT

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")
        if (self.d_model // self.n_head) % 2:
            raise ValueError("RoPE needs an even head size")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass
class TrainConfig:
    # 24 sequences x 4 accumulation steps = 96 per optimizer step: with ~1k-token pairs that is
    # ~100k tokens per step; 24 x 2048 fits an H100 in bf16 without activation checkpointing.
    micro_batch: int = 24
    grad_accum: int = 4
    # ~5000 steps x 96 pairs: several epochs of a 100k-pair corpus, where the validation loss flattens.
    max_steps: int = 5000
    # Muon's learning rate is in units of "spectral norm per step"; 0.02 is the value Muon was tuned
    # at for models of this size, momentum 0.95 with Nesterov likewise.
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    muon_weight_decay: float = 0.01
    # AdamW drives the embedding (tied head), norms and biases: 3e-3 is safe for a 512-wide
    # embedding; beta2 0.95 reacts quickly to the loss spikes of early training.
    adam_lr: float = 3e-3
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8
    # No decay on the embedding, norms and biases (decaying gains and embeddings hurts).
    adam_weight_decay: float = 0.0
    # "muon": Muon for the hidden matrices, AdamW for the rest (the default). "adamw": AdamW for everything,
    # the baseline of the controlled comparison (docs/BENCHMARKS.md); its hidden matrices get the usual
    # GPT-style AdamW settings below rather than Muon's.
    optimizer: str = "muon"
    adamw_hidden_lr: float = 2e-3
    adamw_hidden_weight_decay: float = 0.1
    # Linear warmup for 200 steps (Adam's moments settle), then cosine to 10% of peak.
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1
    # Clip the global gradient norm at 1.0: the cheap insurance against a bad batch.
    grad_clip: float = 1.0
    # Validate every 250 steps on 20 micro-batches of each held-out split: a few seconds each time.
    eval_interval: int = 250
    eval_batches: int = 20
    # A checkpoint every 500 steps, keeping the last 2 (each ~0.6 GB with the optimizer state).
    ckpt_interval: int = 500
    keep_checkpoints: int = 2
    log_interval: int = 10
    seed: int = 1337
    # "auto": bf16 autocast where the GPU has it, fp16 + GradScaler where not, fp32 on CPU.
    dtype: str = "auto"
    # torch.compile the model on CUDA (ignored on CPU): measured 510k vs 277k tokens/s for the 50m
    # preset on one H100 (MFU 25% vs 14%), after about a minute of compiling.
    compile: bool = True
    # Sequences are padded to a multiple of 64 tokens: fewer distinct shapes for compiled kernels.
    pad_multiple: int = 64
    # True: each micro-batch's pairs end to end in one row, each attending only to itself (flash varlen attention
    # on the GPU), instead of padded to the longest. It removes the 22% of computed positions that 24 x 4 spends
    # on padding and gives the same loss curve, yet measured slower on an H200 with torch.compile: 622k against
    # 679k tokens/s (docs/BENCHMARKS.md, cause not yet profiled), so padding stays the default.
    pack: bool = False
    # True: cut each step's length-sorted pairs where its micro-batches pad least (rows vary, micro_batch is their
    # mean; the step's pairs and the number of micro-batches do not change) instead of into equal counts: 1.17
    # instead of 1.26 computed positions per real token on the format-9 corpus, 6.8% less GPU time in a profiled
    # step of the same pairs, yet a 1,500-step H100 run trained at 713k tokens/s, no faster than the even cut's
    # 703-718k (an epoch has 343 batch shapes instead of 24; docs/BENCHMARKS.md), so it is opt-in.
    least_padding: bool = False
    # With least_padding: every micro-batch but a step's longest holds a multiple of this many pairs. 8 gives 79
    # distinct batch shapes in 3 epochs of the format-9 corpus instead of 424, at 1.20 positions per real token
    # instead of 1.17 (scripts/padding_report.py). A shape's first use cost ~0.26 s on an H100 (cause not measured;
    # cuDNN's attention plans are the suspect); with its shapes warm this cut ran 108.1 ms a step against the even
    # cut's 113.0 in one process (docs/BENCHMARKS.md). Not yet the default: the one run with it (stopped at step 969)
    # trained at 38.2% MFU against 36-37% before, but its weights are not judged.
    row_multiple: int = 1
    # True: micro-batches stay padded for attention (cuDNN's causal kernels), but everything else (embedding,
    # projections, SwiGLU, norms, the head and loss) computes only the real tokens: on CUDA the RoPE kernel reads the
    # qkv projection's rows straight into the padded layout (rope_kernel.rope_qkv_unpadded; elsewhere they are
    # scattered first) and attention's outputs are gathered back (model.Attention). On the
    # format-9 corpus 1.20 computed positions per real token (least padding, rows x8) become 1.0 outside attention.
    # Packing does that everywhere but needs FlashAttention-2's varlen kernel, 1.34x the time of cuDNN's padded one
    # for the same pairs on an H100 (cuDNN's ragged kernel gives wrong gradients in torch 2.11; docs/BENCHMARKS.md).
    # In one H100 process (docs/BENCHMARKS.md, twenty-seventh session) it ran the same 30 steps at 102.8 against
    # 113.0 ms a step with least padding x8 alone: 791k against 720k tokens/s, 41.2% against 37.5% MFU. But the first
    # full run with it (scripts/train_unpad.json, 1,500 steps, twenty-ninth session) trained at a median 478k tokens/s,
    # 24.5% MFU. On new steps in one H100 process (thirtieth session) it ran 143.5 against least x8's 117.3 ms a step:
    # host time per matmul grew with a new token count N in every micro-batch. N rounded up to a multiple of 256
    # still trained 21% slower than least x8 alone in the real loop (H200, thirty-first session: the GPU idle half the
    # time). With train.cuda_graphs the host cost is gone: N is rounded up to a sixteenth of the slots
    # (data.UNPAD_STEPS, a few shapes to record per batch shape), and a full 1,500-step run with rows x16
    # (scripts/train_cg_unpad.json, H100, thirty-second session) trained at a median 784,870 tokens/s, the fastest
    # yet; over 900 steps in one call it tied least x8 with graphs and no unpad (63.5 s for steps 200-800 each), its
    # shapes still being recorded. Opt-in: not yet judged against a same-call full run without it.
    unpad: bool = False
    # Replay the optimizer step (clip, Muon, AdamW, zero) from one CUDA graph on a GPU (model/step.py): it gives the
    # eager step's parameters, but measured within noise of it (H100 117.8 vs 123.3 ms a step, H200 graph/eager/
    # graph/eager 120.7/127.6/126.1/143.8: the step is GPU-bound, docs/BENCHMARKS.md), so it is opt-in. No effect on
    # CPU, under DDP or a grad scaler.
    graph_step: bool = False
    # With compile on one GPU: torch.compile(mode="reduce-overhead"), the forward and backward of each batch shape
    # replayed from CUDA graphs. In fresh-step profiles the compiled loop is host-bound (the step's ~730 matmuls and
    # the dynamic-shape graphs' Python wrappers: 144 ms a step for 86 ms of kernels on an H200, thirty-first session,
    # docs/BENCHMARKS.md); a replay launches a micro-batch's kernels at once. Each new batch shape is recorded once.
    # In the real loop on one H100 (thirty-second session) it trained at a median 745k against 701k tokens/s with
    # least x8 (steps 200-900), 3.3% less wall time over steps 200-780: on that host the loop was mostly GPU-bound.
    cuda_graphs: bool = False
    # Peak bf16 FLOP/s that MFU is reported against: 720e12 is this project's reference for an H100
    # (below the 989e12 datasheet dense figure, which the card does not sustain); set it per GPU.
    peak_flops: float = 720e12
    # BPE vocabulary target when the tokenizer is trained on the corpus (defaults to model.vocab_size).
    tokenizer_vocab: int | None = None


PRESETS: dict[str, tuple[dict, dict]] = {
    # The shipped model: the dataclass defaults.
    "50m": ({}, {}),
    # A CPU test model of ~0.1M params: two layers of 64, a 512-token vocabulary, a 256 context.
    "tiny": (
        dict(vocab_size=512, context=256, d_model=64, n_layer=2, n_head=4, ffn_hidden=192),
        dict(micro_batch=4, grad_accum=2, max_steps=50, warmup_steps=5, eval_interval=25, eval_batches=2,
             ckpt_interval=25, log_interval=5, muon_lr=0.02, adam_lr=3e-3, pad_multiple=8),
    ),
}


def _build(cls, values: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = dict(values)
    if "adam_betas" in values:
        values["adam_betas"] = tuple(values["adam_betas"])
    return cls(**values)


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """The (model, train) configs of a named preset: `tiny` or `50m`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    m, t = PRESETS[name]
    return _build(ModelConfig, m), _build(TrainConfig, t)


def merge(model: ModelConfig, train: TrainConfig, overrides: dict) -> tuple[ModelConfig, TrainConfig]:
    """Apply `{"model": {...}, "train": {...}}` on top of configs; unknown keys are an error."""
    unknown = sorted(set(overrides) - {"model", "train"})
    if unknown:
        raise ValueError(f"config file: unknown top-level keys {unknown}; expected tables 'model' and 'train'")
    m = _build(ModelConfig, {**asdict(model), **overrides.get("model", {})})
    t = _build(TrainConfig, {**asdict(train), **overrides.get("train", {})})
    return m, t


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or TOML config file into `{"model": {...}, "train": {...}}`."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def to_dict(cfg) -> dict:
    return asdict(cfg)


def model_config_from_dict(d: dict) -> ModelConfig:
    return _build(ModelConfig, {"pair_format": 1, **d})  # configs saved before the field were trained on format 1


def train_config_from_dict(d: dict) -> TrainConfig:
    return _build(TrainConfig, d)
