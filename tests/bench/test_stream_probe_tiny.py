"""scripts/stream_probe.py in its CPU mode (interpreter, tiny shapes): the hand-written pointer kernel of the
tall-skinny product and the wide column-sum kernels launch and agree with torch, so the GPU probe cannot rot.
Timings are never asserted (the TMA variants need a GPU and are not run here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_stream_probe_tiny_variants_agree_with_torch(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "stream_probe.py"), "--tiny", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    rows = json.loads((tmp_path / "stream_probe.json").read_text())["rows"]
    variants = {(r["unit"], r["variant"].split()[0]) for r in rows}
    assert {("tall_skinny", "pointers"), ("col_sum", "wide"), ("col_sum", "torch.sum(x,")} <= variants
    assert all(r["ok"] for r in rows)
