"""scripts/train_profile.py in its CPU mode: every mode times and profiles the same steps and writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_profile.py"


def test_profile_every_mode_on_the_same_steps_on_cpu(tmp_path, data_dir, tok):
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--data", str(data_dir), "--tokenizer",
                           str(tmp_path / "tokenizer.json"), "--out", str(out), "--steps", "1", "--warmup", "1",
                           "--rows", "5", "--timed", "1", "--passes", "2",
                           "--modes",
                           "padded,packed,graph,least,least4,unpad-least4,x2-least4,cg-unpad-least4,h2-padded"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = json.loads((out / "profile.json").read_text())
    padded, packed, graph, least, least4, unpadded, wide, graphed, narrow = summaries
    assert [s["mode"] for s in (padded, packed, graph, least, least4, unpadded, wide, graphed, narrow)] == [
        "padded", "packed", "graph", "least", "least4", "unpad-least4", "x2-least4", "cg-unpad-least4", "h2-padded"]
    assert padded["tokens"] == packed["tokens"] == graph["tokens"] > 0  # the very same pairs in these modes
    assert unpadded["tokens"] == least4["tokens"] == graphed["tokens"]  # the same cut, only its padding not computed
    assert wide["tokens"] > 0  # the same pairs a step in half as many micro-batches: other cuts, other steps
    assert narrow["tokens"] == padded["tokens"]  # the same steps' pairs in twice as many micro-batches
    assert narrow["unprofiled"]["micro_batches"] == 2 * padded["unprofiled"]["micro_batches"]
    assert least["tokens"] > 0  # 12 pairs in steps of 8: past the first epoch's short step the cuts take other pairs
    # the last step's loss, a check that a mode computes what the others do: on the CPU graph and cg- run eagerly
    assert graph["loss_last"] == padded["loss_last"] and graphed["loss_last"] == unpadded["loss_last"]
    assert unpadded["loss_last"] == pytest.approx(least4["loss_last"], rel=1e-4)
    for summary in (padded, packed, graph, least, least4, unpadded, wide, graphed, narrow):
        assert summary["unprofiled"]["tokens_per_s"] > 0 and 0 < summary["unprofiled"]["mfu"] < 1
        assert len(summary["unprofiled"]["passes"]) == 2 and summary["unprofiled"]["batch_shapes"] >= 1
        assert "aten::" in (out / f"profile_{summary['mode']}.txt").read_text()


def test_fresh_passes_draw_new_steps_inside_the_timing(tmp_path, data_dir, tok):
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--data", str(data_dir), "--tokenizer",
                           str(tmp_path / "tokenizer.json"), "--out", str(out), "--steps", "1", "--warmup", "1",
                           "--rows", "5", "--timed", "2", "--passes", "2", "--fresh", "--modes", "unpad-least4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (summary,) = json.loads((out / "profile.json").read_text())
    passes = summary["unprofiled"]["passes"]
    assert len(passes) == 2 and all(p["tokens"] > 0 and p["tokens_per_s"] > 0 for p in passes)
    assert passes[0]["tokens"] != passes[1]["tokens"]  # other pairs each pass (repeated passes hold the same ones)
    assert summary["unprofiled"]["batch_shapes"] >= 1  # counted over the last pass's steps


def test_padding_report_counts_both_cuts_of_an_epoch(tmp_path, data_dir, tok):
    tok.save(tmp_path / "tokenizer.json")
    proc = subprocess.run([sys.executable, str(SCRIPT.parent / "padding_report.py"), str(data_dir), "--tokenizer",
                           str(tmp_path / "tokenizer.json"), "--micro-batch", "3", "--accum", "2",
                           "--row-multiples", "1,2", "--lengths-json", str(tmp_path / "lengths.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    even, least, least2 = proc.stdout.splitlines()
    for line in (even, least, least2):  # the unpadded micro-batches' token counts, exact and rounded
        exact, rounded = (int(line.split("; unpadded: ")[1].split()[i]) for i in (0, 4))
        assert 1 <= rounded <= exact
    assert even.strip().startswith("even cut: ") and least.strip().startswith("least padding, rows x1: ")
    assert least2.strip().startswith("least padding, rows x2: ")
    ratio = [float(line.split(": ")[1].split()[0]) for line in (even, least, least2)]
    assert 1.0 <= ratio[1] <= ratio[2]  # more freedom, never more padding
    assert ratio[1] <= ratio[0]  # never more padding than the even cut
    plans = json.loads((tmp_path / "lengths.json").read_text())
    assert sorted(plans) == ["even", "least1", "least2"]
    assert len({sum(map(len, plan)) for plan in plans.values()}) == 1  # every cut holds the epoch's pairs
    assert len({sum(map(sum, plan)) for plan in plans.values()}) == 1 and sum(map(sum, plans["even"])) > 0
