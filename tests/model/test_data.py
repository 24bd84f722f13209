"""Loading, the token cache, truncation, bucketing, deterministic and sharded batching, loader position."""

from __future__ import annotations

import itertools

import pytest
import torch
from p2t_model.data import (
    BatchLoader,
    PairDataset,
    collate,
    collate_packed,
    fixed_batches,
    least_padding_cuts,
    load_split,
    read_jsonl,
    token_cache_path,
)
from p2t_model.model import IGNORE_INDEX

from p2t_core.llm.pairform import PAIR_FORMAT, pair_texts


def test_pairs_longer_than_context_are_dropped_and_counted(data_dir, tok, pairs):
    full = load_split(data_dir, "train", tok, context=10_000)
    assert len(full) == 12 and full.dropped == 0
    cut = sorted(full.lengths)[5]
    short = load_split(data_dir, "train", tok, context=cut)
    assert short.dropped == sum(n > cut for n in full.lengths) and len(short) + short.dropped == 12
    assert max(short.lengths) <= cut
    for i in range(len(full)):
        assert full.pair(i) == tok.encode_pair(*pair_texts(pairs[i], PAIR_FORMAT))
    assert load_split(data_dir, "missing", tok, 100) is None
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        load_split(data_dir / "nowhere", "train", tok, 100)


def same_dataset(a: PairDataset, b: PairDataset) -> bool:
    return (a.tokens.equal(b.tokens) and a.tokens.dtype == b.tokens.dtype and a.offsets == b.offsets
            and a.target_start == b.target_start and a.lengths == b.lengths and a.meta == b.meta
            and (a.name, a.dropped) == (b.name, b.dropped))


def test_a_split_is_tokenized_once_and_read_back_from_its_cache(data_dir, tok, monkeypatch):
    first = load_split(data_dir, "train", tok, 10_000)
    cache = token_cache_path(data_dir / "train.jsonl", tok, 10_000, PAIR_FORMAT)
    assert cache.exists() and cache.parent.name == ".tokens"

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    with monkeypatch.context() as patch:
        patch.setattr(PairDataset, "__init__", no_tokenizing)
        again = load_split(data_dir, "train", tok, 10_000)
    assert same_dataset(first, again)
    cut = sorted(first.lengths)[5]  # another context drops other pairs: its own cache
    short = load_split(data_dir, "train", tok, cut)
    assert short.dropped > 0 and token_cache_path(data_dir / "train.jsonl", tok, cut, PAIR_FORMAT) != cache


def test_the_token_cache_follows_the_file_and_survives_damage(data_dir, tok):
    path = data_dir / "train.jsonl"
    first = load_split(data_dir, "train", tok, 10_000)
    cache = token_cache_path(path, tok, 10_000, PAIR_FORMAT)
    cache.write_bytes(cache.read_bytes()[:100])  # truncated: rebuilt, not trusted
    assert same_dataset(load_split(data_dir, "train", tok, 10_000), first)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the file changed: a new key, the new rows
    assert len(load_split(data_dir, "train", tok, 10_000)) == len(first) - 1


