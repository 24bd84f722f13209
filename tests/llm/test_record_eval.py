"""scripts/record_eval.py: a `p2t eval --json` result cut to the per-row verdicts docs/evals commits."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "record_eval.py"
spec = importlib.util.spec_from_file_location("record_eval", SCRIPT)
record_eval = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record_eval)

LABELS = {"weights": "W", "machine": "M", "sample": "S", "command": "C"}


def result(oks, **extra) -> dict:
    rows = [{"id": f"u{i}", "family": "elementwise", "greedy_ok": ok, "greedy_text": "import torch\n" * 50}
            for i, ok in enumerate(oks)]
    return {"split": "valid_random", "backend": "aot", "per_row": rows, "interrupted": False, "seconds": 3.0, **extra}


def test_the_record_keeps_the_verdicts_and_labels_them_without_the_candidates_texts(tmp_path):
    src, out = tmp_path / "eval.json", tmp_path / "rec.json"
    src.write_text(json.dumps(result([True, False, True, True])))
    args = [f"--{k}={v}" for k, v in LABELS.items()]
    run = subprocess.run([sys.executable, str(SCRIPT), str(src), str(out), *args], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    rec = json.loads(out.read_text())
    assert (rec["rows"], rec["passed"], rec["pass@1_greedy"]) == (4, 3, 0.75)
    assert {k: rec[k] for k in LABELS} == LABELS and rec["split"] == "valid_random" and rec["backend"] == "aot"
    assert [r["id"] for r in rec["per_row"]] == ["u0", "u1", "u2", "u3"]
    assert not any("greedy_text" in r for r in rec["per_row"])
    assert "3/4" in run.stdout


def test_an_interrupted_eval_is_refused():
    with pytest.raises(SystemExit, match="interrupted"):
        record_eval.record(result([True], interrupted=True), **LABELS)
