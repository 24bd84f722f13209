"""scripts/sample_corpus.py: seeded, order-keeping samples of a corpus's splits, a manifest with the sample's counts."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sample_corpus.py"


def _corpus(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 50), ("valid_random", 7), ("valid_compositional", 20)):
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"id": f"{split}-{i}", "i": i, "hash": f"{split}{i}"})
                                                    + "\n" for i in range(n)))
    (data / "manifest.json").write_text(json.dumps({"seed": 0, "counts": {"train": 50}}))
    return data


def _sample(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(data), str(out), "--train", "12",
                           "--valid-compositional", "5", *extra], capture_output=True, text=True, timeout=60)


def _ids(path: Path) -> list[int]:
    return [json.loads(line)["i"] for line in path.read_text().splitlines()]


def test_samples_keep_order_are_seeded_and_copy_unsized_splits_whole(tmp_path):
    data = _corpus(tmp_path)
    tar = tmp_path / "s.tar.xz"
    first = _sample(data, tmp_path / "a", "--tar", str(tar))
    assert first.returncode == 0, first.stderr
    train = _ids(tmp_path / "a" / "train.jsonl")
    assert len(train) == 12 and train == sorted(train) and len(set(train)) == 12
    assert _ids(tmp_path / "a" / "valid_random.jsonl") == list(range(7))  # no size given: whole
    assert len(_ids(tmp_path / "a" / "valid_compositional.jsonl")) == 5
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 12, "valid_random": 7, "valid_compositional": 5}
    assert manifest["sampled_from"]["seed"] == 0 and manifest["seed"] == 0
    with tarfile.open(tar) as t:
        assert sorted(t.getnames()) == ["manifest.json", "train.jsonl", "valid_compositional.jsonl",
                                        "valid_random.jsonl"]
    assert _sample(data, tmp_path / "b").returncode == 0
    assert _ids(tmp_path / "b" / "train.jsonl") == train  # same seed, same rows
    assert _sample(data, tmp_path / "c", "--seed", "1").returncode == 0
    assert _ids(tmp_path / "c" / "train.jsonl") != train


def test_valid_from_copies_another_samples_held_out_splits_and_drops_their_units_from_training(tmp_path):
    data = _corpus(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "valid_random.jsonl").write_text("".join(json.dumps({"i": 100 + i, "hash": f"train{i}"}) + "\n"
                                                      for i in range(40)))  # 40 of the 50 training units
    (other / "valid_compositional.jsonl").write_text(json.dumps({"i": 200, "hash": "x"}) + "\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(data), str(tmp_path / "s"), "--train", "20",
                          "--valid-from", str(other)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert _ids(tmp_path / "s" / "train.jsonl") == list(range(40, 50))  # fewer left than asked: all of them
    assert _ids(tmp_path / "s" / "valid_random.jsonl") == [100 + i for i in range(40)]
    assert _ids(tmp_path / "s" / "valid_compositional.jsonl") == [200]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 10, "valid_random": 40, "valid_compositional": 1}
    assert manifest["sampled_from"]["valid_from"] == str(other)
    assert manifest["sampled_from"]["dropped_as_held_out"] == 40
    assert "40 rows dropped as held out" in run.stdout


def test_add_train_appends_another_corpus_less_held_out_and_repeated_rows(tmp_path):
    data = _corpus(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "valid_random.jsonl").write_text(json.dumps({"i": 100, "hash": "long0"}) + "\n")
    (other / "valid_compositional.jsonl").write_text("")
    long = tmp_path / "long"
    long.mkdir()
    rows = [{"i": 300 + i, "hash": f"long{i}", "source": "s", "reference": "r"} for i in range(6)]
    rows.append({"i": 399, "hash": "train45"})
    (long / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = subprocess.run([sys.executable, str(SCRIPT), str(data), str(tmp_path / "s"), "--train", "50",
                          "--valid-from", str(other), "--add-train", str(long), "--slim"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # long0 is held out, train45 is already sampled: the other five come after the sample
    assert _ids(tmp_path / "s" / "train.jsonl") == list(range(50)) + [301, 302, 303, 304, 305]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["counts"]["train"] == 55
    assert manifest["added_train"] == [{"data": str(long), "rows": 5, "dropped": 2}]
    # --slim: training rows without the fields training does not read; held-out rows whole
    trained = (tmp_path / "s" / "train.jsonl").read_text().splitlines()
    assert all(set(json.loads(r)) <= {"id", "i", "hash"} for r in trained)
