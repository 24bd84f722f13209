"""Loading the (Python, Triton) pairs and batching them.

A data directory holds `train.jsonl`, `valid_random.jsonl` and `valid_compositional.jsonl`; each line is `{"prompt",
"target", "ranks", "family", "style", "hash", ...}`. Each pair is turned into the text the model reads and writes
(`p2t_core.llm.pairform`, the config's pair format) and tokenized once; pairs longer than the context are dropped
(and counted), and batches are length-bucketed within an optimizer step: shuffle by seed, cut into steps of `group`
batches (the micro-batches of one step over all ranks), sort each step's pairs by length and cut it into its
batches. A step is a random sample of the corpus whatever the accumulation, so 24 x 4 accumulated and one batch of
96 see the very same pairs at every step (bucketing whole windows instead made each true batch one length band,
mostly one op family, and trained far worse: docs/BENCHMARKS.md); sorting inside the step keeps the padding of
micro-batches small. With `least_padding` the sorted step is cut where its micro-batches pad least
(`least_padding_cuts`: short pairs in more rows, long ones in fewer) instead of into equal counts: on the 52k-pair
format-9 sample, 24 x 4 computes 1.26 positions per real token cut evenly and 1.17 cut this way (attention's T^2
work 1.56 and 1.32), but trained no faster (`TrainConfig.least_padding`). With `packed`, a micro-batch is instead
its pairs laid end to end in one row (`collate_packed`): no padding at all, each pair attending only to itself
(`cu_seqlens`) and seeing RoPE positions from 0 (`positions`), so it computes what the padded batch does. The batch
stream is the concatenation of these epoch plans, and the loader's position is one integer: the number of batches
the whole job has consumed (over all ranks), so a checkpoint resumes it exactly. With `rank`/`world_size` (torchrun
/ DDP) the ranks take consecutive batches of the same stream, rank r the r-th of each group of world_size: at every
micro-step their batches are disjoint and together are exactly the batches a single process takes in world_size
micro-steps, and a position means the same for any world size, so a run checkpointed on N ranks resumes on M.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from p2t_core.llm.pairform import PAIR_FORMAT, pair_texts

from .model import IGNORE_INDEX
from .tokenizer import P2TTokenizer

SPLITS = ("train", "valid_random", "valid_compositional")


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}") from None
            if "prompt" not in row or "target" not in row:
                raise ValueError(f"{path}:{n}: a pair needs 'prompt' and 'target'")
            rows.append(row)
    return rows


def model_texts(rows: list[dict], pair_format: int) -> list[tuple[str, str]]:
    """Each row's (prompt, target) as the model sees them; a large split in worker processes (~1 ms a row in one
    process: ~50 s for the 50k corpus, a few seconds on a GPU host's cores)."""
    if len(rows) < 8192 or (os.cpu_count() or 1) < 4:
        return [pair_texts(r, pair_format) for r in rows]
    with multiprocessing.get_context("fork").Pool(min(16, os.cpu_count())) as pool:
        return pool.starmap(pair_texts, [(r, pair_format) for r in rows], chunksize=256)


