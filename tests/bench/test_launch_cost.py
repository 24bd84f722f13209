"""scripts/gpu_launch_cost.py in its CPU mode (interpreter): it records each kernel launch of a translated module
and replays it through Triton's launch, so the GPU measurement cannot rot. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_launch_cost_tiny_records_every_kernel_launch(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_launch_cost.py"), "--tiny", "--out",
                           str(tmp_path), "--only", "smooth_l1"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    data = json.loads((tmp_path / "launch_cost.json").read_text())
    (unit,) = data["units"]
    assert unit["unit"] == "smooth_l1_loss_bf16"
    # a split reduction: one launch, whose last program combines the chunks' partial results
    assert [k["kernel"] for k in unit["launches"]] == ["_smooth_l1_0_kernel"]
    assert all(k["jit_us"] > 0 and k["spec_key_us"] > 0 for k in unit["launches"])
    assert "function calls" in unit["profile"]
