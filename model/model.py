"""MinimalLLM: a decoder-only transformer, readable in one sitting.

token ids -> embedding -> n_layer x [RMSNorm -> attention (RoPE, causal SDPA) -> + ; RMSNorm -> SwiGLU -> +]
-> RMSNorm -> output head (the embedding matrix itself) -> logits.

Shapes: B batch, T sequence, C d_model, nh heads, hs head size, V vocabulary.
Decoding keeps a `KVCache`; `forward(idx, kv_cache=cache, start_pos=p)` appends to it, and with
`start_pos` a 1-element device tensor a step of T tokens has static shapes (`generate` replays it
as a CUDA graph: one token a step, or a token and its draft, `drafts.py`).
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .rope_kernel import rope_qkv, rope_qkv_unpadded, supports

IGNORE_INDEX = -100  # targets with this value (prompt and padding) carry no loss


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()  # normalize in fp32 even under autocast
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).type_as(x)


def rope_tables(head_dim: int, length: int, base: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angle pos * base**(-2i/hs), each (length, hs/2), fp32."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)  # (L, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + hs/2]) of x (B, nh, T, hs) by the angles of its T positions: cos, sin (T, hs/2)
    (or (T, 1, hs/2) for packed x (T, nh, hs))."""
    # x * [cos, cos] + roll(x, hs/2) * [-sin, sin]: one elementwise expression, and so is its gradient (halves
    # sliced out and concatenated back made inductor's backward kernel 11% of a training step, 218 us a call)
    half = x.shape[-1] // 2
    cos2, sin2 = torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)  # (T, hs) or (T, 1, hs)
    xf = x.float()
    return (xf * cos2 + xf.roll(half, dims=-1) * sin2).type_as(x)