class PairDataset:
    """Tokenized pairs of one split, stored compactly: all tokens in one flat tensor (int16 when the
    vocabulary allows: 2 bytes a token, not a Python int's ~36), with per-pair offsets and the index
    where each pair's target begins. `dropped` counts the pairs that do not fit the context."""

    def __init__(self, rows: list[dict], tokenizer: P2TTokenizer, context: int, name: str = "",
                 chunk: int = 4096, pair_format: int = PAIR_FORMAT):
        self.name = name
        dtype = torch.int16 if tokenizer.vocab_size <= 32767 else torch.int32
        parts: list[torch.Tensor] = []
        self.offsets = [0]  # pair i is tokens[offsets[i]:offsets[i + 1]]
        self.target_start: list[int] = []  # index (within the pair) of its first target token
        self.meta: list[dict] = []
        self.dropped = 0
        texts = model_texts(rows, pair_format)
        for c in range(0, len(rows), chunk):  # bounded peak memory for large splits
            block, block_texts = rows[c:c + chunk], texts[c:c + chunk]
            encoded = tokenizer.encode_pairs([p for p, _ in block_texts], [t for _, t in block_texts])
            for row, (ids, mask) in zip(block, encoded, strict=True):
                if len(ids) - 1 > context:  # the model reads ids[:-1] and predicts ids[1:]
                    self.dropped += 1
                    continue
                parts.append(torch.tensor(ids, dtype=dtype))
                self.offsets.append(self.offsets[-1] + len(ids))
                self.target_start.append(mask.index(1))
                self.meta.append({k: row.get(k) for k in ("family", "style", "hash")})
        self.tokens = torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)
        self.lengths = input_lengths(self.offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def ids(self, i: int) -> torch.Tensor:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]].long()

    def pair(self, i: int) -> tuple[list[int], list[int]]:
        """(ids, loss mask) of pair i, as encode_pair gave them."""
        ids = self.ids(i).tolist()
        t = self.target_start[i]
        return ids, [0] * t + [1] * (len(ids) - t)

    @property
    def n_tokens(self) -> int:
        return sum(self.lengths)

    def save(self, path: Path) -> None:
        """Write the tokenized split as one safetensors file (no pickle), atomically: temp file, then rename."""
        tensors = {"tokens": self.tokens, "offsets": torch.tensor(self.offsets, dtype=torch.int64),
                   "target_start": torch.tensor(self.target_start, dtype=torch.int64)}
        header = {"name": self.name, "dropped": str(self.dropped), "meta": json.dumps(self.meta)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PairDataset:
        ds = cls.__new__(cls)
        with safe_open(path, "pt") as f:
            header = f.metadata()
            ds.tokens, ds.offsets = f.get_tensor("tokens"), f.get_tensor("offsets").tolist()
            ds.target_start = f.get_tensor("target_start").tolist()
        ds.name, ds.dropped, ds.meta = header["name"], int(header["dropped"]), json.loads(header["meta"])
        ds.lengths = input_lengths(ds.offsets)
        return ds


def input_lengths(offsets: list[int]) -> list[int]:
    """Each pair's input length (the model reads all of its tokens but the last) from the pairs' token offsets."""
    return [b - a - 1 for a, b in zip(offsets, offsets[1:], strict=False)]


def token_cache_path(path: Path, tokenizer: P2TTokenizer, context: int, pair_format: int) -> Path:
    """Where a split's tokenized pairs are kept (`DIR/.tokens/`), named by what they depend on: the file's content
    (sha256, where a modification time can miss a rewrite; hashing the 2 GB of the 200k corpus is part of its
    2.2 s cached load), the tokenizer, the context (which pairs are dropped) and the pair format."""
    with open(path, "rb") as f:
        content = hashlib.file_digest(f, "sha256").hexdigest()
    key = "\n".join([path.name, content, tokenizer.to_str(), str(context), str(pair_format)])
    return path.parent / ".tokens" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"


def load_split(data_dir: str | Path, split: str, tokenizer: P2TTokenizer, context: int,
               pair_format: int = PAIR_FORMAT) -> PairDataset | None:
    """The split's dataset, or None when its file is absent (held-out splits are optional). Tokenized once per
    (file, tokenizer, context, format) and kept beside the data: the 200k corpus's three splits load in 87.2 s
    the first time and 2.2 s from the cache on the 16-core H200 host (docs/BENCHMARKS.md), which every call of a
    run resumed over several calls would otherwise pay again."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.exists():
        if split == "train":
            raise FileNotFoundError(f"no {path}: the data directory needs train.jsonl (see `p2t data build`)")
        return None
    cache = token_cache_path(path, tokenizer, context, pair_format)
    if cache.exists():
        try:
            return PairDataset.load(cache)
        except (OSError, ValueError, KeyError, SafetensorError):
            pass  # a damaged cache is rebuilt below
    ds = PairDataset(read_jsonl(path), tokenizer, context, name=split, pair_format=pair_format)
    try:
        ds.save(cache)
    except OSError:
        pass  # a read-only data directory: tokenize each time
    return ds


@dataclass
class Batch:
    x: torch.Tensor  # (B, T) input ids, pad-filled; packed: (1, N), the pairs end to end
    y: torch.Tensor  # (B, T) next-token targets, IGNORE_INDEX on prompt tokens and padding
    n_tokens: int  # real (non-pad) input tokens
    n_targets: int  # positions that carry loss
    attn_span: float  # the attention term of the FLOPs per token (MFU): sum(len^2) / sum(len) over the pairs, padded
    # or packed alike, so attention over padding is not counted as model work
    positions: torch.Tensor | None = None  # packed: (1, N) each token's position within its pair
    cu_seqlens: torch.Tensor | None = None  # packed: (n + 1,) int32 offsets where each segment starts
    keep: torch.Tensor | None = None  # unpadded: (N,) the flat slots of x's real tokens, the only ones computed

    def to(self, device) -> Batch:
        cuda = torch.device(device).type == "cuda"

        def move(t):  # through pinned memory: CUDA may make a copy from pageable memory wait for the stream first
            if t is None:
                return None
            return t.pin_memory().to(device, non_blocking=True) if cuda else t.to(device)

        return dataclasses.replace(self, x=move(self.x), y=move(self.y), positions=move(self.positions),
                                   cu_seqlens=move(self.cu_seqlens), keep=move(self.keep))

    def model_inputs(self) -> dict:
        """The keyword arguments of `MinimalLLM.forward` besides the ids and targets."""
        return {"positions": self.positions, "cu_seqlens": self.cu_seqlens, "keep": self.keep}


def padded_length(n: int, pad_multiple: int, context: int | None = None) -> int:
    """`n` tokens rounded up to a multiple of pad_multiple (fewer distinct shapes for compiled kernels), at most
    `context`."""
    n = -(-n // pad_multiple) * pad_multiple
    return n if context is None else min(n, context)


# An unpadded batch computes its real tokens plus padding slots up to the next of this many equal steps of its B * T
# slots. With the exact count N nearly every micro-batch is a new shape for the matmuls (2,652 distinct N in the
# 2,945 micro-batches of an epoch of the 70k long-chain mix), and on new steps an H100 profile spent 52.6 us of host
# time per aten::mm unpadded against 36.6 us padded (thirtieth session, docs/BENCHMARKS.md). A multiple of 256
# repeated shapes but still gave 119 an epoch, each a new CUDA-graph recording under train.cuda_graphs; steps of a
# sixteenth of the slots bound the shapes per batch shape (128 over two epochs of that mix with rows x16, against 47
# padded) for 3.9% more computed tokens than the real ones (scripts/padding_report.py).
UNPAD_STEPS = 16


def unpadded_count(n: int, slots: int, steps: int = UNPAD_STEPS) -> int:
    """Tokens an unpadded batch of n real tokens in `slots` padded slots computes: n rounded up to a multiple of
    slots / steps (rounded up), at most `slots`."""
    return padded_length(n, -(-slots // steps), slots)


def attention_span(lengths: list[int]) -> float:
    """Batch.attn_span of pairs of these lengths: sum(len^2) / sum(len), whether they are padded or packed."""
    return sum(t * t for t in lengths) / max(1, sum(lengths))


def collate(ds: PairDataset, index: list[int], pad_id: int, pad_multiple: int, context: int,
            unpad: bool = False, unpad_steps: int = UNPAD_STEPS) -> Batch:
    """The pairs padded at the end to one length T (B, T); with `unpad`, also `keep`, the slots row * T + i of
    their real tokens, so the model computes only those (and attention in this padded layout), then padding slots
    up to the next of unpad_steps equal steps of the B * T slots (their targets are ignored; causal attention keeps
    them out of real tokens; unpad_steps >= B * T: the real tokens alone)."""
    lengths = [ds.lengths[i] for i in index]
    T = padded_length(max(lengths), pad_multiple, context)
    x = torch.full((len(index), T), pad_id, dtype=torch.long)
    y = torch.full((len(index), T), IGNORE_INDEX, dtype=torch.long)
    for row, i in enumerate(index):
        ids = ds.ids(i)
        n = len(ids) - 1
        x[row, :n] = ids[:-1]
        y[row, :n] = ids[1:]
        y[row, :ds.target_start[i] - 1] = IGNORE_INDEX  # targets before the first target token: the prompt
    n = sum(lengths)
    keep = None
    if unpad:  # the real slots in row order, then the first padding slots up to the rounded count
        real = (torch.arange(T) < torch.tensor(lengths)[:, None]).view(-1)  # (B * T,)
        extra = unpadded_count(n, x.numel(), unpad_steps) - n
        keep = torch.cat([real.nonzero()[:, 0], (~real).nonzero()[:extra, 0]])
    return Batch(x, y, n_tokens=n, n_targets=int((y != IGNORE_INDEX).sum()), attn_span=attention_span(lengths),
                 keep=keep)


def collate_packed(ds: PairDataset, index: list[int], pad_id: int, pad_multiple: int) -> Batch:
    """The pairs end to end in one row (1, N): a pair's inputs ids[:-1] and targets ids[1:] side by side, so no
    target crosses into the next pair. N is rounded up to pad_multiple by one padding segment of its own."""
    lengths = [ds.lengths[i] for i in index]
    n = sum(lengths)
    N = padded_length(n, pad_multiple)
    x = torch.full((N,), pad_id, dtype=torch.long)
    y = torch.full((N,), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros(N, dtype=torch.long)
    starts = [0]
    for i, length in zip(index, lengths, strict=True):
        a = starts[-1]
        ids = ds.ids(i)
        x[a:a + length] = ids[:-1]
        y[a + ds.target_start[i] - 1:a + length] = ids[ds.target_start[i]:]  # the prompt's targets stay ignored
        positions[a:a + length] = torch.arange(length)
        starts.append(a + length)
    if N > n:
        positions[n:] = torch.arange(N - n)
        starts.append(N)
    return Batch(x[None], y[None], n_tokens=n, n_targets=int((y != IGNORE_INDEX).sum()),
                 attn_span=attention_span(lengths), positions=positions[None],
                 cu_seqlens=torch.tensor(starts, dtype=torch.int32))


def least_padding_cuts(lengths: list[int], parts: int, pad_multiple: int, max_tokens: int,
                       min_rows: int, row_multiple: int = 1) -> list[int]:
    """The ends of `parts` consecutive micro-batches of length-sorted pairs (`lengths` ascending) that compute the
    fewest padded positions (rows x the longest, rounded up to pad_multiple): a dynamic program over the cut points.
    No micro-batch computes more than max_tokens positions (what an even cut may, micro_batch x context: the same
    memory bound) or holds fewer than min_rows pairs where the pairs allow it (a few long rows fill the GPU's
    matmuls poorly, and a batch of one is another compiled graph). Each micro-batch but the last (longest) holds a
    multiple of row_multiple pairs: fewer distinct batch shapes (a shape's first use costs time on the GPU)."""
    n = len(lengths)
    min_rows = max(1, min(min_rows, n // parts))
    padded = [padded_length(t, pad_multiple) for t in lengths]
    rows = torch.arange(n + 1)[None, :] - torch.arange(n + 1)[:, None]  # rows[i, j]: pairs i..j-1
    cost = rows * torch.tensor([0] + padded)[None, :]  # the batch i..j-1 padded to its last (longest) pair
    uneven = (rows % row_multiple != 0) & (torch.arange(n + 1) < n)[None, :]  # the last batch takes what is left
    cost = cost.double().masked_fill((rows < min_rows) | (cost > max_tokens) | uneven, float("inf"))
    best = torch.full((n + 1,), float("inf"), dtype=torch.float64)
    best[0] = 0.0
    starts = []
    for _ in range(parts):  # best[j]: the least positions for pairs 0..j-1 in the parts so far
        best, start = (best[:, None] + cost).min(dim=0)
        starts.append(start)
    if not torch.isfinite(best[n]):
        raise ValueError(f"{n} pairs do not fit {parts} micro-batches of at most {max_tokens} positions")
    ends, j = [], n
    for start in reversed(starts):
        ends.append(j)
        j = int(start[j])
    return ends[::-1]


class BatchLoader:
    """An endless, resumable, shardable stream of length-bucketed batches over one dataset."""

    def __init__(self, ds: PairDataset, batch_size: int, pad_id: int, context: int, *, seed: int = 0,
                 shuffle: bool = True, group: int = 1, pad_multiple: int = 64, rank: int = 0, world_size: int = 1,
                 packed: bool = False, least_padding: bool = False, row_multiple: int = 1, unpad: bool = False):
        if len(ds) == 0:
            raise ValueError(f"split {ds.name or '?'} has no pairs that fit the context of {context} tokens")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.ds, self.batch_size, self.pad_id, self.context = ds, batch_size, pad_id, context
        self.seed, self.shuffle, self.group, self.pad_multiple = seed, shuffle, group, pad_multiple
        self.rank, self.world_size, self.packed, self.least_padding = rank, world_size, packed, least_padding
        if packed and unpad:
            raise ValueError("a batch is either packed or padded (and maybe unpadded), not both")
        self.row_multiple, self.unpad = row_multiple, unpad
        self.consumed = 0  # batches of the stream taken so far by all ranks together
        self._plan_epoch: int | None = None
        self._plan: list[list[int]] = []
        self.batches_per_epoch = len(self.epoch_plan(0))  # the same every epoch: only the order changes

    def epoch_plan(self, epoch: int) -> list[list[int]]:
        """The batches (lists of pair indices) of an epoch, for all ranks; a pure function of (seed, epoch)."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.ds)))
        if self.shuffle:
            rng.shuffle(order)
        span = self.batch_size * self.group  # the pairs of one optimizer step
        batches = []
        for s in range(0, len(order), span):
            step = sorted(order[s:s + span], key=lambda i: self.ds.lengths[i])
            parts = -(-len(step) // self.batch_size)  # as many as an even cut: the stream's positions keep meaning
            if self.least_padding:
                ends = least_padding_cuts([self.ds.lengths[i] for i in step], parts, self.pad_multiple,
                                          self.batch_size * self.context, min_rows=self.batch_size // 3,
                                          row_multiple=self.row_multiple)
            else:
                ends = [min(len(step), (p + 1) * self.batch_size) for p in range(parts)]
            batches += [step[a:e] for a, e in zip([0] + ends, ends, strict=False)]
        return batches

    def _plan_of(self, epoch: int) -> list[list[int]]:
        if self._plan_epoch != epoch:
            self._plan, self._plan_epoch = self.epoch_plan(epoch), epoch
        return self._plan

    def batch_index(self, g: int) -> list[int]:
        """The pair indices of batch g of the stream (epoch g // batches_per_epoch)."""
        epoch, i = divmod(g, self.batches_per_epoch)
        return self._plan_of(epoch)[i]

    @property
    def epoch(self) -> int:
        return self.consumed // self.batches_per_epoch

    @property
    def cursor(self) -> int:  # batches of the current epoch consumed, by all ranks
        return self.consumed % self.batches_per_epoch

    def __len__(self) -> int:  # batches per epoch, over all ranks
        return self.batches_per_epoch

    def next_batch(self) -> Batch:
        """This rank's next batch: stream batch `consumed + rank`; every rank then advances by world_size."""
        index = self.batch_index(self.consumed + self.rank)
        self.consumed += self.world_size
        if self.packed:
            return collate_packed(self.ds, index, self.pad_id, self.pad_multiple)
        return collate(self.ds, index, self.pad_id, self.pad_multiple, self.context, self.unpad)

    def __iter__(self):
        while True:
            yield self.next_batch()

    def samples(self) -> int:
        """Pairs consumed so far by all ranks together."""
        epoch, i = divmod(self.consumed, self.batches_per_epoch)
        return epoch * len(self.ds) + sum(len(b) for b in self._plan_of(epoch)[:i])

    def state_dict(self) -> dict:
        """The position in global terms (`batches`, `samples`: over all ranks), valid for any world size."""
        return {"batches": self.consumed, "samples": self.samples(), "epoch": self.epoch, "cursor": self.cursor,
                "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        if "batches" in state:
            self.consumed = int(state["batches"])
        else:  # checkpoints before the global position: (epoch, cursor) of a single process
            self.consumed = int(state["epoch"]) * self.batches_per_epoch + int(state["cursor"])


def fixed_batches(ds: PairDataset, batch_size: int, pad_id: int, context: int, n: int, pad_multiple: int = 64,
                  rank: int = 0, world_size: int = 1) -> list[Batch]:
    """The same n batches every time (seeded sample, length-bucketed): for validation losses. With
    world_size > 1, this rank's share (every world_size-th) of the n batches a single process would use."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    loader = BatchLoader(ds, batch_size, pad_id, context, seed=0, shuffle=True, group=n or 1,
                         pad_multiple=pad_multiple)
    plan = loader.epoch_plan(0)[:n][rank::world_size]
    return [collate(ds, index, pad_id, pad_multiple, context) for index in plan]
