"""Checkpoints: safetensors for tensors, JSON for everything else; no pickle anywhere.

A checkpoint is a directory:

    model.safetensors   weights (the tied head is stored once, under tok_emb.weight)
    optim.safetensors   optimizer tensors (momentum buffers, Adam moments); absent in exported weights
    tokenizer.json      the tokenizer the model was trained with
    manifest.json       configs, step, data-loader position, RNG states (base64), loss history,
                        optimizer scalars and param groups, and the sha256 and size of every other file

It is written into a temporary sibling directory which is then renamed into place (`os.replace`), and
a run directory's `latest` file (also replaced atomically) names the newest complete one. Loading
checks every file's size and sha256 and the safetensors headers, and refuses anything that differs
with a `CheckpointError` naming the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from p2t_core.errors import P2TError

from .config import ModelConfig, TrainConfig, model_config_from_dict, to_dict, train_config_from_dict
from .model import MinimalLLM
from .tokenizer import TOKENIZER_FILE, P2TTokenizer

FORMAT = "p2t-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
OPTIM = "optim.safetensors"
LATEST = "latest"


class CheckpointError(P2TError):
    """A checkpoint that is missing, truncated, corrupted or of an unknown format."""


# --- integrity -----------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_safetensors(path: Path) -> None:
    """Header sanity: an 8-byte length, a JSON header, and tensor data that ends exactly at end of file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: corrupted safetensors header") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise CheckpointError(f"{path}: safetensors data ends at byte {8 + n + end} but the file has {size} "
                              "(truncated or corrupted)")


def verify_listing(directory: Path, listing: Path, fmt: str, version: int) -> dict:
    """A checkpoint's manifest or an int8 directory's index (`listing`, JSON), checked before anything is loaded:
    its format and version, and every file it lists a plain name in `directory`, present, of the recorded size, a
    whole safetensors file where it is one, and of the recorded sha256. Anything else is a CheckpointError that
    names the file: a directory somebody edited, truncated or tampered with is refused, never half-loaded."""
    try:
        data = json.loads(listing.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{listing}: corrupted or truncated {listing.name} ({e})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{listing}: not a {fmt} listing")
    if data.get("version", 0) > version:
        raise CheckpointError(f"{listing}: format version {data['version']} is newer than this code ({version})")
    for name, info in data.get("files", {}).items():
        path = directory / name
        if Path(name).name != name:
            raise CheckpointError(f"{listing}: file name {name!r} is not a plain name")
        if not path.exists():
            raise CheckpointError(f"{directory}: {name} is missing")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"{path}: {size} bytes, {listing.name} says {info['bytes']} (truncated or tampered "
                                  "with); refusing to load")
        if name.endswith(".safetensors"):
            check_safetensors(path)
        if sha256_file(path) != info["sha256"]:
            raise CheckpointError(f"{path}: sha256 differs from {listing.name} (tampered with or corrupted); "
                                  "refusing to load")
    return data


def verify_checkpoint(ckpt: Path) -> dict:
    """The manifest of a complete, intact checkpoint directory, or a CheckpointError saying what is wrong."""
    mpath = ckpt / MANIFEST
    if not mpath.exists():
        raise CheckpointError(f"{ckpt}: not a checkpoint (no {MANIFEST})")
    manifest = verify_listing(ckpt, mpath, FORMAT, VERSION)
    if WEIGHTS not in manifest.get("files", {}):
        raise CheckpointError(f"{mpath}: lists no {WEIGHTS}")
    return manifest


def resolve(path: str | Path) -> Path:
    """A checkpoint directory itself, or the one a run directory's `latest` file names."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return path
    latest = path / LATEST
    if latest.exists():
        return path / latest.read_text().strip()
    raise CheckpointError(f"{path}: no checkpoint here (neither {MANIFEST} nor {LATEST})")


# --- encoding of non-tensor state ------------------------------------------------------------------
def rng_state() -> dict:
    state = {"python": _jsonable(random.getstate()),
             "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    def tuples(x):
        return tuple(tuples(i) for i in x) if isinstance(x, list) else x

    random.setstate(tuples(state["python"]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        states = [torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_jsonable(i) for i in x]
    if torch.is_tensor(x):  # a learning rate a CUDA graph of the step reads (model/step.py)
        return x.item()
    return x


def optimizer_state(opts: list[torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Optimizer state split into safetensors-able tensors and JSON-able everything else."""
    tensors, meta = {}, []
    for k, opt in enumerate(opts):
        sd = opt.state_dict()
        state = {}
        for pid, st in sd["state"].items():
            entry = {}
            for key, val in st.items():
                if torch.is_tensor(val):
                    name = f"{k}.{pid}.{key}"
                    tensors[name] = val.detach().cpu().contiguous()
                    entry[key] = {"tensor": name}
                else:
                    entry[key] = {"value": val}
            state[str(pid)] = entry
        meta.append({"state": state, "param_groups": _jsonable(sd["param_groups"])})
    return tensors, meta


MACHINE_KEYS = ("fused", "capturable", "foreach")


