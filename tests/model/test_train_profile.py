"""scripts/train_profile.py in its CPU mode: every mode times and profiles the same steps and writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_profile.py"


def test_profile_every_mode_on_the_same_steps_on_cpu(tmp_path, data_dir, tok):
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--data", str(data_dir), "--tokenizer",
                           str(tmp_path / "tokenizer.json"), "--out", str(out), "--steps", "1", "--warmup", "1",
                           "--rows", "5", "--timed", "1",
                           "--modes", "padded,packed,graph"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    padded, packed, graph = json.loads((out / "profile.json").read_text())
    assert (padded["mode"], packed["mode"], graph["mode"]) == ("padded", "packed", "graph")
    assert padded["tokens"] == packed["tokens"] == graph["tokens"] > 0  # the very same pairs in every mode
    for summary in (padded, packed, graph):
        assert summary["unprofiled"]["tokens_per_s"] > 0 and 0 < summary["unprofiled"]["mfu"] < 1
        assert "aten::" in (out / f"profile_{summary['mode']}.txt").read_text()
