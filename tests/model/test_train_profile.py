"""scripts/train_profile.py in its CPU mode: both modes profile the same steps and write their tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_profile.py"


def test_profile_padded_and_packed_steps_on_cpu(tmp_path, data_dir, tok):
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--data", str(data_dir), "--tokenizer",
                           str(tmp_path / "tokenizer.json"), "--out", str(out), "--steps", "1", "--warmup", "1",
                           "--rows", "5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    padded, packed = json.loads((out / "profile.json").read_text())
    assert (padded["mode"], packed["mode"]) == ("padded", "packed")
    assert padded["tokens"] == packed["tokens"] > 0  # the very same pairs, with and without padding
    for mode in ("padded", "packed"):
        assert "aten::" in (out / f"profile_{mode}.txt").read_text()
