"""scripts/gpu_data_train.sh on the CPU (tiny preset, carried data): a run stopped with STOP_AFTER continues
with RESUME=1 in a second job on the data the first left, as a run longer than one device call does; RESUME=1
without a run is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_data_train.sh"


def run_script(tmp_path: Path, out: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "P2T_NO_GPU_ENV": "1", "PRESET": "tiny", "EVAL_LIMIT": "0", "TRAIN_BUDGET": "250",
            "OUT": str(tmp_path / out), **env}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=400)


def carry(tmp_path: Path, data_tarball: Path, tok, train: dict) -> dict[str, str]:
    """The corpus as a carried tarball, the tokenizer and a config: the files a GPU call is given."""
    tok.save(tmp_path / "tokenizer.json")
    (tmp_path / "cfg.json").write_text(json.dumps({"model": {"context": 4096}, "train": train}))
    return {"DATA_TAR": str(data_tarball), "TOKENIZER": str(tmp_path / "tokenizer.json"),
            "CONFIG": str(tmp_path / "cfg.json"), "WORK": str(tmp_path / "work")}


def test_stop_after_then_resume_continues_the_run(tmp_path, data_tarball, tok):
    common = {**carry(tmp_path, data_tarball, tok, {"micro_batch": 2, "grad_accum": 2, "ckpt_interval": 2,
                                                "eval_interval": 2, "eval_batches": 1, "warmup_steps": 1,
                                                "log_interval": 1}), "STEPS": "4"}

    first = run_script(tmp_path, "out1", STOP_AFTER="2", **common)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "done: step 2," in first.stdout
    assert (tmp_path / "out1" / "weights" / "quantized.json").exists()  # each call exports what it has

    without_tar = {k: v for k, v in common.items() if k != "DATA_TAR"}  # the first call's data is still there
    second = run_script(tmp_path, "out2", RESUME="1", **without_tar)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "training on the data already in" in second.stdout
    assert "at step 2" in second.stdout and "done: step 4," in second.stdout
    log = [json.loads(line) for line in (tmp_path / "work" / "run" / "train_log.jsonl").read_text().splitlines()]
    assert sorted({e["step"] for e in log if "loss" in e}) == [1, 2, 3, 4]  # one curve over both jobs

    fresh = run_script(tmp_path, "out3", RESUME="1", **{**common, "WORK": str(tmp_path / "elsewhere")})
    assert fresh.returncode == 3 and "has no checkpoint" in fresh.stdout


def test_a_corpus_left_by_one_call_is_trained_on_by_the_next(tmp_path, data_tarball, tok):
    """STEPS=0 leaves the corpus in $WORK/data (a build-only call); REUSE_DATA=1 starts a fresh run on it."""
    common = carry(tmp_path, data_tarball, tok, {"micro_batch": 2, "grad_accum": 1, "warmup_steps": 1})
    tarball = common.pop("DATA_TAR")

    data_only = run_script(tmp_path, "out1", DATA_TAR=tarball, STEPS="0", **common)
    assert data_only.returncode == 0, data_only.stdout[-3000:]
    assert "no checkpoint to export" in data_only.stdout

    trained = run_script(tmp_path, "out2", REUSE_DATA="1", STEPS="2", **common)
    assert trained.returncode == 0, trained.stdout[-3000:]
    assert "training on the data already in" in trained.stdout and "done: step 2," in trained.stdout
    assert (tmp_path / "out2" / "weights" / "quantized.json").exists()
