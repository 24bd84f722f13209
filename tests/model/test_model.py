"""MinimalLLM: size, RoPE, causality, tying, KV-cache decoding, FLOPs."""

from __future__ import annotations

import torch
from p2t_model.config import ModelConfig, preset
from p2t_model.model import (
    KVCache,
    MinimalLLM,
    apply_rope,
    flops_per_token,
    gather_rows,
    mfu,
    rope_tables,
    scatter_rows,
)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return MinimalLLM(preset("tiny")[0]).eval()


def test_default_parameter_count_is_exact_and_about_50m():
    cfg = ModelConfig()
    with torch.device("meta"):
        model = MinimalLLM(cfg)
    d, f, V, L = cfg.d_model, cfg.ffn_hidden, cfg.vocab_size, cfg.n_layer
    per_layer = 4 * d * d + 3 * d * f + 2 * d  # qkv + proj, SwiGLU, two RMSNorm gains
    expected = V * d + L * per_layer + d  # tied embedding/head once, final norm
    assert model.num_params() == expected == 49_820_160


def test_tiny_preset_is_under_a_million():
    assert tiny_model().num_params() < 1_000_000


def test_rope_scores_depend_only_on_position_difference():
    torch.manual_seed(0)
    hs, L = 16, 64
    cos, sin = rope_tables(hs, L, 10000.0)
    q, k = torch.randn(hs), torch.randn(hs)

    def score(m, n):
        qm = apply_rope(q.view(1, 1, 1, hs), cos[m:m + 1], sin[m:m + 1])
        kn = apply_rope(k.view(1, 1, 1, hs), cos[n:n + 1], sin[n:n + 1])
        return float((qm * kn).sum())

    for m, n in [(5, 2), (10, 10), (3, 9)]:
        for shift in (1, 7, 40):
            assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-4
    assert abs(score(5, 2) - score(5, 3)) > 1e-3  # and it does depend on the difference


def test_causal_masking_future_tokens_do_not_change_earlier_logits():
    model = tiny_model()
    x = torch.randint(4, 512, (2, 40))
    y = x.clone()
    y[:, 25:] = torch.randint(4, 512, (2, 15))
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :25], b[:, :25], atol=1e-5)
    assert not torch.allclose(a[:, 25:], b[:, 25:], atol=1e-3)


def test_tied_embedding_and_head_share_storage():
    model = tiny_model()
    assert model.lm_head.weight is model.tok_emb.weight
    assert model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    names = [n for n, _ in model.named_parameters()]
    assert "tok_emb.weight" in names and "lm_head.weight" not in names  # counted once


def test_kv_cache_greedy_decoding_matches_full_recompute():
    model = tiny_model(1)
    prompt = [1, 17, 99, 240, 7, 2]
    cached = model.generate(prompt, max_new_tokens=20, temperature=0.0)[0]
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert cached == seq[len(prompt):]


def test_kv_cache_chunked_prefill_matches_full_forward():
    model = tiny_model(2)
    x = torch.randint(4, 512, (3, 30))
    cache = KVCache(model.config, 3, 30, "cpu", torch.float32)
    with torch.no_grad():
        full = model(x)
        parts = [model(x[:, :12], kv_cache=cache, start_pos=0), model(x[:, 12:20], kv_cache=cache, start_pos=12)]
        parts += [model(x[:, t:t + 1], kv_cache=cache, start_pos=t) for t in range(20, 30)]
    assert torch.allclose(full, torch.cat(parts, dim=1), atol=1e-5)


def test_generate_samples_stops_and_is_seeded():
    model = tiny_model(3)
    g = torch.Generator().manual_seed(0)
    a = model.generate([1, 5, 6], 15, temperature=1.0, top_p=0.9, num_samples=4, generator=g)
    g = torch.Generator().manual_seed(0)
    b = model.generate([1, 5, 6], 15, temperature=1.0, top_p=0.9, num_samples=4, generator=g)
    assert a == b and len(a) == 4 and all(len(s) == 15 for s in a)
    greedy = model.generate([1, 5, 6], 15)[0]
    stop = greedy[4]
    cut = model.generate([1, 5, 6], 15, stop_id=stop, num_samples=2)
    assert cut == [greedy[:greedy.index(stop)]] * 2


