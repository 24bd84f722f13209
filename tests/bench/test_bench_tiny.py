"""`p2t bench --tiny`: the benchmark's code paths (translate, agree-check, accounting, table, JSON, plot) on CPU.

The bench runs in a subprocess: its CPU mode sets TRITON_INTERPRET=1, which must happen before the process first
imports triton (other tests in this process may already have). Timings are never asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2t_core.bench import suite
from p2t_core.bench.harness import BenchRun, Ceilings, UnitResult, account, count_flops, rel_error
from p2t_core.bench.report import geomean, summary, targets

REPO = Path(__file__).resolve().parents[2]
UNITS = ["ew_chain_bf16", "row_sum_8192x8192_fp32", "softmax_65536x1024_fp32", "rmsnorm_16384x4096_bf16",
         "layer_norm_16384x4096_bf16", "linear_relu_4096_fp16"]


def _bench(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "p2t_core.bench.cli", "--tiny", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


def test_suite_is_well_formed():
    units = suite.get_suite()
    names = [u.name for u in units]
    assert len(names) == len(set(names))
    families = {u.family for u in units}
    assert {suite.ELEMENTWISE, suite.REDUCTION, suite.SOFTMAX, suite.NORM, suite.LOSS, suite.MATMUL} <= families
    for u in units:
        assert u.kind in ("memory", "matmul")
        assert set(u.shapes) == set(u.tiny_shapes), u.name
        assert all(len(u.shapes[k]) == len(u.tiny_shapes[k]) for k in u.shapes), u.name
        assert all(n <= 64 for s in u.tiny_shapes.values() for n in s), u.name
    assert suite.select(units, "softmax,rmsnorm") == [u for u in units if "softmax" in u.name or "rmsnorm" in u.name]


def test_tiny_suite_end_to_end(tmp_path):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    proc = _bench("--only", ",".join(UNITS), "--json", str(out_json), "--plot", str(out_png), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    data = json.loads(out_json.read_text())
    assert data["meta"]["tiny"] is True and data["meta"]["device_type"] in ("cpu", "cuda")
    assert data["meta"]["torch"] and data["meta"]["triton"] and data["meta"]["date"]
    assert data["ceilings"]["copy_gbps"] > 0 and data["ceilings"]["matmul_tflops"]
    results = {r["name"]: r for r in data["results"]}
    assert set(results) == set(UNITS)
    for r in results.values():
        assert r["status"] == "ok", r
        assert r["agree"] is True, r
        assert r["p2t_ms"] > 0 and r["eager_ms"] > 0
        assert r["bytes"] > 0
        assert r["speedup_vs_eager"] is not None
        # memory-bound units are also measured against a copy of their own bytes; matmuls are not
        assert (r["copy_same_ms"] > 0 and r["frac_same"]["p2t"] > 0) if r["kind"] == "memory" else \
            r["copy_same_ms"] is None
    # bytes: inputs read once + outputs written once
    assert results["ew_chain_bf16"]["bytes"] == 3 * 37 * 2
    assert results["row_sum_8192x8192_fp32"]["bytes"] == (5 * 7 + 5) * 4
    assert results["rmsnorm_16384x4096_bf16"]["bytes"] == (2 * 4 * 16 + 16) * 2  # x, out, weight
    assert results["layer_norm_16384x4096_bf16"]["bytes"] == (2 * 4 * 16 + 2 * 16) * 2  # x, out, weight, bias
    lr = results["linear_relu_4096_fp16"]
    assert lr["flops"] == 2 * 5 * 6 * 7 and lr["kind"] == "matmul" and lr["tflops"]["p2t"] > 0
    assert results["ew_chain_bf16"]["flops"] == 0
    assert {t["name"] for t in data["targets"]} and data["summary"]["ok"] == len(UNITS)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table and the target checks go to stdout
    assert "linear_relu_4096_fp16" in proc.stdout and "targets (issue 3)" in proc.stdout


def test_file_mode_and_errors(tmp_path):
    src = tmp_path / "units.py"
    src.write_text("import torch\n\n\ndef scale_add(x, y, alpha: float = 0.5):\n    return x * alpha + torch.exp(y)\n")
    # --compile-backend none: the suite test exercises torch.compile already; this one spares its import time
    proc = _bench(str(src), "--shapes", "x=6x5,y=6x5", "--json", str(tmp_path / "f.json"), "--compile-backend", "none",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "f.json").read_text())
    (r,) = data["results"]
    assert r["name"] == "scale_add" and r["agree"] is True and r["family"] == "user" and r["kind"] == "memory"
    assert r["bytes"] == 3 * 30 * 4
    assert r["compile_ms"] is None and r["compile_error"] is None and data["meta"]["compile_backend"] == "none"


def test_cli_errors_and_help(tmp_path):
    """These exit before anything imports triton, so they run in-process."""
    from click.testing import CliRunner

    from p2t_core.bench.cli import bench

    src = tmp_path / "units.py"
    src.write_text("def f(x):\n    return x + 1.0\n")
    missing = CliRunner().invoke(bench, [str(src), "--tiny"])
    assert missing.exit_code == 2 and "--shapes" in missing.output
    none = CliRunner().invoke(bench, ["--tiny", "--only", "no_such_unit"])
    assert none.exit_code == 2 and "no unit matches" in none.output
    result = CliRunner().invoke(bench, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--tiny" in result.output and "--shapes" in result.output


# -- accounting and target checks on synthetic results (no kernels run) ----------------------------------------

def _result(name, kind="memory", ms=1.0, eager=2.0, compile_ms=1.0, **kw):
    r = UnitResult(name, kw.pop("family", "elementwise"), kw.pop("dtype", "float16"), kind, "", name, agree=True,
                   p2t_ms=ms, eager_ms=eager, compile_ms=compile_ms, **kw)
    return r


def test_accounting():
    c = Ceilings(copy_gbps=3000.0, matmul_tflops={"float16": 700.0})
    r = _result("m", bytes=3 * 10**9)
    account(r, c)
    assert r.gbps["p2t"] == pytest.approx(3000.0) and r.frac["p2t"] == pytest.approx(1.0)
    assert r.speedup_vs_eager == pytest.approx(2.0) and r.speedup_vs_compile == pytest.approx(1.0)
    assert r.frac_same == {}  # no same-size copy timed
    r.copy_same_ms = 0.8
    account(r, c)
    assert r.frac_same["p2t"] == pytest.approx(0.8) and r.frac_same["eager"] == pytest.approx(0.4)
    mm = _result("mm", kind="matmul", ms=0.2, flops=2 * 4096**3, bytes=3 * 2 * 4096**2)
    account(mm, c)
    assert mm.tflops["p2t"] == pytest.approx(2 * 4096**3 / 0.2e-3 / 1e12)
    assert mm.frac["p2t"] == pytest.approx(mm.tflops["p2t"] / 700.0)
    nothing = _result("x", ms=None, eager=None, compile_ms=None)
    account(nothing, c)
    assert nothing.frac["p2t"] is None and nothing.speedup_vs_eager is None


def test_count_flops():
    import torch

    a, v, w = torch.randn(8, 6), torch.randn(6), torch.randn(6, 7)
    assert count_flops(lambda: a @ v) == 2 * 8 * 6
    assert count_flops(lambda: torch.relu(a @ w + 1.0)) == 2 * 8 * 6 * 7
    assert count_flops(lambda: torch.bmm(torch.randn(3, 8, 6), torch.randn(3, 6, 7))) == 2 * 3 * 8 * 6 * 7
    assert count_flops(lambda: (a * 2).sum(-1)) == 0


def test_rel_error():
    import torch

    a = torch.randn(100)
    assert rel_error(a, a.clone())[0] == 0.0
    assert rel_error(a, a[:50])[0] == math.inf
    assert rel_error(a.half(), a)[0] == math.inf  # a dtype mismatch is a disagreement
    b = a.clone()
    b[3] = float("nan")
    assert rel_error(b, a)[0] == math.inf
    assert rel_error((a, a), (a,))[0] == math.inf


def test_targets_met_and_missed():
    c = Ceilings(copy_gbps=1000.0, matmul_tflops={"float16": 100.0, "bfloat16": 100.0})
    good = [
        _result("ew", bytes=950 * 10**6, ms=1.0, eager=3.0, compile_ms=1.0, tags=["fused"]),
        _result("mm4096", kind="matmul", flops=96 * 10**9, ms=1.0, tags=["matmul4096"], family="matmul"),
        _result("lr", kind="matmul", flops=96 * 10**9, ms=1.0, eager=1.5, tags=["fused_epilogue"], family="matmul"),
    ]
    for r in good:
        account(r, c)
    run = BenchRun({}, c, good)
    assert {t.status for t in targets(run)} == {"met"}
    assert summary(run)["geomean_vs_eager_fused"] == pytest.approx(3.0)
    slow = _result("slow", bytes=500 * 10**6, ms=1.0, compile_ms=0.5)
    broken = _result("broken", bytes=10**9, status="p2t_failed")
    for r in (slow, broken):
        account(r, c)
    statuses = {t.name: t.status for t in targets(BenchRun({}, c, good + [slow, broken]))}
    assert statuses["memory-bound units >= 0.90 of copy bandwidth"] == "missed"
    assert statuses["memory-bound units none slower than 0.95x torch.compile"] == "missed"
    assert geomean([2.0, 8.0, None]) == pytest.approx(4.0) and geomean([]) is None