def test_collate_shifts_masks_and_pads(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    b = collate(ds, [0, 1, 2], tok.pad_id, pad_multiple=16, context=10_000)
    assert b.x.shape[1] % 16 == 0 and b.x.shape[1] >= max(ds.lengths[:3])
    for row in range(3):
        (ids, mask), n = ds.pair(row), ds.lengths[row]
        assert b.x[row, :n].tolist() == ids[:-1]
        assert (b.x[row, n:] == tok.pad_id).all() and (b.y[row, n:] == IGNORE_INDEX).all()
        expect = [i if m else IGNORE_INDEX for i, m in zip(ids[1:], mask[1:], strict=True)]
        assert b.y[row, :n].tolist() == expect
    assert b.n_targets == sum(sum(ds.pair(i)[1][1:]) for i in range(3))


def test_collate_packed_lays_pairs_end_to_end_with_their_own_positions(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    padded = collate(ds, [0, 1, 2], tok.pad_id, pad_multiple=16, context=10_000)
    b = collate_packed(ds, [0, 1, 2], tok.pad_id, pad_multiple=16)
    n = sum(ds.lengths[:3])
    assert b.x.shape == (1, -(-n // 16) * 16) and b.n_tokens == n
    starts = b.cu_seqlens.tolist()
    assert starts[:4] == [0, ds.lengths[0], ds.lengths[0] + ds.lengths[1], n]
    assert starts[-1] == b.x.shape[1] and len(starts) == (5 if b.x.shape[1] > n else 4)  # padding: its own segment
    for row, (a, e) in enumerate(zip(starts, starts[1:4], strict=False)):  # each pair as its padded row has it
        assert b.x[0, a:e].equal(padded.x[row, :e - a]) and b.y[0, a:e].equal(padded.y[row, :e - a])
        assert b.positions[0, a:e].tolist() == list(range(e - a))
    assert (b.y[0, n:] == IGNORE_INDEX).all() and b.n_targets == padded.n_targets
    assert b.attn_span == padded.attn_span == sum(t * t for t in ds.lengths[:3]) / n  # the pairs' own, not padding


def test_packed_loader_takes_the_same_pairs(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    padded = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=2, group=2)
    packed = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=2, group=2, packed=True)
    for _ in range(5):
        a, b = padded.next_batch(), packed.next_batch()
        assert b.x.shape[0] == 1 and a.n_tokens == b.n_tokens and a.n_targets == b.n_targets
        assert sorted(a.x[a.x != tok.pad_id].tolist()) == sorted(b.x[b.x != tok.pad_id].tolist())


def test_unpadded_batch_keeps_the_slots_of_real_tokens(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    b = collate(ds, [0, 1, 2], tok.pad_id, pad_multiple=16, context=10_000, unpad=True, unpad_steps=1 << 20)
    T = b.x.shape[1]
    real = [row * T + i for row in range(3) for i in range(ds.lengths[row])]
    assert b.keep.tolist() == real and b.n_tokens == len(real)
    kept = torch.zeros(b.x.numel(), dtype=torch.bool)
    kept[b.keep] = True
    assert (b.x.view(-1)[~kept] == tok.pad_id).all() and (b.y.view(-1)[~kept] == IGNORE_INDEX).all()
    rounded = collate(ds, [0, 1, 2], tok.pad_id, pad_multiple=16, context=10_000, unpad=True, unpad_steps=5)
    n, step = len(rounded.keep), -(-rounded.x.numel() // 5)  # the real tokens, then padding up to a fifth of the slots
    assert (n % step == 0 or n == rounded.x.numel()) and n - len(real) < step and rounded.n_tokens == len(real)
    assert rounded.keep[:len(real)].tolist() == real and len(set(rounded.keep.tolist())) == n
    assert (rounded.y.view(-1)[rounded.keep[len(real):]] == IGNORE_INDEX).all()
    whole = collate(ds, [0, 1, 2], tok.pad_id, pad_multiple=16, context=10_000, unpad=True, unpad_steps=1)
    assert sorted(whole.keep.tolist()) == list(range(whole.x.numel()))  # never past the batch's slots
    assert b.model_inputs()["keep"] is b.keep and collate(ds, [0], tok.pad_id, 16, 10_000).keep is None
    with pytest.raises(ValueError, match="packed or padded"):
        BatchLoader(ds, 3, tok.pad_id, 10_000, packed=True, unpad=True)


def test_plan_is_deterministic_by_seed_and_covers_every_pair(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    a = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=1, group=2)
    assert a.epoch_plan(0) == BatchLoader(ds, 3, tok.pad_id, 10_000, seed=1, group=2).epoch_plan(0)
    assert a.epoch_plan(0) != a.epoch_plan(1) or a.epoch_plan(0) != a.epoch_plan(2)
    assert sorted(i for b in a.epoch_plan(0) for i in b) == list(range(12))
    for least_padding in (False, True):
        plan = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=1, group=2, least_padding=least_padding).epoch_plan(0)
        for first, second in zip(plan[::2], plan[1::2], strict=True):  # bucketed within a step: sorted by length
            assert len(first) + len(second) == 6 and (least_padding or len(first) == len(second) == 3)
            assert max(ds.lengths[i] for i in first) <= min(ds.lengths[i] for i in second)


def _padded_positions(lengths, ends, multiple):
    return sum(-(-lengths[e - 1] // multiple) * multiple * (e - a) for a, e in zip([0] + ends, ends, strict=False))


def test_least_padding_cuts_pad_least_within_the_bounds():
    """Against every way to cut 12 sorted lengths in 3: the cut pads least, respects the memory bound and the
    fewest rows, and is never worse than the even cut."""
    lengths = sorted([5, 7, 8, 8, 30, 31, 33, 60, 64, 65, 120, 200])
    ends = least_padding_cuts(lengths, 3, 8, max_tokens=4 * 200, min_rows=2)
    assert len(ends) == 3 and ends[-1] == 12 and ends == sorted(ends)
    allowed = [list(c) + [12] for c in itertools.combinations(range(1, 12), 2)
               if all(e - a >= 2 and -(-lengths[e - 1] // 8) * 8 * (e - a) <= 800
                      for a, e in zip((0, *c), (*c, 12), strict=True))]
    assert ends in allowed
    assert _padded_positions(lengths, ends, 8) == min(_padded_positions(lengths, c, 8) for c in allowed)
    assert _padded_positions(lengths, ends, 8) < _padded_positions(lengths, [4, 8, 12], 8)
    with pytest.raises(ValueError, match="do not fit"):
        least_padding_cuts(lengths, 3, 8, max_tokens=300, min_rows=2)


def test_least_padding_cuts_in_row_multiples_pad_least_among_those_cuts():
    """Rows in multiples of 4 for every micro-batch but the last: the least padding among such cuts of 14 lengths."""
    lengths = sorted([3, 4, 4, 9, 10, 12, 30, 31, 33, 40, 60, 64, 65, 200])
    ends = least_padding_cuts(lengths, 3, 8, max_tokens=10_000, min_rows=1, row_multiple=4)
    allowed = [list(c) + [14] for c in itertools.combinations(range(1, 14), 2)
               if all((e - a) % 4 == 0 for a, e in zip((0, c[0]), c, strict=True))]
    assert ends in allowed
    assert _padded_positions(lengths, ends, 8) == min(_padded_positions(lengths, c, 8) for c in allowed)
    assert _padded_positions(lengths, ends, 8) > _padded_positions(
        lengths, least_padding_cuts(lengths, 3, 8, max_tokens=10_000, min_rows=1), 8)


def test_accumulated_micro_batches_hold_the_pairs_of_the_true_batch(data_dir, tok):
    """Micro-batch 3 x 2 accumulated and one batch of 6 take the same pairs at every step, so the
    accumulation comparison compares accumulation, not data order."""
    ds = load_split(data_dir, "train", tok, 10_000)
    micro = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=5, group=2).epoch_plan(0)
    whole = BatchLoader(ds, 6, tok.pad_id, 10_000, seed=5, group=1).epoch_plan(0)
    assert [sorted(a + b) for a, b in zip(micro[::2], micro[1::2], strict=True)] == [sorted(b) for b in whole]


def test_sharded_loaders_split_the_single_process_stream(data_dir, tok):
    """At each micro-step the ranks' batches together are the batches one process takes in world_size
    micro-steps, across epoch boundaries (4 batches an epoch, 3 ranks), and disjoint within an epoch (the last
    batch of an epoch and the first of the next may hold the same pairs, for one process as for several)."""
    ds = load_split(data_dir, "train", tok, 10_000)
    one = BatchLoader(ds, 3, tok.pad_id, 10_000, seed=3)
    ranks = [BatchLoader(ds, 3, tok.pad_id, 10_000, seed=3, rank=r, world_size=3) for r in range(3)]
    assert len(one) == 4
    for step in range(5):
        got = [loader.next_batch() for loader in ranks]
        want = [one.next_batch() for _ in range(3)]
        assert all(a.x.equal(b.x) and a.y.equal(b.y) for a, b in zip(got, want, strict=True))
        if len({(3 * step + r) // 4 for r in range(3)}) == 1:  # the three global batches of one epoch
            assert len({tuple(map(tuple, b.x.tolist())) for b in got}) == 3  # disjoint (12 distinct pairs)
    assert {loader.state_dict()["batches"] for loader in ranks} == {one.state_dict()["batches"]} == {15}
    assert ranks[0].state_dict()["samples"] == one.state_dict()["samples"] == 45
    with pytest.raises(ValueError):
        BatchLoader(ds, 2, tok.pad_id, 10_000, rank=3, world_size=3)


def test_loader_position_moves_between_world_sizes(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    two = [BatchLoader(ds, 5, tok.pad_id, 10_000, seed=7, rank=r, world_size=2) for r in range(2)]
    for loader in two:
        for _ in range(3):
            loader.next_batch()
    one = BatchLoader(ds, 5, tok.pad_id, 10_000, seed=7)
    ref = BatchLoader(ds, 5, tok.pad_id, 10_000, seed=7)
    one.load_state_dict(two[0].state_dict())
    for _ in range(6):
        ref.next_batch()
    for _ in range(4):
        assert one.next_batch().x.equal(ref.next_batch().x)


def test_fixed_batches_shard_the_same_batches(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    whole = fixed_batches(ds, 2, tok.pad_id, 10_000, 5)
    shares = [fixed_batches(ds, 2, tok.pad_id, 10_000, 5, rank=r, world_size=2) for r in range(2)]
    assert [len(s) for s in shares] == [3, 2]
    assert all(a.x.equal(b.x) for a, b in zip(whole, [shares[i % 2][i // 2] for i in range(5)], strict=True))


def test_loader_position_resumes_exactly(data_dir, tok):
    ds = load_split(data_dir, "train", tok, 10_000)
    a = BatchLoader(ds, 5, tok.pad_id, 10_000, seed=7)
    for _ in range(4):  # crosses an epoch boundary (3 batches per epoch)
        a.next_batch()
    b = BatchLoader(ds, 5, tok.pad_id, 10_000, seed=7)
    b.load_state_dict(a.state_dict())
    for _ in range(5):
        x, y = a.next_batch(), b.next_batch()
        assert x.x.equal(y.x) and x.y.equal(y.y)


def test_fixed_batches_are_fixed(data_dir, tok):
    ds = load_split(data_dir, "valid_random", tok, 10_000)
    one, two = fixed_batches(ds, 2, tok.pad_id, 10_000, 2), fixed_batches(ds, 2, tok.pad_id, 10_000, 2)
    assert len(one) == 2 and all(a.x.equal(b.x) for a, b in zip(one, two, strict=True))


def test_pairs_are_tokenized_in_the_configured_pair_format(data_dir, tok):
    rows = read_jsonl(data_dir / "train.jsonl")[:3]
    new = PairDataset(rows, tok, 10_000, pair_format=2)
    old = PairDataset(rows, tok, 10_000, pair_format=1)
    assert tok.decode(new.ids(0)[:new.target_start[0]].tolist()).startswith("# ranks: -")
    assert tok.decode(old.ids(0)[:old.target_start[0]].tolist()).startswith("def op_act(")


def test_configs_saved_before_the_pair_format_field_read_as_format_1():
    from p2t_model.config import ModelConfig, model_config_from_dict, to_dict

    saved = to_dict(ModelConfig())
    assert model_config_from_dict(saved).pair_format == PAIR_FORMAT
    del saved["pair_format"]
    assert model_config_from_dict(saved).pair_format == 1
