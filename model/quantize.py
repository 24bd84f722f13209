"""int8 weight-only quantization of a MinimalLLM, stored as small safetensors shards (no pickle).

Every 2-D weight (the embedding, which is also the tied output head, included) becomes int8 with one
fp32 scale per output channel (row): `q = round(w / s)`, `s = max|w_row| / 127`. 1-D tensors (norm
weights) stay as they are. Tensors are packed greedily into shards of at most `MAX_SHARD_BYTES`
(15 MiB); the JSON index `quantized.json` records the model config, which tensors are quantized, and
the size and sha256 of every shard and of the tokenizer. Loading checks each file against the index
(a tampered or truncated shard is refused with a `CheckpointError` naming it), reads tensors with
`safetensors` only, dequantizes to fp32 (bf16 on a GPU that has it) and loads a `MinimalLLM`.

    python -m p2t_model.quantize model/weights OUT_DIR      # quantize a checkpoint (or run) directory
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoint import CheckpointError, load_checkpoint, load_weights, model_tensors, sha256_file, verify_listing
from .config import model_config_from_dict, to_dict
from .model import MinimalLLM
from .tokenizer import TOKENIZER_FILE, P2TTokenizer

FORMAT = "p2t-int8"
VERSION = 1
INDEX = "quantized.json"
MAX_SHARD_BYTES = 15 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
_QSUF, _SSUF = ".q", ".scale"

__all__ = ["quantize_tensor", "dequantize_tensor", "quantize_model", "save_quantized", "load_quantized", "int8_matmuls",
           "quantize_checkpoint", "average_quantized", "relative_error", "INDEX", "MAX_SHARD_BYTES"]


def quantize_tensor(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, fp32 per-row scales) of a 2-D tensor."""
    w = w.detach().float()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantize_tensor(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (q.float() * scale.float()[:, None]).to(dtype)


def relative_error(w: torch.Tensor) -> float:
    """Relative Frobenius error of a quantize → dequantize round trip."""
    q, s = quantize_tensor(w)
    w = w.detach().float()
    return float(torch.linalg.norm(dequantize_tensor(q, s) - w) / torch.linalg.norm(w).clamp_min(1e-30))


def quantize_model(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """(stored tensors, per-weight info) for a model's state dict (the tied head stored once)."""
    stored, info = {}, {}
    for name, t in model_tensors(model).items():
        if t.dim() == 2 and t.is_floating_point():
            q, s = quantize_tensor(t)
            stored[name + _QSUF], stored[name + _SSUF] = q, s
            info[name] = {"quantized": True, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        else:
            stored[name] = t.detach().float().contiguous() if t.is_floating_point() else t.contiguous()
            info[name] = {"quantized": False, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    return stored, info


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _shards(stored: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(stored):
        t = stored[name]
        n = _nbytes(t) + 256  # header overhead per tensor, generously
        if n > limit:
            raise ValueError(f"tensor {name} alone is {n} bytes, over the shard limit of {limit}")
        if size + n > limit and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += n
    return shards


def save_quantized(model: MinimalLLM, tokenizer: P2TTokenizer, out_dir: str | Path, *, step: int = 0,
                   max_shard_bytes: int = MAX_SHARD_BYTES, extra: dict | None = None) -> Path:
    """Write the int8 shards, tokenizer and index into `out_dir` atomically (a temp sibling renamed into place)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stored, info = quantize_model(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        shards = _shards(stored, max_shard_bytes - 1024)
        files, where = {}, {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / fname), metadata={"format": FORMAT})
            for name in shard:
                where[name] = fname
        tokenizer.save(tmp / TOKENIZER_FILE)
        for p in sorted(tmp.iterdir()):
            files[p.name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        big = [n for n, f in files.items() if f["bytes"] > max_shard_bytes]
        total = sum(f["bytes"] for f in files.values())
        if big or total > MAX_TOTAL_BYTES:
            raise ValueError(f"quantized weights too large: shards over the limit {big}, total {total} bytes")
        index = {"format": FORMAT, "version": VERSION, "step": step, "model_config": to_dict(model.config),
                 "weights": {n: {**i, "shard": where[n + _QSUF] if i["quantized"] else where[n]}
                             for n, i in info.items()},
                 "files": files, "total_bytes": total, "extra": extra or {}}
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def verify_quantized(wdir: Path) -> dict:
    """The index of an intact int8 weights directory, or a CheckpointError naming what is wrong."""
    ipath = wdir / INDEX
    if not ipath.exists():
        raise CheckpointError(f"{wdir}: no {INDEX}: not an int8 weights directory")
    return verify_listing(wdir, ipath, FORMAT, VERSION)


def int8_matmuls(model: MinimalLLM) -> MinimalLLM:
    """The model with every linear layer computing in int8 on the CPU (fbgemm): per-output-channel int8 weights,
    like the shipped shards, and activations quantized per call. Decoding one token reads ~4x fewer weight bytes,
    which is what bounds a 2-core CPU: 39 -> 94-117 tokens/s for the 50m model (docs/BENCHMARKS.md)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch 2.13 marks quantized tensors and torch.ao.quantization deprecated
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def load_quantized(wdir: str | Path, device="cpu", dtype: torch.dtype | str | None = "auto"
                   ) -> tuple[MinimalLLM, P2TTokenizer]:
    """(model in eval mode, tokenizer) from an int8 weights directory; dequantized at load."""
    wdir = Path(wdir)
    index = verify_quantized(wdir)
    if dtype == "auto":
        cuda = torch.device(device).type == "cuda"
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    tensors: dict[str, torch.Tensor] = {}
    for name in index["files"]:
        if name.endswith(".safetensors"):
            tensors.update(load_file(str(wdir / name), device="cpu"))
    weights = {}
    for name, info in index["weights"].items():
        try:
            if info["quantized"]:
                w = dequantize_tensor(tensors[name + _QSUF], tensors[name + _SSUF], dtype)
            else:
                w = tensors[name].to(dtype) if tensors[name].is_floating_point() else tensors[name]
        except KeyError as e:
            raise CheckpointError(f"{wdir}: tensor {e} listed in the index is in no shard") from None
        if list(w.shape) != info["shape"]:
            raise CheckpointError(f"{wdir}: {name} has shape {list(w.shape)}, the index says {info['shape']}")
        weights[name] = w
    model = MinimalLLM(model_config_from_dict(index["model_config"]))
    load_weights(model, weights)
    model.to(device=device, dtype=dtype)
    model.reset_rope(device=device)
    return model.eval(), P2TTokenizer.load(wdir / TOKENIZER_FILE)


def quantize_checkpoint(src: str | Path, dst: str | Path, **kw) -> Path:
    """Quantize a checkpoint (or run) directory, e.g. the exported model/weights, into `dst`."""
    ck = load_checkpoint(src)
    model = MinimalLLM(ck["model_config"])
    load_weights(model, ck["weights"])
    return save_quantized(model, ck["tokenizer"], dst, step=ck["step"], **kw)


def average_quantized(sources: list[str | Path], dst: str | Path) -> Path:
    """The mean of several int8 weights directories of one architecture and tokenizer (a weight average of a run
    and its fine-tunes, which often generalizes better than either end), quantized again into `dst`. The sources
    are dequantized to fp32 first, so the result carries a second rounding of at most half a step per weight."""
    models = [load_quantized(s, dtype=torch.float32) for s in sources]
    (first, tokenizer), rest = models[0], models[1:]
    vocab = tokenizer.tok.to_str()
    for src, (model, tok) in zip(sources[1:], rest, strict=True):
        if to_dict(model.config) != to_dict(first.config) or tok.tok.to_str() != vocab:
            raise ValueError(f"{src}: another architecture or tokenizer than {sources[0]}")
    tensors = [model_tensors(m) for m, _ in models]
    mean = {name: torch.stack([t[name] for t in tensors]).mean(0) if w.is_floating_point() else w
            for name, w in tensors[0].items()}
    load_weights(first, mean)
    return save_quantized(first, tokenizer, dst, extra={"averaged_from": [str(s) for s in sources]})


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        sys.exit("usage: python -m p2t_model.quantize CHECKPOINT_DIR OUT_DIR")
    path = quantize_checkpoint(sys.argv[1], sys.argv[2])
    print(f"wrote {path} ({json.loads((path / INDEX).read_text())['total_bytes']} bytes)")
