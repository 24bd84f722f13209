"""Draft tables and speculative greedy decoding: the same tokens as plain greedy decoding, in fewer passes."""

from __future__ import annotations

import pytest
import torch
from p2t_model.config import preset
from p2t_model.drafts import DraftTable
from p2t_model.model import MinimalLLM


def chaotic_model(seed=0):
    """A tiny model with large weights: its greedy tokens vary, so a wrongly kept draft token would show."""
    torch.manual_seed(seed)
    model = MinimalLLM(preset("tiny")[0]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(25.0 if p.ndim == 2 else 1.0)
    return model


class CountingPasses:
    def __init__(self, model):
        self.n = 0
        model.register_forward_pre_hook(self)

    def __call__(self, _module, _args):
        self.n += 1


def test_build_keeps_the_most_frequent_continuation_of_runs_seen_often_enough():
    seqs = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [1, 2, 3, 9, 9, 9], [8, 8, 8, 8]]
    table = DraftTable.build(seqs, context=3, length=2, min_count=2)
    assert table.propose([0, 1, 2, 3]) == [4, 5]  # 2 of the 3 runs after (1, 2, 3)
    assert table.propose([2, 3, 4]) == [5, 6]  # (5, 6) and (5, 7) once each: the first seen wins the tie
    assert table.propose([9, 9, 9]) == []  # seen once
    assert table.propose([8, 8]) == []  # shorter than the context


def test_a_table_round_trips_and_a_foreign_file_is_refused(tmp_path):
    table = DraftTable.build([[5, 6, 7, 8, 9]] * 2, context=2, length=3)
    table.save(tmp_path / "d.safetensors")
    back = DraftTable.load(tmp_path / "d.safetensors", vocab_size=10)
    assert back.propose([5, 6]) == [7, 8, 9] and back.propose([8, 9]) == [] and len(back) == len(table)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        DraftTable.load(tmp_path / "d.safetensors", vocab_size=8)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="not a draft table"):
        DraftTable.load(tmp_path / "junk.safetensors", vocab_size=10)


def test_drafted_greedy_decoding_writes_plain_greedy_tokens_in_fewer_passes():
    model = chaotic_model(5)
    prompt = [7, 3, 9, 11, 2, 5]
    plain = model.generate(prompt, 40)[0]
    assert len(set(plain)) > 3
    good = DraftTable.build([prompt + plain], context=2, length=6, min_count=1)  # drafts that hold
    torch.manual_seed(0)
    wrong = DraftTable(torch.randint(4, 512, (2000, 2)), torch.randint(4, 512, (2000, 6)))  # drafts that do not
    passes = CountingPasses(model)
    assert model.generate(prompt, 40, drafts=good)[0] == plain
    assert passes.n < 20  # a prefill and < 20 passes for 40 tokens (plain greedy: a prefill and 39)
    assert model.generate(prompt, 40, drafts=wrong)[0] == plain
    assert model.generate(prompt, 7, drafts=good)[0] == plain[:7]  # the length limit cuts inside a draft


def test_drafted_decoding_stops_where_greedy_stops_also_inside_a_draft():
    model = chaotic_model(6)
    prompt = [4, 8, 15, 16, 23, 42]
    plain = model.generate(prompt, 30)[0]
    stop = next(t for i, t in enumerate(plain) if i >= 5 and t not in plain[:i])  # first seen at position >= 5
    expected = plain[:plain.index(stop)]
    table = DraftTable.build([prompt + plain], context=2, length=8, min_count=1)  # the stop token inside drafts
    assert model.generate(prompt, 30, stop_id=stop, drafts=table)[0] == expected
    assert model.generate(prompt, 30, stop_id=stop)[0] == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_drafted_decoding_as_a_cuda_graph_writes_the_eager_tokens():
    model = chaotic_model(7).cuda()
    prompt = [7, 3, 9, 11, 2, 5]
    plain = model.generate(prompt, 40, cuda_graph=False)[0]
    table = DraftTable.build([prompt + plain], context=2, length=8, min_count=1)
    assert model.generate(prompt, 40, drafts=table)[0] == plain
    assert model.generate(prompt, 40, drafts=table, cuda_graph=False)[0] == plain
