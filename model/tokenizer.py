"""Byte-level BPE over the corpus (prompts and targets), with the four special tokens of the format

    <|py|> canonical Python <|triton|> Triton module <|end|>      (<|pad|> fills batches)

Byte-level means any text round-trips exactly, whatever characters it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, PY, TRITON, END = "<|pad|>", "<|py|>", "<|triton|>", "<|end|>"
SPECIALS = [PAD, PY, TRITON, END]  # ids 0..3, in this order
TOKENIZER_FILE = "tokenizer.json"
# Pieces that BPE merges within, never across: an identifier or dotted name with the `(`, `[` or `=` after it
# (`tl.load(`, `mask=`), a number, blank lines with the next line's indentation, a run of operators or
# punctuation with one space on each side at most (`, `, ` + `), other space runs. GPT-2's split, which cut
# `In0_X_ptr` into five pieces, ran out of merges at ~2,100 tokens here and made pairs 1.5x longer
# (docs/BENCHMARKS.md, data section). A single leading space stays with the piece after it.
CODE_PIECES = (r" ?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*[(\[=]?| ?[0-9][0-9.]*(?:[eE][-+]?[0-9]+)?"
               r"|\n+[ ]*| ?[^\sA-Za-z0-9_]+ ?| +|\s")


class P2TTokenizer:
    def __init__(self, tok: Tokenizer):
        self.tok = tok
        ids = [tok.token_to_id(s) for s in SPECIALS]
        if any(i is None for i in ids):
            raise ValueError(f"tokenizer lacks special tokens {SPECIALS}")
        self.pad_id, self.py_id, self.triton_id, self.end_id = ids

    # --- building, saving, loading -------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> P2TTokenizer:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(CODE_PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def train_on_jsonl(cls, path: str | Path, vocab_size: int = 8192, pair_format: int | None = None
                       ) -> P2TTokenizer:
        """Train on the prompts and targets of a JSONL split (train.jsonl), in the text form the model sees
        (`p2t_core.llm.pairform`; default: the current pair format)."""
        from p2t_core.llm.pairform import PAIR_FORMAT, pair_texts

        def texts():
            with open(path) as f:
                for line in f:
                    if line.strip():
                        yield from pair_texts(json.loads(line), pair_format or PAIR_FORMAT)

        return cls.train(texts(), vocab_size=vocab_size)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json (path may be the file or its directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        self.tok.save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> P2TTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        return cls(Tokenizer.from_file(str(path)))

    def to_str(self) -> str:
        return self.tok.to_str()

    @classmethod
    def from_str(cls, s: str) -> P2TTokenizer:
        return cls(Tokenizer.from_str(s))

    # --- encoding ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Plain text to ids. A special token's spelling inside the text (a string literal "<|end|>")
        is encoded as ordinary bytes, never as the control token, so decoding gives the text back."""
        if not any(s in text for s in SPECIALS):
            return self.tok.encode(text, add_special_tokens=False).ids
        ids, rest = [], text
        while rest:
            at = min(((rest.find(s), s) for s in SPECIALS if s in rest), default=(-1, ""))
            if at[0] < 0:
                ids += self.tok.encode(rest, add_special_tokens=False).ids
                break
            i, special = at
            for piece in (rest[:i], special[:2], special[2:]):  # "<|" and "end|>" are not special
                if piece:
                    ids += self.tok.encode(piece, add_special_tokens=False).ids
            rest = rest[i + len(special):]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def encode_prompt(self, prompt: str) -> list[int]:
        """What the model is given at inference: <|py|> prompt <|triton|>."""
        return [self.py_id, *self.encode(prompt), self.triton_id]

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        out = [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]
        for i, text in enumerate(texts):
            if "<|" in text:  # rare: redo with special-token spellings escaped
                out[i] = self.encode(text)
        return out

    def encode_pair(self, prompt: str, target: str) -> tuple[list[int], list[int]]:
        """ids of <|py|> prompt <|triton|> target <|end|>, and a mask that is 1 on target and <|end|> only."""
        p, t = self.encode_prompt(prompt), [*self.encode(target), self.end_id]
        return p + t, [0] * len(p) + [1] * len(t)

    def encode_pairs(self, prompts: list[str], targets: list[str]) -> list[tuple[list[int], list[int]]]:
        """encode_pair for many pairs at once (the Rust side encodes in parallel)."""
        ps = self._encode_many(prompts)
        ts = self._encode_many(targets)
        out = []
        for p, t in zip(ps, ts, strict=True):
            p_ids = [self.py_id, *p, self.triton_id]
            t_ids = [*t, self.end_id]
            out.append((p_ids + t_ids, [0] * len(p_ids) + [1] * len(t_ids)))
        return out
