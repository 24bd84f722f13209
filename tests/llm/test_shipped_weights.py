"""The shipped weights (model/weights): within the repository's limits, loaded without pickle and checked
against their index, and good for a translation with `--engine llm` on a fresh install (CPU, no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import p2t_model
from p2t_model.quantize import INDEX, MAX_SHARD_BYTES

SHIPPED = Path(p2t_model.__file__).resolve().parent / "weights"

# A unit of the held-out split that the shipped model translates (greedy, verified on the interpreter).
UNIT = '''import torch


def scaled_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) * 2.0
'''


def test_shipped_weights_fit_the_repository_limits():
    index = json.loads((SHIPPED / INDEX).read_text())
    shards = [SHIPPED / name for name in index["files"] if name.endswith(".safetensors")]
    assert shards and all(p.stat().st_size <= MAX_SHARD_BYTES for p in shards)
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) <= 64 * 2**20
    assert index["model_config"]["n_layer"] == 12 and index["model_config"]["d_model"] == 512  # the 50M model


def test_engine_llm_translates_with_the_shipped_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("P2T_WEIGHTS")  # the test session points it at an empty directory; here: the shipped ones
    src = tmp_path / "unit.py"
    src.write_text(UNIT)
    out = tmp_path / "unit_triton.py"
    r = subprocess.run([sys.executable, "-m", "p2t_core.cli", "translate", str(src), "--engine", "llm",
                        "--candidates", "1", "--backend", "interpret", "--dtypes", "float32", "-o", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "engine: llm" in out.read_text().splitlines()[0]
    assert "@triton.jit" in out.read_text()
