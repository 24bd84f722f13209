"""scripts/kernel_anatomy.py at the units' tiny shapes: launches recorded without running, compiled for sm_90."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kernel_anatomy.py"


def test_anatomy_names_each_launch_with_its_residency_and_accesses(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "anatomy.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--only", "col_sum,layer_norm_16384,matmul_1024_fp16",
                          "--json", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    units = {u["unit"]: u for u in json.loads(out.read_text())}
    assert set(units) == {"col_sum_8192x8192_fp32", "layer_norm_16384x4096_bf16", "matmul_1024_fp16"}
    for u in units.values():
        assert u["launches"], u["unit"]
        for x in u["launches"]:
            assert x["programs"] == math.prod(x["grid"])
            assert x["registers"] and 1 <= x["per_sm"] <= 32 and 0 < x["occupancy"] <= 1
            assert any(k.startswith("ld.") for k in x["accesses"]) and any(k.startswith("st.") for k in x["accesses"])
    assert "occupancy" in run.stdout and "a SM (by" in run.stdout


def test_residency_takes_the_tightest_limit():
    sys.path.insert(0, str(SCRIPT.parent))
    from kernel_anatomy import residency

    assert residency(8, 32, 0) == (8, "threads")  # 8 warps: 8 programs fill 64 warps
    assert residency(8, 46, 32) == (5, "registers")  # 46 -> 48 per thread: 1,536 per warp, 42 warps
    assert residency(4, 32, 200_000) == (1, "shared")
    assert residency(1, 16, 0) == (32, "blocks")
