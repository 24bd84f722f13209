"""scripts/op_contexts.py: (op, the op that made its first operand) pairs of a corpus's prompts, in model form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "op_contexts.py"
sys.path.insert(0, str(SCRIPT.parent))

from op_contexts import contexts  # noqa: E402

THREE_ADDRESS = """import torch

def unit_fn(x, y):
    a0 = x
    a1 = y
    v1 = torch.exp(a0)
    v2 = v1 ** 1.5
    v3 = v2.log()
    v4 = 0.5 * v3
    v5 = -v4
    v6 = torch.nn.functional.silu(v5)
    v7 = v6 + a1
    return v7
"""


def test_each_line_counts_its_op_after_the_op_of_its_first_operand():
    assert contexts(THREE_ADDRESS) == [("exp", "input"), ("pow 1.5", "exp"), ("log", "pow 1.5"), ("mul", "const"),
                                       ("neg", "mul"), ("silu", "neg"), ("add", "silu")]


def test_script_counts_a_split(tmp_path):
    row = {"family": "elementwise", "ranks": [2, 2], "prompt": "import torch\n\ndef f(x, y):\n"
           "    return (torch.exp(x) ** 1.5 + y).log()\n"}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "family": "matmul"}) + "\n")
    out = tmp_path / "counts.json"
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--ops", "pow 1.5,log", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(out.read_text())
    assert counts["pow 1.5"] == {"exp": 1} and counts["log"] == {"add": 1}  # the matmul row is left out
    assert "pow 1.5" in run.stdout and "exp 1 (100%)" in run.stdout
