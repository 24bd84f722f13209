"""scripts/gpu_timing_probe.py in its CPU mode (interpreter, the bench's tiny shapes): every way it times a unit
(the bench's order, the sweep's, both settled, the sweep's winning configurations) runs on a row reduction, a Module
and a tiled matmul and agrees with eager, and the CUDA-only diagnostics are skipped cleanly, so the GPU probe cannot
rot. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "scripts" / "gpu_timing_probe.py"
UNITS = {"matvec_8192_fp16", "rmsnorm_16384x4096_bf16", "tall_skinny_65536x1024x64_fp16"}


def test_probe_tiny_runs_every_timing_path(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1", "OUT": str(tmp_path)}  # --out defaults to $OUT
    only = "matvec,rmsnorm_16384x4096_bf16,tall_skinny"
    proc = subprocess.run([sys.executable, str(PROBE), "--tiny", "--only", only], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    data = json.loads((tmp_path / "probe.json").read_text())
    assert data["meta"]["tiny"] is True and data["flush"]["us"] is None
    units = {u["unit"]: u for u in data["units"]}
    assert set(units) == UNITS
    expected = {("bench_order", impl, "bench") for impl in ("p2t", "eager", "compile")}
    expected |= {("sweep_order", impl, "sweep") for impl in ("p2t", "eager", "compile")}
    expected |= {("settled", impl, method) for impl in ("p2t", "eager", "compile") for method in ("bench", "sweep")}
    for u in units.values():
        assert u["status"] == "ok", u
        assert "skipped" in u["diagnostics"]
        assert expected <= {(r["phase"], r["impl"], r["method"]) for r in u["rows"]}
        assert all("error" not in r and r["ms"] > 0 for r in u["rows"]), u["rows"]
    variant_rows = [r["impl"] for r in units["matvec_8192_fp16"]["rows"] if r["phase"] == "variant"]
    assert variant_rows == ["p2t[single_4w]", "p2t"]
    assert "p2t[64x64x64x4x4]" in units["tall_skinny_65536x1024x64_fp16"]["errors"]
    assert "bench order" in (tmp_path / "probe.txt").read_text()


def test_probe_refuses_to_time_the_interpreter_as_a_gpu_run(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(PROBE), "--out", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "TRITON_INTERPRET=1" in proc.stderr
