"""DDP on CPU (gloo, 2 processes): the same losses as one process at the same global batch, and resuming
a checkpoint on a different number of ranks (2 -> 1, 1 -> 2) continues the single-process run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from p2t_model.checkpoint import load_checkpoint
from p2t_model.config import preset
from p2t_model.distributed import leaving_group
from p2t_model.train import train

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")

TOL = 1e-6


def quiet(_msg):
    pass


def losses(history):
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def vals(history):
    return {(h["step"], k): v for h in history for k, v in h.items() if k.startswith("val_")}


def configs():
    """The tiny preset: micro-batch 4, grad_accum 2, i.e. a global batch of 8 pairs = 2 ranks x 1 micro-batch
    = 1 process x 2 micro-batches; 12 pairs are 3 batches an epoch, so steps straddle epoch boundaries."""
    m, t = preset("tiny")
    t.max_steps, t.warmup_steps, t.eval_interval, t.ckpt_interval, t.log_interval = 4, 2, 2, 2, 1
    return m, t


def _worker(rank: int, world: int, init_file: str, root: str, jobs: list):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    root = Path(root)
    out = {}
    with leaving_group():  # as `p2t train` leaves the group
        for name, job in jobs:
            if job.get("copy_from"):
                if rank == 0:
                    shutil.copytree(root / job["copy_from"], root / job["out"])
                dist.barrier()
            messages = []
            m, t = configs()
            r = train(m, t, root / "data", root / job["out"], resume=job.get("resume", False), device="cpu",
                      progress=False, log=messages.append, rank=rank, world_size=world,
                      stop_after=job.get("stop_after"))
            out[name] = {"step": r.step, "history": r.history, "messages": messages}
    (root / f"result.{rank}.json").write_text(json.dumps(out))


def assert_same(ref: dict, got: dict, steps):
    for s in steps:
        assert abs(ref[s] - got[s]) < TOL, (s, ref[s], got[s])


def test_ddp_matches_one_process_and_resumes_across_world_sizes(data_dir, tmp_path):
    assert data_dir == tmp_path / "data"  # where the workers look
    m, t = configs()
    single = train(m, t, tmp_path / "data", tmp_path / "single", device="cpu", progress=False, log=quiet)
    shutil.copytree(tmp_path / "single", tmp_path / "one_cut")  # the single run as of its step-2 checkpoint
    shutil.rmtree(tmp_path / "one_cut" / "step_00000004")
    (tmp_path / "one_cut" / "latest").write_text("step_00000002\n")

    jobs = [("ddp_cut", {"out": "ddp", "stop_after": 2}),  # 2 ranks, steps 1-2
            ("one_to_two", {"out": "one_to_two", "copy_from": "one_cut", "resume": True})]  # 1 -> 2 ranks, 3-4
    mp.spawn(_worker, args=(2, str(tmp_path / "pg"), str(tmp_path), jobs), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"result.{r}.json").read_text()) for r in range(2)]

    shutil.copytree(tmp_path / "ddp", tmp_path / "two_to_one")  # 2 -> 1 rank
    two_to_one = train(m, t, tmp_path / "data", tmp_path / "two_to_one", resume=True, device="cpu",
                       progress=False, log=quiet)

    ref = losses(single.history)
    assert sorted(ref) == [1, 2, 3, 4]
    for rank in range(2):
        assert_same(ref, losses(res[rank]["ddp_cut"]["history"]), [1, 2])  # 2 ranks == 1 process, same batch
        assert_same(ref, losses(res[rank]["one_to_two"]["history"]), [3, 4])  # also resumed from 1 rank
        ref_val, ddp_val = vals(single.history), vals(res[rank]["one_to_two"]["history"])
        ddp_val.update(vals(res[rank]["ddp_cut"]["history"]))
        assert ddp_val.keys() == ref_val.keys() and len(ref_val) == 4  # two splits at steps 2 and 4
        assert all(abs(ref_val[k] - ddp_val[k]) < TOL for k in ref_val), (ref_val, ddp_val)
    assert_same(ref, losses(two_to_one.history), [3, 4])

    # rank 0 alone logs; the replicas stayed identical (checked at every checkpoint)
    assert any("parameters" in msg for msg in res[0]["ddp_cut"]["messages"])
    assert all(res[1][job]["messages"] == [] for job in res[1])
    assert not any("differ" in msg for job in res[0].values() for msg in job["messages"])
    # rank 0 alone wrote the log, each step once (steps 1-2 by the single run, 3-4 by the 2 ranks)
    log = [json.loads(line) for line in (tmp_path / "one_to_two" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4]
    # the checkpoint stores a global position: 4 steps x 2 micro-batches of 4 pairs, whatever the ranks
    for run in ("single", "one_to_two", "two_to_one"):
        ck = load_checkpoint(tmp_path / run)
        assert ck["step"] == 4 and ck["data_state"]["batches"] == 8 and ck["data_state"]["samples"] == 32, run
    a, b = load_checkpoint(tmp_path / "single")["weights"], load_checkpoint(tmp_path / "one_to_two")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # N = 2: the x2 and /2 of the loss scaling are exact


def test_torchrun_cli_two_processes_match_one(data_dir, tmp_path):
    """`torchrun --nproc-per-node 2 -m p2t_model.cli` (`p2t train`, gloo on CPU): the losses of one process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "p2t_model.cli", "--data", str(data_dir), "--out", str(tmp_path / "ddp"),
           "--preset", "tiny", "--device", "cpu", "--max-steps", "3", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr.count("MinimalLLM:") == 1 and p.stderr.count("done: step 3") == 1, p.stderr
    m, t = preset("tiny")
    single = train(m, t, data_dir, tmp_path / "single", max_steps=3, device="cpu", progress=False, log=quiet)
    ck = load_checkpoint(tmp_path / "ddp")
    log = ck["history"]  # every step (train_log.jsonl has every log_interval-th)
    got = {e["step"]: e["loss"] for e in log if "loss" in e}
    ref = losses(single.history)
    assert sorted(got) == [1, 2, 3] and all(e.get("world_size") == 2 for e in log if "loss" in e)
    assert_same(ref, got, [1, 2, 3])
    got_val = {k: v for e in log for k, v in e.items() if k.startswith("val_")}
    ref_val = {k: v for e in single.history for k, v in e.items() if k.startswith("val_")}
    assert got_val.keys() == ref_val.keys() and all(abs(got_val[k] - ref_val[k]) < TOL for k in ref_val)
    assert ck["data_state"]["batches"] == 6 and ck["step"] == 3
