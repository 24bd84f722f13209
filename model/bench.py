"""Training throughput on synthetic pairs: tokens/s and MFU of a config on this machine.

    python -m p2t_model.bench --preset 50m --steps 30 [--compile] [--dtype bf16|fp16]

The pairs are Triton-shaped text of realistic length (~1k tokens), so the numbers match real training
closely enough to size a run; losses on them mean nothing.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
from pathlib import Path

import click

OPS = ["exp", "log", "sin", "cos", "sqrt", "abs", "sigmoid", "tanh", "maximum", "minimum"]


def synthetic_pairs(n: int, seed: int = 0, kernels: tuple[int, int] = (2, 6)) -> list[dict]:
    """n (prompt, target) pairs: a chain of ops and a module with one kernel per op group."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randint(*kernels)
        ops = [rng.choice(OPS) for _ in range(k)]
        name = f"f{i}"
        body = "".join(f"    x{j + 1} = torch.{op}(x{j})\n" for j, op in enumerate(ops))
        prompt = f"def {name}(x0):\n{body}    return x{k}\n"
        kern = []
        for j, op in enumerate(ops):
            kern.append(
                f"@triton.jit\ndef _{name}_{j}_kernel(in_ptr, out_ptr, n, BLOCK: tl.constexpr):\n"
                f"    pid = tl.program_id(0).to(tl.int64)\n    offs = pid * BLOCK + tl.arange(0, BLOCK)\n"
                f"    mask = offs < n\n    x = tl.load(in_ptr + offs, mask=mask, other=0.0).to(tl.float32)\n"
                f"    y = tl.{op}(x)\n    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)\n\n\n")
        launch = "".join(f"    out{j} = torch.empty_like(x)\n    _{name}_{j}_kernel[grid](x, out{j}, n, BLOCK=1024)\n"
                         f"    x = out{j}\n" for j in range(k))
        target = ("import torch\nimport triton\nimport triton.language as tl\n\n\n" + "".join(kern)
                  + f"def {name}(x):\n    x = x.contiguous()\n    n = x.numel()\n"
                  f"    grid = (triton.cdiv(n, 1024),)\n{launch}    return x\n")
        rows.append({"prompt": prompt, "target": target, "family": "elementwise", "style": "torch",
                     "hash": f"syn{i}"})
    return rows


def write_synthetic(data_dir: Path, n: int, seed: int = 0, kernels: tuple[int, int] = (2, 6)) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = synthetic_pairs(n, seed, kernels)
    for split, part in (("train", rows[: n * 9 // 10]), ("valid_random", rows[n * 9 // 10:])):
        with open(data_dir / f"{split}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    return data_dir


@click.command()
@click.option("--preset", "preset_name", default="50m", type=click.Choice(["50m", "tiny"]))
@click.option("--steps", default=30, show_default=True)
@click.option("--pairs", default=3000, show_default=True)
@click.option("--compile/--no-compile", "compile_", default=None, help="Default: the config's (on, on CUDA).")
@click.option("--dtype", default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Keep the run here (default: a temp dir).")
def main(preset_name, steps, pairs, compile_, dtype, device, out):
    """Measure tokens/s and MFU of a few training steps on synthetic pairs."""
    from .config import preset
    from .train import train

    m, t = preset(preset_name)
    t.dtype, t.max_steps = dtype, steps
    if compile_ is not None:
        t.compile = compile_
    t.warmup_steps, t.eval_interval, t.ckpt_interval, t.log_interval = 5, steps, steps, 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out) if out else Path(tmp)
        data = write_synthetic(root / "data", pairs, kernels=(1, 1) if m.context < 1024 else (2, 6))
        r = train(m, t, data, root / "run", device=device, progress=False)
    train_steps = [h for h in r.history if "tokens_per_s" in h]
    skip = min(len(train_steps) - 1, max(3, len(train_steps) // 3))  # compile and warm-up steps excluded
    tail = train_steps[skip:]
    tok_s = statistics.median(h["tokens_per_s"] for h in tail)
    mfu = statistics.median(h["mfu"] for h in tail)
    summary = {"preset": preset_name, "compile": t.compile, "dtype": dtype, "n_params": r.n_params,
               "tokens_per_s": round(tok_s), "mfu": round(mfu, 4), "first_loss": train_steps[0]["loss"],
               "last_loss": train_steps[-1]["loss"], "steps_measured": len(tail)}
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
