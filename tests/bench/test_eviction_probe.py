"""scripts/gpu_eviction_probe.py in its CPU mode (interpreter): every variant of the kernels' loads runs, agrees
with eager and is timed, so the GPU measurement cannot rot. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_eviction_probe_tiny_runs_every_variant(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_eviction_probe.py"), "--tiny", "--out",
                           str(tmp_path), "--only", "matvec", "--rounds", "1"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    (unit,) = json.loads((tmp_path / "eviction.json").read_text())["units"]
    assert unit["unit"] == "matvec_8192_fp16"
    assert set(unit["ms"]) == {"generated", "none", "first", "first_last"} and all(ms > 0 for ms in unit["ms"].values())
    assert all(err < 1e-3 for err in unit["rel_error"].values())
