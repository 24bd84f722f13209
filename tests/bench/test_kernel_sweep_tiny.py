"""scripts/gpu_kernel_sweep.py in its CPU mode (interpreter, tiny shapes): every kind of variant it sets on a
translated module (forced split, row and matmul configurations, rows viewed as inner positions) still launches
and agrees with eager, so the GPU sweep cannot rot. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sweep_tiny_runs_every_variant_kind(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_kernel_sweep.py"), "--tiny", "--out",
                           str(tmp_path), "--only", "col_sum,matvec,matmul_1024,softmax_1048576"], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["meta"]["tiny"] is True
    rows = data["rows"]
    assert {r["unit"] for r in rows} == {"col_sum_8192x8192_fp32", "matvec_8192_fp16", "matmul_1024_bf16",
                                         "softmax_1048576x64_fp32"}
    assert not [r for r in rows if "error" in r]
    variants = {r["variant"] for r in rows}
    assert {"eager", "p2t_default", "old_no_split", "s16_16x128", "rows_inner_256x16", "64x64x64x4x4",
            "old_one_row_1w", "rows_64x8w"} <= variants
    assert all(r["ms"] > 0 for r in rows)
    assert (tmp_path / "sweep.txt").read_text().count("\n") >= len(rows)