def test_batch_of_prompts_decodes_each_as_alone():
    """Left-padded batch decoding: padding is masked and RoPE sees only relative positions, so each prompt
    gets the tokens (and the first logits) it gets alone."""
    model = tiny_model(4)
    with torch.no_grad():  # large weights: a chaotic model whose greedy tokens vary from step to step
        for p in model.parameters():
            p.mul_(25.0 if p.ndim == 2 else 1.0)
    prompts = [[7, 3, 9, 11, 2], [5] * 17, [8, 1, 4, 4, 6, 9, 10, 3, 12, 2, 2]]
    alone = [model.generate(p, 12)[0] for p in prompts]
    assert len({tuple(a) for a in alone}) == 3 and all(len(set(a)) > 2 for a in alone)
    assert model.generate(prompts, 12) == alone
    cache = KVCache(model.config, 3, 18, "cpu", torch.float32, pad=torch.tensor([12, 0, 6]))
    padded = torch.tensor([[0] * (17 - len(p)) + p for p in prompts])
    batched = model(padded, kv_cache=cache, start_pos=0)[:, -1]
    for row, p in enumerate(prompts):
        torch.testing.assert_close(batched[row], model(torch.tensor([p]))[0, -1], rtol=1e-4, atol=1e-4)
    # the next token through both decoding steps: the CUDA-graph one (device-held position, whole cache masked)
    # and the growing one (int position, the written prefix only)
    nxt = batched.argmax(-1, keepdim=True)  # (3, 1)
    twin = KVCache(model.config, 3, 18, "cpu", torch.float32, pad=cache.pad)
    twin.k, twin.v = cache.k.clone(), cache.v.clone()
    static = model(nxt, kv_cache=cache, start_pos=torch.tensor([17]))[:, -1]
    growing = model(nxt, kv_cache=twin, start_pos=17)[:, -1]
    torch.testing.assert_close(static, growing, rtol=1e-4, atol=1e-4)


def test_flops_and_mfu():
    cfg = ModelConfig()
    n = 49_820_160
    assert flops_per_token(cfg, n, 1024) == 6 * n + 12 * 12 * 512 * 1024
    assert abs(mfu(cfg, n, 1024, 1e6, peak_flops=720e12) - flops_per_token(cfg, n, 1024) * 1e6 / 720e12) < 1e-12


def test_compiled_decoding_step_writes_the_same_tokens():
    """`compile_step`: the one-token step through torch.compile (inductor's C++ kernels on the CPU), over a cache
    as long as the context, gives the greedy tokens of the eager step (a chaotic model, so a slip would show)."""
    model = tiny_model(4)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(25.0 if p.ndim == 2 else 1.0)
    prompt = [7, 3, 9, 11, 2, 5]
    eager = model.generate(prompt, 16)[0]
    assert len(set(eager)) > 2
    assert model.generate(prompt, 16, compile_step=True)[0] == eager


def test_row_scatter_and_gather_are_each_others_gradient():
    torch.manual_seed(0)
    keep = torch.tensor([0, 1, 2, 5, 6, 9])
    x = torch.randn(len(keep), 3, 4, requires_grad=True)
    padded = scatter_rows(x, keep, 10)  # (10, 3, 4): x's rows at keep, zeros elsewhere
    assert padded[keep].equal(x) and not padded[[3, 4, 7, 8]].any()
    y = torch.randn(10, 3, 4, requires_grad=True)
    grad = torch.randn(len(keep), 3, 4)
    gathered = gather_rows(y, keep)
    assert gathered.equal(y.index_select(0, keep))
    (dy,) = torch.autograd.grad(gathered, y, grad)
    (want,) = torch.autograd.grad(y.index_select(0, keep), y, grad)
    assert dy.equal(want)
    (dx,) = torch.autograd.grad(padded, x, torch.ones_like(padded))
    assert dx.equal(torch.ones_like(x))
