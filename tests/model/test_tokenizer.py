"""The byte-level BPE tokenizer and the pair format."""

from __future__ import annotations

from p2t_model.tokenizer import END, PAD, PY, TRITON, P2TTokenizer


def test_special_tokens_have_fixed_ids(tok):
    assert [tok.tok.token_to_id(s) for s in (PAD, PY, TRITON, END)] == [0, 1, 2, 3]
    assert (tok.pad_id, tok.py_id, tok.triton_id, tok.end_id) == (0, 1, 2, 3)
    assert tok.vocab_size <= 400


def test_round_trip_is_exact_for_any_text(tok):
    for text in ["def f(x):\n    return x  *  2\n\n", "\t\tmixed \r\n  tabs", "é ü → λ 🙂 中文", ""]:
        assert tok.decode(tok.encode(text)) == text


def test_special_token_text_in_source_is_not_a_control_token(tok):
    text = "s = '<|end|>' + \"<|py|><|pad|>\"  # <|triton|>"
    ids = tok.encode(text)
    assert not set(ids) & {tok.pad_id, tok.py_id, tok.triton_id, tok.end_id}
    assert tok.decode(ids) == text
    pair, _ = tok.encode_pairs([text], ["t = '<|end|>'"])[0]
    assert pair.count(tok.end_id) == 1 and pair[-1] == tok.end_id


def test_encode_pair_masks_target_and_end_only(tok):
    prompt, target = "def f(x):\n    return x + 1\n", "import triton\n"
    ids, mask = tok.encode_pair(prompt, target)
    assert len(ids) == len(mask)
    assert ids[0] == tok.py_id and ids[-1] == tok.end_id
    t = ids.index(tok.triton_id)
    assert mask[:t + 1] == [0] * (t + 1)  # <|py|> prompt <|triton|>: no loss
    assert all(mask[t + 1:])  # target and <|end|>
    assert tok.decode(ids[1:t]) == prompt
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]) == target
    assert tok.encode_prompt(prompt) == ids[:t + 1]
    assert tok.encode_pairs([prompt], [target]) == [(ids, mask)]


def test_save_and_load(tok, pairs, tmp_path):
    tok.save(tmp_path)
    again = P2TTokenizer.load(tmp_path / "tokenizer.json")
    text = pairs[0]["target"]
    assert again.encode(text) == tok.encode(text)
    assert P2TTokenizer.load(tmp_path).vocab_size == tok.vocab_size
