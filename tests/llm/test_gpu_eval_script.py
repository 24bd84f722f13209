"""scripts/gpu_eval.sh on the CPU (tiny weights, interpreter): every weights is evaluated on the same rows of each
split, one JSON per (weights, split), and the pair compares with scripts/compare_evals.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_two_weights_on_two_splits_give_paired_results(tiny_weights, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n",
             "source": f"import torch\n\n\ndef g(x):\n    return torch.{op}(x)\n", "family": "elementwise",
             "style": "torch", "id": op} for op in ("sin", "cos", "exp")]
    for split in ("valid_random", "valid_compositional"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "P2T_NO_GPU_ENV": "1", "OUT": str(tmp_path / "out"), "DATA": str(data), "BACKEND": "interpret",
           "WEIGHTS": f"a={tiny_weights} b={tiny_weights}", "SPLITS": "valid_random:2 valid_compositional:3",
           "JOBS": "1", "BUDGET": "200", "BATCH": "2"}
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_eval.sh")], env=env, capture_output=True, text=True,
                       timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    order = [line.split(":")[0] for line in r.stdout.splitlines() if ": exit 0 in" in line]
    assert order == ["a valid_random 2", "b valid_random 2", "a valid_compositional 3", "b valid_compositional 3"]
    for split, n in (("valid_random", 2), ("valid_compositional", 3)):
        a, b = (json.loads((tmp_path / "out" / f"eval_{w}_{split}.json").read_text()) for w in "ab")
        assert a["rows"] == b["rows"] == n and [x["id"] for x in a["per_row"]] == [x["id"] for x in b["per_row"]]
    cmp = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_evals.py"),
                          str(tmp_path / "out" / "eval_a_valid_random.json"),
                          str(tmp_path / "out" / "eval_b_valid_random.json")], capture_output=True, text=True)
    assert cmp.returncode == 0 and "2 rows" in cmp.stdout
