"""scripts/gpu_unpad_ab.sh on the CPU (tiny preset, carried data): each config trains on the same data in turn, the
fresh-step profile runs after them, and the summary reads every run's log; GPU tests named in GPU_TESTS run first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_unpad_ab.sh"


def test_each_config_trains_on_the_same_data_then_the_profile_runs(tmp_path, data_tarball):
    train = {"micro_batch": 2, "grad_accum": 2, "warmup_steps": 1, "log_interval": 1, "eval_batches": 1,
             "least_padding": True, "row_multiple": 2}
    configs = []
    for name, unpad in (("unpadded", True), ("padded", False)):
        configs.append(tmp_path / f"{name}.json")
        configs[-1].write_text(json.dumps({"model": {"context": 4096, "vocab_size": 4352},
                                           "train": {**train, "unpad": unpad}}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "P2T_NO_GPU_ENV": "1", "PRESET": "tiny", "INIT_WEIGHTS": "", "STEPS": "3", "FROM_STEP": "2",
           "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "DATA_TAR": str(data_tarball),
           "CONFIGS": " ".join(map(str, configs)), "PROFILE_MODES": "least2,unpad-least2",
           "PROFILE_ARGS": "--tiny --warmup 1 --timed 1 --passes 1 --steps 1 --rows 3",
           "GPU_TESTS": "tests/model/test_gpu.py::test_cuda_graph_replays_accumulate_the_eager_gradients"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines.count("exit code 0") == 2 and "profile exit code 0" in lines
    assert "GPU tests exit code 0" in lines  # skipped on the CPU: pytest still exits 0
    for name in ("unpadded", "padded"):
        assert f"{name}: 2 logged steps >= 2 (last step 3)" in proc.stdout
    with tarfile.open(tmp_path / "out" / "ab.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"logs/unpadded.jsonl", "logs/padded.log", "logs/profile.json"} <= names
