"""Tiny hand-made (Python, Triton) pairs written to tmp_path, and the tiny configs."""

from __future__ import annotations

import json
import tarfile

import pytest
import torch
from p2t_model.config import preset

# One intra-op thread per test process: with `-n 2` on two cores, more threads only contend.
torch.set_num_threads(1)

UNARY = ["exp", "log", "sin", "cos", "sqrt", "abs", "sigmoid", "tanh"]
BINARY = [("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")]

KERNEL = '''import torch
import triton
import triton.language as tl


@triton.jit
def _{name}_0_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, {expr}, mask=mask)


def {name}(x, y):
    out = torch.empty_like(x)
    n = x.numel()
    _{name}_0_kernel[(triton.cdiv(n, 1024),)](x, y, out, n, BLOCK=1024)
    return out
'''


def make_pairs() -> list[dict]:
    rows = []
    for op in UNARY:
        name = f"f_{op}"
        rows.append({"prompt": f"def {name}(x, y):\n    return torch.{op}(x) + y\n",
                     "target": KERNEL.format(name=name, expr=f"tl.{op}(x) + y"),
                     "family": "elementwise", "style": "torch", "hash": f"u-{op}"})
    for op, sym in BINARY:
        name = f"g_{op}"
        rows.append({"prompt": f"def {name}(x, y):\n    return x {sym} y\n",
                     "target": KERNEL.format(name=name, expr=f"x {sym} y"),
                     "family": "elementwise", "style": "functional", "hash": f"b-{op}"})
    return rows


def write_split(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


@pytest.fixture(scope="session")
def pairs():
    return make_pairs()


@pytest.fixture(scope="session")
def tok(pairs):
    """A tokenizer trained on the tiny pairs."""
    from p2t_model.tokenizer import P2TTokenizer

    return P2TTokenizer.train([t for r in pairs for t in (r["prompt"], r["target"])], vocab_size=400)


@pytest.fixture
def make_data(tmp_path):
    """make_data(train_rows, name) -> a data directory holding just train.jsonl."""

    def make(rows, name="data2"):
        d = tmp_path / name
        d.mkdir()
        write_split(d / "train.jsonl", rows)
        return d

    return make


@pytest.fixture
def data_dir(tmp_path):
    rows = make_pairs()
    d = tmp_path / "data"
    d.mkdir()
    write_split(d / "train.jsonl", rows)
    write_split(d / "valid_random.jsonl", rows[:3])
    write_split(d / "valid_compositional.jsonl", rows[-3:])
    return d


@pytest.fixture
def data_tarball(tmp_path, data_dir):
    """data_dir packed as the .tar.xz a GPU call is given (DATA_TAR of the scripts/gpu_*.sh scripts)."""
    path = tmp_path / "data.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        for f in sorted(data_dir.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
    return path


@pytest.fixture
def tiny():
    """(ModelConfig, TrainConfig) of the tiny preset, sized for a few seconds of CPU."""
    m, t = preset("tiny")
    t.max_steps, t.warmup_steps, t.eval_interval, t.ckpt_interval, t.log_interval = 6, 2, 3, 3, 1
    return m, t
