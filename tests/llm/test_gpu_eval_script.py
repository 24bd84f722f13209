"""scripts/gpu_eval.sh on the CPU (tiny weights, interpreter): every weights is evaluated on the same rows of each
split, one JSON per (weights, split), and the pair compares with scripts/compare_evals.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n",
             "source": f"import torch\n\n\ndef g(x):\n    return torch.{op}(x)\n", "family": "elementwise",
             "style": "torch", "id": op} for op in ("sin", "cos", "exp")]
    for split in ("valid_random", "valid_compositional"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _run(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "P2T_NO_GPU_ENV": "1", "OUT": str(tmp_path / "out"), "DATA": str(_data(tmp_path)), "BACKEND": "interpret",
           "JOBS": "1", "BUDGET": "200", "BATCH": "2", **env}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu_eval.sh")], env=env, capture_output=True, text=True,
                          timeout=600, cwd=REPO)


def test_two_weights_on_two_splits_give_paired_results(tiny_weights, tmp_path):
    r = _run(tmp_path, WEIGHTS=f"a={tiny_weights} b={tiny_weights}", SPLITS="valid_random:2 valid_compositional:3")
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


def test_a_candidate_is_compared_with_the_shipped_verdicts_and_skips_what_the_deadline_leaves_no_time_for(
        tiny_weights, tmp_path):
    against = tmp_path / "evals"
    against.mkdir()
    # read_split(limit=2) of the 3 rows takes rows 1 and 2
    shipped = [{"id": op, "family": "elementwise", "greedy_ok": True} for op in ("cos", "exp")]
    (against / "shipped_valid_random_2.json").write_text(json.dumps({"per_row": shipped}))
    r = _run(tmp_path, WEIGHTS=f"new={tiny_weights}", SPLITS="valid_random:2", AGAINST=str(against))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "new valid_random 2: exit 0" in r.stdout and "2 rows: new " in r.stdout and "shipped 2/2" in r.stdout
    r = _run(tmp_path, WEIGHTS=f"new={tiny_weights}", SPLITS="valid_random:2", DEADLINE=str(int(time.time()) + 15))
    assert "new valid_random 2: skipped, the deadline is near" in r.stdout


def test_pack_leaves_one_tarball_of_the_results(tiny_weights, tmp_path):
    r = _run(tmp_path, WEIGHTS=f"a={tiny_weights}", SPLITS="valid_random:1", PACK="1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["evals.tar.gz"]
    with tarfile.open(tmp_path / "out" / "evals.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["eval_a_valid_random.json", "eval_a_valid_random.log"]