def load_optimizer_state(opts: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor], meta: list[dict]):
    if len(meta) != len(opts):
        raise CheckpointError(f"checkpoint has {len(meta)} optimizers, the trainer {len(opts)}")
    for opt, m in zip(opts, meta, strict=True):
        state = {int(pid): {key: tensors[v["tensor"]] if "tensor" in v else v["value"] for key, v in entry.items()}
                 for pid, entry in m["state"].items()}
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in m["param_groups"]]
        for group, own in zip(groups, opt.param_groups, strict=False):
            # how to step on this machine (fused/capturable kernels exist on a GPU only) is the trainer's, not the run's
            group.update({k: own[k] for k in MACHINE_KEYS if k in own})
        opt.load_state_dict({"state": state, "param_groups": groups})


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each storage once (the tied head is dropped; loading re-ties it)."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.shape, t.dtype)
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().cpu().contiguous()
    return out


# --- saving --------------------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(run_dir: str | Path, name: str, *, model: torch.nn.Module, tokenizer: P2TTokenizer,
                    model_cfg: ModelConfig, train_cfg: TrainConfig | None = None,
                    optimizers: list[torch.optim.Optimizer] | None = None, step: int = 0,
                    data_state: dict | None = None, history: list[dict] | None = None,
                    scaler_state: dict | None = None, with_rng: bool = True, extra: dict | None = None,
                    keep: int = 0, update_latest: bool = True) -> Path:
    """Write checkpoint `run_dir/name` atomically and point `run_dir/latest` at it; keep the newest `keep`
    checkpoints of the run (0: keep all). Without optimizers it is a weights-only export."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=run_dir))
    try:
        save_file(model_tensors(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        tokenizer.save(tmp / TOKENIZER_FILE)
        manifest = {"format": FORMAT, "version": VERSION, "step": step, "model_config": to_dict(model_cfg),
                    "train_config": to_dict(train_cfg) if train_cfg is not None else None,
                    "n_params": sum(p.numel() for p in model.parameters()),
                    "data_state": data_state, "history": history or [], "scaler": scaler_state,
                    "extra": extra or {}}
        if optimizers is not None:
            tensors, meta = optimizer_state(optimizers)
            save_file(tensors, str(tmp / OPTIM), metadata={"format": "pt"})
            manifest["optimizers"] = meta
        if with_rng:
            manifest["rng"] = rng_state()
        manifest["files"] = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                             for p in sorted(tmp.iterdir())}
        _write_json(tmp / MANIFEST, manifest)  # written last: its presence marks a complete directory
        final = run_dir / name
        if final.exists():  # re-saving the same name: move the old one aside first (rename needs an empty target)
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=run_dir))
            os.replace(final, old / name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_latest:
        pointer = run_dir / f".{LATEST}.tmp"
        pointer.write_text(name + "\n")
        os.replace(pointer, run_dir / LATEST)
    if keep:
        ckpts = sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name.startswith("step_"))
        for p in ckpts[:-keep]:
            if p.name != name:
                shutil.rmtree(p, ignore_errors=True)
    return final


# --- loading -------------------------------------------------------------------------------------
def load_checkpoint(path: str | Path, device="cpu") -> dict:
    """A verified checkpoint as a dict: manifest fields plus `dir`, `model_config`, `train_config`,
    `weights` (tensors), `optim_tensors` (or None) and `tokenizer`."""
    ckpt = resolve(path)
    manifest = verify_checkpoint(ckpt)
    out = dict(manifest)
    out["dir"] = ckpt
    out["model_config"] = model_config_from_dict(manifest["model_config"])
    tc = manifest.get("train_config")
    out["train_config"] = train_config_from_dict(tc) if tc else None
    out["weights"] = load_file(str(ckpt / WEIGHTS), device=str(device))
    out["optim_tensors"] = load_file(str(ckpt / OPTIM), device=str(device)) if (ckpt / OPTIM).exists() else None
    out["tokenizer"] = P2TTokenizer.load(ckpt / TOKENIZER_FILE)
    return out


def load_weights(model: MinimalLLM, weights: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_embeddings else set()
    if set(missing) - tied or unexpected:
        raise CheckpointError(f"weights do not fit the model: missing {sorted(set(missing) - tied)}, "
                              f"unexpected {sorted(unexpected)}")


def load_model(path: str | Path, device="cpu", dtype: torch.dtype | str | None = "auto"
               ) -> tuple[MinimalLLM, P2TTokenizer]:
    """(model in eval mode, tokenizer) from a checkpoint or run directory (e.g. the shipped weights).
    dtype "auto": bf16 weights on a GPU that has bf16 (decoding then casts nothing per token), else fp32."""
    if dtype == "auto":
        cuda = torch.device(device).type == "cuda"
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    ck = load_checkpoint(path, device="cpu")
    model = MinimalLLM(ck["model_config"])
    load_weights(model, ck["weights"])
    model.to(device=device, dtype=dtype)
    if dtype is not None:  # keep the RoPE tables in fp32
        model.reset_rope(device=device)
    return model.eval(), ck["tokenizer"]


def export_model(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint's weights, tokenizer and configs, without optimizer or RNG state, to `dst`
    (e.g. model/weights/ for shipping); `dst` is then itself a loadable checkpoint directory."""
    ck = load_checkpoint(src)
    model = MinimalLLM(ck["model_config"])
    load_weights(model, ck["weights"])
    dst = Path(dst)
    return save_checkpoint(dst.parent, dst.name, model=model, tokenizer=ck["tokenizer"],
                           model_cfg=ck["model_config"], step=ck["step"], history=ck.get("history"),
                           with_rng=False, update_latest=False)
