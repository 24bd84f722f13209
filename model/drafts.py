"""Draft tables: what the training targets usually say next, for speculative greedy decoding.

Most of a translation is text the corpus repeats: the kernel's signature, offsets and masks, loads and stores, the
launcher. For every CONTEXT-token run in a sample of the training targets, a `DraftTable` keeps the LENGTH tokens
that most often followed it. Greedy decoding with a table (`MinimalLLM.generate(drafts=...)`) proposes them after
each token, and one forward pass scores the token and its draft together; the draft's prefix that the model's own
argmax agrees with is kept, and the model's next token after it. The output is greedy decoding's: a draft only
saves passes, so a stale or even a wrong table costs speed, never correctness. Measured on the shipped weights
(2-core CPU, int8): 5.1-5.5 tokens a pass on real units, against 1.2-1.3 when drafting from the unit's own text.

Stored beside the weights as `drafts.safetensors` (int32 tensors `keys` (M, CONTEXT) and `drafts` (M, LENGTH),
-1 past a draft's end; no pickle). Built by `python -m p2t_model.drafts DATA WEIGHTS` from DATA/train.jsonl in the
weights' tokenizer and pair format.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

DRAFTS_FILE = "drafts.safetensors"
# Three tokens of context: two were ambiguous too often (`, mask=` follows many things), four cut the table's
# coverage; eight tokens of draft: a pass that scores nine tokens costs about what one costs on a GPU (launch-bound)
# and ~1.2x on the CPU, and the drafts that hold are often that long.
CONTEXT = 3
LENGTH = 8


class DraftTable:
    def __init__(self, keys: torch.Tensor, drafts: torch.Tensor):
        if keys.dim() != 2 or drafts.dim() != 2 or keys.shape[0] != drafts.shape[0]:
            raise ValueError(f"a draft table is keys (M, n) and drafts (M, k); got {tuple(keys.shape)} and "
                             f"{tuple(drafts.shape)}")
        self.context, self.length = keys.shape[1], drafts.shape[1]
        self.keys, self.drafts = keys.to(torch.int32), drafts.to(torch.int32)
        self._next = {tuple(k): [t for t in d if t >= 0]
                      for k, d in zip(self.keys.tolist(), self.drafts.tolist(), strict=True)}

    def __len__(self) -> int:
        return len(self._next)

    def propose(self, tokens: list[int]) -> list[int]:
        """The draft after `tokens` (empty where the table has none)."""
        return self._next.get(tuple(tokens[-self.context:]), []) if len(tokens) >= self.context else []

    @classmethod
    def build(cls, sequences: Iterable[list[int]], context: int = CONTEXT, length: int = LENGTH,
              min_count: int = 2) -> DraftTable:
        """The most frequent `length`-token continuation of every `context`-token run seen `min_count` times."""
        follow: dict[tuple, Counter] = defaultdict(Counter)
        for ids in sequences:
            for i in range(context, len(ids)):
                follow[tuple(ids[i - context:i])][tuple(ids[i:i + length])] += 1
        rows = [(key, c.most_common(1)[0][0]) for key, c in follow.items() if c.total() >= min_count]
        keys = torch.tensor([k for k, _ in rows], dtype=torch.int32).view(-1, context)
        drafts = torch.full((len(rows), length), -1, dtype=torch.int32)
        for i, (_, d) in enumerate(rows):
            drafts[i, :len(d)] = torch.tensor(d, dtype=torch.int32)
        return cls(keys, drafts)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        save_file({"keys": self.keys.contiguous(), "drafts": self.drafts.contiguous()}, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, vocab_size: int) -> DraftTable:
        """Refuses a file that is not a table of this vocabulary's tokens (ValueError)."""
        try:
            t = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same refusal
            raise ValueError(f"{path}: not a draft table ({e})") from e
        if set(t) != {"keys", "drafts"}:
            raise ValueError(f"{path}: not a draft table (tensors {sorted(t)})")
        keys, drafts = t["keys"], t["drafts"]
        if keys.numel() and (keys.min() < 0 or keys.max() >= vocab_size or drafts.max() >= vocab_size):
            raise ValueError(f"{path}: token ids outside the vocabulary of {vocab_size}")
        return cls(keys, drafts)


def target_sequences(data_dir: str | Path, tokenizer, pair_format: int, limit: int, seed: int = 0):
    """The token ids of up to `limit` training targets (a seeded sample), in the model's text form."""
    from p2t_core.llm.pairform import pair_texts

    lines = [line for line in (Path(data_dir) / "train.jsonl").read_text().splitlines() if line.strip()]
    for line in random.Random(seed).sample(lines, min(limit, len(lines))):
        _, target = pair_texts(json.loads(line), pair_format)
        yield tokenizer.encode(target)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Build the draft table of a weights directory from a training split.")
    ap.add_argument("data", help="a data directory (train.jsonl) built by `p2t data build`")
    ap.add_argument("weights", help="the weights directory (its tokenizer and pair format); the table is written there")
    ap.add_argument("--pairs", type=int, default=20000, help="training targets to sample (the table saturates)")
    args = ap.parse_args(argv)
    from p2t_core.llm.engine import load_decoder

    decoder = load_decoder(args.weights, "cpu")  # either weights format: its tokenizer and pair format
    table = DraftTable.build(target_sequences(args.data, decoder.tokenizer, decoder.pair_format, args.pairs))
    table.save(Path(args.weights) / DRAFTS_FILE)
    print(f"wrote {Path(args.weights) / DRAFTS_FILE}: {len(table)} contexts from {args.pairs} targets")


if __name__ == "__main__":
    main()