@functools.cache
def _varlen_causal_kwargs() -> dict | None:
    """How torch's flash varlen attention is asked for causal masking: `is_causal` in torch 2.10,
    `window_size` from 2.12; None where it is missing. Asked on first packed CUDA call, not at import."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    return {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}


def packed_causal_attention(q, k, v, cu_seqlens: torch.Tensor, max_len: int) -> torch.Tensor:
    """Causal attention within each segment of packed q, k, v (N, nh, hs): token i of a segment sees tokens
    0..i of that segment only. On CUDA in half precision it is one flash varlen call (max_len bounds the
    segment length, a constant so the compiled graph never specializes on it); elsewhere causal SDPA
    segment by segment (a host loop: the CPU path of tests and small runs)."""
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and _varlen_causal_kwargs() is not None:
        from torch.nn.attention.varlen import varlen_attn

        return varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, **_varlen_causal_kwargs())
    bounds = cu_seqlens.tolist()
    out = [F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1) for t in (q, k, v)), is_causal=True)
           for a, b in zip(bounds, bounds[1:], strict=False)]  # each (nh, L, hs)
    return torch.cat(out, dim=1).transpose(0, 1)  # (N, nh, hs)


class _GatherRows(torch.autograd.Function):
    """x.index_select(0, keep) for distinct rows `keep`, whose backward writes the gradient rows back into zeros
    (index_copy) instead of adding them (index_select's own backward, index_add: atomics)."""

    @staticmethod
    def forward(ctx, x, keep):
        ctx.save_for_backward(keep)
        ctx.rows = x.shape[0]
        return x.index_select(0, keep)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return scatter_rows(grad, keep, ctx.rows), None


def scatter_rows(x: torch.Tensor, keep: torch.Tensor, rows: int) -> torch.Tensor:
    """(N, ...) -> (rows, ...): x's rows at the distinct slots keep (N,), zeros elsewhere; backward a gather."""
    return x.new_zeros(rows, *x.shape[1:]).index_copy(0, keep, x)


def gather_rows(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(rows, ...) -> (N, ...): the rows at the distinct slots keep (N,); backward a scatter, no atomics."""
    return _GatherRows.apply(x, keep)


class KVCache:
    """Keys and values of every layer for up to `max_len` positions: (n_layer, B, nh, max_len, hs) each."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device, dtype, pad: torch.Tensor | None = None):
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pad = pad  # (B,) left-padding of each row's prompt: positions before it are never attended to

    def key_mask(self, length: int, last: torch.Tensor | int) -> torch.Tensor:
        """(B | 1, 1, Q, length) bool: the keys queries at positions `last` (an int, a (1,) or a (Q, 1) tensor)
        may see: those not after them and, in a left-padded batch, not in their row's padding."""
        pos = torch.arange(length, device=self.k.device)
        mask = (pos <= last).view(1, 1, -1, length)  # (1, 1, Q, L)
        if self.pad is not None:
            mask = mask & (pos >= self.pad.view(-1, 1, 1, 1))  # (B, 1, Q, L)
        return mask

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, nh, T, hs) at positions start..start+T; return all keys/values up to there."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; asked for {end}")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]  # (B, nh, end, hs)

    def write_at(self, layer: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, nh, T, hs) at the T positions in the tensor pos (T,); return the whole cache of the layer
        (B, nh, max_len, hs). Shapes never change, so a CUDA graph can replay it."""
        self.k[layer].index_copy_(2, pos, k)
        self.v[layer].index_copy_(2, pos, v)
        return self.k[layer], self.v[layer]

    def repeat(self, n: int) -> KVCache:
        """The same cache for n copies of each sequence (after a batch-1 prefill)."""
        self.k = self.k.repeat_interleave(n, dim=1)
        self.v = self.v.repeat_interleave(n, dim=1)
        if self.pad is not None:
            self.pad = self.pad.repeat_interleave(n)
        return self


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout
        self.max_len = cfg.context  # the longest packed segment
        self.rope_kernel = supports(cfg.n_head, cfg.head_dim)

    def forward(self, x, cos, sin, layer: int, kv_cache: KVCache | None, start_pos: int | torch.Tensor,
                cu_seqlens: torch.Tensor | None = None,
                unpadded: tuple[torch.Tensor, torch.Tensor, int, int] | None = None):
        qkv = self.qkv(x)  # (B, T, 3C), or (1, N, 3C) unpadded
        B, T = unpadded[2:] if unpadded is not None else qkv.shape[:2]
        C = qkv.shape[2] // 3
        if self.rope_kernel and x.is_cuda and kv_cache is None and cu_seqlens is None:  # training: one kernel a way
            if unpadded is not None:  # x: the real tokens of a padded batch; attention runs in the padded layout
                q, k, v = rope_qkv_unpadded(qkv[0], unpadded[0], unpadded[1], cos, sin, self.n_head, T)
            else:
                q, k, v = rope_qkv(qkv, cos, sin, self.n_head)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        else:
            if unpadded is not None:
                qkv = scatter_rows(qkv[0], unpadded[0], B * T).view(B, T, -1)  # (B, T, 3C), zeros in padding
            q, k, v = qkv.split(C, dim=2)  # (B, T, C) each
            if cu_seqlens is not None:  # packed pairs (B = 1): cos, sin (T, 1, hs/2) at each token's own position
                q, k, v = (t.view(T, self.n_head, self.head_dim) for t in (q, k, v))  # (T, nh, hs)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
                y = packed_causal_attention(q, k, v, cu_seqlens, self.max_len)  # (T, nh, hs)
                return self.proj(y.reshape(B, T, C))
            q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        dropout = self.dropout if self.training else 0.0
        if isinstance(start_pos, torch.Tensor):  # T tokens from a device-held position: static shapes, no sync
            pos = start_pos + torch.arange(T, device=x.device)  # (T,): the step's positions
            k_all, v_all = kv_cache.write_at(layer, pos, k, v)  # (B, nh, L, hs): the whole cache
            mask = kv_cache.key_mask(kv_cache.max_len, pos.view(T, 1))  # (B | 1, 1, T, L): written, not padding
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        elif kv_cache is not None and start_pos == 0 and kv_cache.pad is not None:  # a left-padded prefill
            kv_cache.update(layer, 0, k, v)
            rows = torch.arange(T, device=x.device).view(-1, 1)  # (T, 1): query positions
            mask = kv_cache.key_mask(T, rows) | torch.eye(T, dtype=torch.bool, device=x.device)  # (B, 1, T, T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (pad queries see only themselves)
        elif kv_cache is None or start_pos == 0:  # training, or a prefill: plain causal attention
            if kv_cache is not None:
                kv_cache.update(layer, 0, k, v)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)  # (B, nh, T, hs)
        else:
            k_all, v_all = kv_cache.update(layer, start_pos, k, v)  # (B, nh, start_pos + T, hs)
            if T == 1:  # one new token sees every cached position (but a left-padded row's padding)
                mask = kv_cache.key_mask(start_pos + 1, start_pos) if kv_cache.pad is not None else None
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
            else:  # a chunk after a prefix: causal with an offset, which is_causal (top-left aligned) is not
                mask = torch.ones(T, start_pos + T, dtype=torch.bool, device=x.device).tril(diagonal=start_pos)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        if unpadded is not None:  # padding tokens' outputs are never computed further
            y = gather_rows(y.view(B * T, C), unpadded[0])[None]  # (1, N, C)
        return self.proj(y)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x):  # (B, T, C) -> (B, T, ffn) -> (B, T, C)
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x, cos, sin, layer, kv_cache, start_pos, cu_seqlens=None, unpadded=None):
        x = x + self.attn(self.norm1(x), cos, sin, layer, kv_cache, start_pos, cu_seqlens, unpadded)
        return x + self.ffn(self.norm2(x))


class MinimalLLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # one Parameter, one storage
        cos, sin = rope_tables(cfg.head_dim, cfg.context, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)  # (context, hs/2)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # residual outputs scaled down: variance stays ~1 with depth
            if name.endswith(("attn.proj.weight", "ffn.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        """Exact count of distinct parameters (the tied embedding/head counted once)."""
        return sum(p.numel() for p in self.parameters())  # parameters() already yields a shared one once

    def reset_rope(self, device=None):
        """Recompute the RoPE tables (after building on the meta device and materializing with to_empty)."""
        cos, sin = rope_tables(self.config.head_dim, self.config.context, self.config.rope_base, device=device)
        self.rope_cos, self.rope_sin = cos, sin

    def forward(self, idx, targets=None, kv_cache: KVCache | None = None, start_pos: int | torch.Tensor = 0,
                reduction="mean", positions: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                keep: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, V); with targets (B, T) -> the cross-entropy over targets != -100.
        start_pos may be a 1-element tensor (with a cache): the static-shape decoding step of T tokens.
        Packed training input (`data.collate_packed`): idx (1, N) of segments starting at cu_seqlens (n + 1,),
        positions (1, N) each token's position within its segment; a segment attends only to itself.
        Unpadded training input (`data.collate(unpad=True)`): a padded batch idx, targets (B, T) and keep (N,) the
        flat slots of its real tokens: only those are computed, but in attention, which runs in the padded layout
        (scattered in, gathered out); logits (1, N, V)."""
        B, T = idx.shape
        unpadded = None
        if keep is not None:
            if kv_cache is not None or cu_seqlens is not None:
                raise ValueError("unpadded input (keep) is a training batch: no KV cache, not packed")
            sources = torch.full((B * T,), -1, dtype=torch.int32, device=idx.device)  # (B * T,) slot -> token
            unpadded = (keep, sources.index_copy(0, keep, torch.arange(keep.shape[0], dtype=torch.int32,
                                                                         device=idx.device)), B, T)
        if cu_seqlens is not None:
            if B != 1 or positions is None or kv_cache is not None:
                raise ValueError("packed input is one row (1, N) with its positions, and has no KV cache")
            cos = self.rope_cos[positions[0]][:, None]  # (N, 1, hs/2)
            sin = self.rope_sin[positions[0]][:, None]
        elif isinstance(start_pos, torch.Tensor):  # positions past the context (a draft's padding) read the last angle
            pos = (start_pos + torch.arange(T, device=idx.device)).clamp(max=self.config.context - 1)
            cos, sin = self.rope_cos.index_select(0, pos), self.rope_sin.index_select(0, pos)  # (T, hs/2)
        else:
            if start_pos + T > self.config.context:
                raise ValueError(f"sequence of {start_pos + T} tokens exceeds the context of {self.config.context}")
            cos = self.rope_cos[start_pos:start_pos + T]  # (T, hs/2)
            sin = self.rope_sin[start_pos:start_pos + T]
        if unpadded is not None:  # the real tokens only: (B, T) -> (1, N)
            idx = idx.reshape(-1).index_select(0, keep)[None]
            targets = None if targets is None else targets.reshape(-1).index_select(0, keep)[None]
        x = self.tok_emb(idx)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, i, kv_cache, start_pos, cu_seqlens, unpadded)
        x = self.norm(x)
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction=reduction)

    @torch.no_grad()
    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 stop_id: int | None = None, num_samples: int = 1, generator: torch.Generator | None = None,
                 cuda_graph: bool = True, compile_step: bool = False, drafts=None) -> list[list[int]]:
        """Decode `num_samples` continuations of one prompt with a KV cache; or, where `prompt_ids` is a list of
        prompts, one continuation of each (left-padded into one batch: RoPE sees only relative positions and
        the padding is masked, so each row decodes as it would alone, up to rounding).

        temperature == 0 is greedy; otherwise sample from softmax(logits / temperature) restricted to
        the smallest set of tokens whose probability reaches top_p. Each returned list holds the new
        tokens only, cut before `stop_id` (which is not included). The prompt is prefilled once and
        its cache copied to every sample; on CUDA each decoding step is one CUDA-graph replay (a
        50M model is launch-bound: ~900 aten operations a token otherwise). Sample together, not one by one.

        compile_step: the one-token step goes through torch.compile first (inductor fuses the norms, RoPE and
        SwiGLU's elementwise ops, so a replay runs far fewer kernels). It is compiled once per process and batch
        size: the cache then always holds the whole context, so its shape never changes from call to call.

        drafts: a `drafts.DraftTable`; greedy decoding of one prompt then scores each token together with the
        table's draft after it (`_greedy_with_drafts`): the same tokens in fewer passes.
        """
        device = self.rope_cos.device
        many = len(prompt_ids) > 0 and isinstance(prompt_ids[0], list | tuple)
        prompts = list(prompt_ids) if many else [list(prompt_ids)]
        P = max(len(p) for p in prompts)
        pad = torch.tensor([P - len(p) for p in prompts], device=device) if many else None  # (B,)
        prompt = torch.tensor([[0] * (P - len(p)) + list(p) for p in prompts], dtype=torch.long,
                              device=device)  # (B, P): B = 1 for one prompt
        num_samples = len(prompts) if many else num_samples
        max_new_tokens = min(max_new_tokens, self.config.context - P)
        if max_new_tokens <= 0:
            return [[] for _ in range(num_samples)]
        dtype = self.tok_emb.weight.dtype
        if device.type == "cuda" and dtype == torch.float32:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        amp = dict(device_type=device.type, dtype=dtype, enabled=device.type == "cuda", cache_enabled=False)
        if drafts is not None and temperature == 0 and num_samples == 1:
            return [self._greedy_with_drafts(prompts[0], max_new_tokens, stop_id, drafts, dtype, amp, cuda_graph)]
        cache_len = self.config.context if compile_step else P + max_new_tokens
        cache = KVCache(self.config, len(prompts), cache_len, device, dtype, pad=pad)
        with torch.autocast(**amp):
            logits = self(prompt, kv_cache=cache, start_pos=0)[:, -1]  # (B, V)
        if not many:
            cache.repeat(num_samples)
            logits = logits.expand(num_samples, -1)  # (N, V)
        tok = torch.zeros(num_samples, 1, dtype=torch.long, device=device)  # the step's inputs, at fixed addresses
        pos = torch.full((1,), P, dtype=torch.long, device=device)

        forward = _compiled_forward() if compile_step else type(self).forward

        def step(at):  # at: the device-held `pos` (static shapes: graph, compile) or an int (attend to the prefix)
            with torch.autocast(**amp):
                return forward(self, tok, kv_cache=cache, start_pos=at)[:, -1]  # (N, V)

        graph = None
        use_graph = cuda_graph and device.type == "cuda" and max_new_tokens > 1
        static = use_graph or compile_step
        if use_graph:
            side = torch.cuda.Stream()  # warm up off the default stream, then capture; the garbage this
            side.wait_stream(torch.cuda.current_stream())  # writes at position P is overwritten by step one
            with torch.cuda.stream(side):
                step(pos)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                graph_logits = step(pos)
        out = torch.empty(num_samples, max_new_tokens, dtype=torch.long, device=device)
        done = torch.zeros(num_samples, dtype=torch.bool, device=device)
        n = 0
        for i in range(max_new_tokens):
            nxt = self._pick(logits.float(), temperature, top_p, generator)  # (N,)
            if stop_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, stop_id), nxt)
                done |= nxt == stop_id
            out[:, i] = nxt
            n = i + 1
            if i == max_new_tokens - 1 or stop_id is not None and i % 8 == 7 and bool(done.all()):
                break  # (checking every 8 tokens spares a host sync per token)
            tok.copy_(nxt[:, None])
            if static:
                pos.fill_(P + i)
                if graph is not None:
                    graph.replay()
                    logits = graph_logits
                else:  # compiled without a graph (CPU): the same static shapes
                    logits = step(pos)
            else:  # without a graph, shapes may grow: attend to the P + i + 1 written positions, not the whole cache
                logits = step(P + i)
        result = []
        for row in out[:, :n].tolist():
            if stop_id is not None and stop_id in row:
                row = row[:row.index(stop_id)]
            result.append(row)
        return result

    def _greedy_with_drafts(self, ids: list[int], max_new_tokens: int, stop_id: int | None, drafts, dtype, amp,
                            cuda_graph: bool) -> list[int]:
        """Greedy decoding of one prompt where each pass scores the last token and the table's draft after it
        (drafts.py): the draft's prefix the model's argmax agrees with is kept, then the model's own next token. A
        rejected draft token's keys and values lie past the kept positions, where the next pass writes before any
        query reads. On CUDA a pass is one graph replay of a fixed LENGTH + 1 tokens (a short draft is padded; the
        padding's positions lie past the end and are never read)."""
        device = self.rope_cos.device
        P, K = len(ids), drafts.length
        graph = None
        cache = KVCache(self.config, 1, P + max_new_tokens + K, device, dtype)
        with torch.autocast(**amp):
            nxt = int(self(torch.tensor([ids], device=device), kv_cache=cache, start_pos=0)[0, -1].argmax())
        if cuda_graph and device.type == "cuda":
            chunk = torch.zeros(1, K + 1, dtype=torch.long, device=device)  # the pass's inputs, at fixed addresses
            pos = torch.full((1,), P, dtype=torch.long, device=device)

            def scored():
                with torch.autocast(**amp):
                    return self(chunk, kv_cache=cache, start_pos=pos)[0].argmax(-1)  # (K + 1,)

            side = torch.cuda.Stream()  # warm up off the default stream (its writes past P are overwritten later)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                scored()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                graph_pred = scored()
        seq, at = list(ids), P  # the tokens so far; the position of `nxt`
        while len(seq) - P < max_new_tokens:
            seq.append(nxt)
            if nxt == stop_id:
                break
            draft = drafts.propose(seq)[:max_new_tokens - (len(seq) - P)]
            if graph is not None:
                chunk.copy_(torch.tensor([[nxt, *draft, *[0] * (K - len(draft))]]))
                pos.fill_(at)
                graph.replay()
                pred = graph_pred.tolist()
            else:
                with torch.autocast(**amp):
                    logits = self(torch.tensor([[nxt, *draft]], device=device), kv_cache=cache, start_pos=at)[0]
                pred = logits.argmax(-1).tolist()  # pred[j]: the model's token after the chunk's first j + 1
            kept = 0
            while kept < len(draft) and pred[kept] == draft[kept] and draft[kept] != stop_id:
                kept += 1
            if kept < len(draft) and pred[kept] == draft[kept]:  # the model agrees the unit ends here
                seq += draft[:kept + 1]
                break
            seq += draft[:kept]
            at += 1 + kept
            nxt = pred[kept]
        out = seq[P:]
        return out[:out.index(stop_id)] if stop_id is not None and stop_id in out else out

    @staticmethod
    def _pick(logits, temperature, top_p, generator):
        if temperature == 0:
            return logits.argmax(-1)
        probs = F.softmax(logits / temperature, dim=-1)  # (N, V)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p  # a token stays if the mass before it is < top_p
            sorted_p = sorted_p * keep
            choice = torch.multinomial(sorted_p, 1, generator=generator)  # (N, 1), renormalized by multinomial
            return order.gather(-1, choice).squeeze(-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@functools.cache
def _compiled_forward():
    """`MinimalLLM.forward` through torch.compile (dynamo keeps one compiled graph per model and input shapes)."""
    return torch.compile(MinimalLLM.forward, dynamic=False, fullgraph=True)


def flops_per_token(cfg: ModelConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weight matmuls (forward 2N, backward 4N; N includes the
    tied head, whose matmul is real work) plus 12 * n_layer * d_model * seq_len for attention's
    QK^T and AV (the PaLM convention, which does not halve for causality)."""
    return 6 * n_params + 12 * cfg.n_layer * cfg.d_model * seq_len


def mfu(cfg: ModelConfig, n_params: int, seq_len: int, tokens_per_s: float, peak_flops: float = 720e12) -> float:
    """Model FLOPs utilization: achieved model FLOP/s over the accelerator's peak."""
    return flops_per_token(cfg, n_params, seq_len) * tokens_per_s / peak_flops
