"""Training: overfitting, accumulation, exact resume, checkpoint integrity, load_model, the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal

import pytest
import torch
from click.testing import CliRunner
from p2t_model.checkpoint import CheckpointError, load_checkpoint, load_model, resolve
from p2t_model.cli import train as train_cmd
from p2t_model.config import preset
from p2t_model.data import collate, collate_packed, load_split
from p2t_model.model import MinimalLLM
from p2t_model.train import accumulate_gradients, lr_multiplier, train


def quiet(_msg):
    pass


def losses(history):
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def test_tiny_model_overfits_a_few_pairs(tmp_path, pairs, tiny, make_data):
    d = make_data(pairs[:4])
    m, t = tiny
    t.max_steps, t.warmup_steps, t.eval_interval, t.ckpt_interval, t.log_interval = 40, 3, 1000, 1000, 1000
    t.micro_batch, t.grad_accum, t.muon_lr, t.adam_lr = 4, 1, 0.05, 2e-2
    r = train(m, t, d, tmp_path / "run", device="cpu", progress=False, log=quiet)
    ls = losses(r.history)
    assert ls[1] > 5.0
    assert ls[40] < 0.1 * ls[1], (ls[1], ls[40])  # ~6.3 -> ~0.06 nats/token in 40 steps


def test_accumulating_4_micro_batches_equals_one_big_batch(data_dir, tok):
    m, _ = preset("tiny")
    ds = load_split(data_dir, "train", tok, m.context)
    torch.manual_seed(0)
    model = MinimalLLM(m)
    index = list(range(8))

    def grads(batches):
        model.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, batches, torch.device("cpu"))
        return loss, [p.grad.clone() for p in model.parameters()]

    big_loss, big = grads([collate(ds, index, tok.pad_id, 8, m.context)])
    micro = [collate(ds, index[i:i + 2], tok.pad_id, 8, m.context) for i in range(0, 8, 2)]
    small_loss, small = grads(micro)
    assert abs(big_loss - small_loss) < 1e-5
    for a, b in zip(big, small, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["packed", "unpadded", "unpadded, rounded"])
def test_packed_or_unpadded_batch_gives_the_padded_batchs_loss_and_gradients(layout, data_dir, tok):
    """Pairs end to end (train.pack), or only the real tokens computed outside attention (train.unpad): the padded
    batch's loss and gradients."""
    m, _ = preset("tiny")
    ds = load_split(data_dir, "train", tok, m.context)
    torch.manual_seed(0)
    model = MinimalLLM(m)
    index = [0, 3, 5, 7, 9]

    def grads(batch):
        model.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, [batch], torch.device("cpu"))
        return loss, [p.grad.clone() for p in model.parameters()]

    padded_loss, padded = grads(collate(ds, index, tok.pad_id, 8, m.context))
    other = (collate_packed(ds, index, tok.pad_id, 8) if layout == "packed"
             else collate(ds, index, tok.pad_id, 8, m.context, unpad=True, unpad_steps=1 << 20 if layout == "unpadded"
                          else 64))  # real tokens, then padding slots up to the next 64th of the slots
    if layout == "unpadded, rounded":
        assert other.n_tokens < len(other.keep) < other.x.numel()  # some padding slots computed, not all
    other_loss, others = grads(other)
    assert abs(padded_loss - other_loss) < 1e-5
    for a, b in zip(padded, others, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_lr_schedule_warms_up_then_decays():
    _, t = preset("tiny")
    t.warmup_steps, t.max_steps, t.min_lr_ratio = 10, 110, 0.1
    mult = [lr_multiplier(s, t) for s in range(120)]
    assert mult[0] == pytest.approx(0.1) and mult[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(mult[9:], mult[10:], strict=False))
    assert mult[110] == pytest.approx(0.1) and mult[119] == pytest.approx(0.1)


def test_resume_gives_the_same_next_losses_as_an_uninterrupted_run(data_dir, tiny, tmp_path):
    m, t = tiny
    full = train(m, t, data_dir, tmp_path / "full", device="cpu", progress=False, log=quiet)
    first = train(m, t, data_dir, tmp_path / "cut", device="cpu", progress=False, log=quiet, stop_after=2)
    assert first.step == 2 and (tmp_path / "cut" / "step_00000002").is_dir()
    with open(tmp_path / "cut" / "train_log.jsonl", "a") as f:  # a crashed run logged past its checkpoint
        f.write(json.dumps({"step": 3, "loss": 123.0}) + "\n")
    rest = train(m, t, data_dir, tmp_path / "cut", resume=True, device="cpu", progress=False, log=quiet)
    a, b = losses(full.history), losses(rest.history)
    assert rest.step == full.step == 6
    for step in range(1, 7):
        assert a[step] == b[step], (step, a[step], b[step])  # bitwise: same weights, data, RNG, optimizer state
    log = [json.loads(line) for line in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert {"val_valid_random", "val_valid_compositional"} <= {k for e in log for k in e}
    assert (tmp_path / "full" / "loss.png").stat().st_size > 1000
    cut_log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in cut_log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert 123.0 not in [e.get("loss") for e in cut_log]


def test_a_signal_ends_the_run_with_a_checkpoint_that_resumes_exactly(data_dir, tiny, tmp_path):
    """What `timeout -s INT` does to a job at its time limit: the step in flight finishes, is checkpointed, and a
    resumed run continues the same curve, so no steps are lost."""
    m, t = tiny
    t.eval_interval = 2
    full = train(m, t, data_dir, tmp_path / "full", device="cpu", progress=False, log=quiet)

    def interrupt_at_step_2(_model, _tokenizer, step):
        if step == 2:
            signal.raise_signal(signal.SIGINT)  # arrives during step 2's evaluation
        return {}

    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a job started in the background
    cut = train(m, t, data_dir, tmp_path / "cut", device="cpu", progress=False, log=quiet,
                eval_fn=interrupt_at_step_2)
    assert cut.stopped_by == "SIGINT" and cut.step == 3 and cut.checkpoint == tmp_path / "cut" / "step_00000003"
    assert signal.getsignal(signal.SIGINT) is before  # the loop's handler is gone, the one before it back
    rest = train(m, t, data_dir, tmp_path / "cut", resume=True, device="cpu", progress=False, log=quiet)
    assert rest.step == full.step == 6 and rest.stopped_by is None
    a, b = losses(full.history), losses(rest.history)
    assert [a[s] for s in range(1, 7)] == [b[s] for s in range(1, 7)]


def test_eval_fn_is_called_and_logged(data_dir, tiny, tmp_path):
    m, t = tiny
    t.max_steps = 3
    calls = []

    def eval_fn(model, tokenizer, step):
        calls.append(step)
        assert not model.training and tokenizer.end_id == 3
        return {"pass_rate": 0.5}

    r = train(m, t, data_dir, tmp_path / "run", device="cpu", progress=False, log=quiet, eval_fn=eval_fn)
    assert calls == [3]
    assert any(h.get("pass_rate") == 0.5 for h in r.history)


def test_verify_units_logs_the_verified_pass_rate_of_each_held_out_split(tmp_path, tiny):
    """`p2t train --verify-units N`: each evaluation decodes N held-out units with the model of that step and sends
    them through the post-processor chain; an untrained model's candidates fail it, so the rate is 0."""
    from conftest import make_pairs, write_split

    rows = [dict(r, source=r["prompt"]) for r in make_pairs()]
    d = tmp_path / "data"
    d.mkdir()
    write_split(d / "train.jsonl", rows)
    write_split(d / "valid_random.jsonl", rows[:2])
    write_split(d / "valid_compositional.jsonl", rows[-2:])
    r = CliRunner().invoke(train_cmd, ["--data", str(d), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                       "--max-steps", "3", "--device", "cpu", "--quiet", "--verify-units", "2",
                                       "--verify-backend", "interpret", "--verify-jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "pass_valid_random=0.0000" in r.output and "pass_valid_compositional=0.0000" in r.output
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    evals = [e for e in log if "pass_valid_random" in e]
    assert [e["step"] for e in evals] == [3] and evals[0]["val_valid_random"] > 0


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, pairs):
    """One short tiny run, trained once per module; tests get copies."""
    root = tmp_path_factory.mktemp("trained")
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    m, t = preset("tiny")
    t.max_steps, t.eval_interval = 2, 1000
    train(m, t, root / "data", root / "run", device="cpu", progress=False, log=quiet)
    return root / "run"


@pytest.fixture
def checkpoint(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return resolve(run)


def test_load_model_restores_weights_tokenizer_and_tying(checkpoint):
    ck = load_checkpoint(checkpoint.parent)  # a run directory resolves to its latest checkpoint
    assert ck["dir"] == checkpoint and ck["step"] == 2 and ck["n_params"] < 1_000_000
    model, tok = load_model(checkpoint.parent)
    assert model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    assert torch.equal(model.tok_emb.weight, ck["weights"]["tok_emb.weight"])
    out = model.generate(tok.encode_prompt("def f(x, y):\n    return x + y\n"), 5, stop_id=tok.end_id)
    assert len(out) == 1 and len(out[0]) <= 5


@pytest.mark.parametrize("damage", ["flip_weights", "truncate_weights", "truncate_optim", "truncate_manifest",
                                    "delete_tokenizer"])
def test_corrupted_or_truncated_checkpoint_is_refused(checkpoint, damage, data_dir, tiny):
    path = {"flip_weights": "model.safetensors", "truncate_weights": "model.safetensors",
            "truncate_optim": "optim.safetensors", "truncate_manifest": "manifest.json",
            "delete_tokenizer": "tokenizer.json"}[damage]
    f = checkpoint / path
    data = f.read_bytes()
    if damage.startswith("flip"):
        f.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage.startswith("truncate"):
        f.write_bytes(data[: len(data) // 2])
    else:
        f.unlink()
    expect = {"flip_weights": "sha256", "truncate_weights": "truncated", "truncate_optim": "truncated",
              "truncate_manifest": "manifest", "delete_tokenizer": "missing"}[damage]
    with pytest.raises(CheckpointError, match=expect):
        load_checkpoint(checkpoint)
    with pytest.raises(CheckpointError):
        load_model(checkpoint)
    m, t = tiny
    with pytest.raises(CheckpointError):
        train(m, t, data_dir, checkpoint.parent, resume=True, device="cpu", progress=False, log=quiet)


def test_truncated_safetensors_header_is_named(checkpoint):
    from p2t_model.checkpoint import check_safetensors

    f = checkpoint / "model.safetensors"
    f.write_bytes(f.read_bytes()[:5])
    with pytest.raises(CheckpointError, match="truncated safetensors"):
        check_safetensors(f)


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve(tmp_path)


def test_cli_help_has_an_example():
    r = CliRunner().invoke(train_cmd, ["--help"])
    assert r.exit_code == 0 and "Example" in r.output and "--resume" in r.output


def test_cli_trains_with_preset_and_toml_config(data_dir, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[model]\nd_model = 32\nn_head = 2\nffn_hidden = 64\n\n[train]\nmicro_batch = 3\n")
    r = CliRunner().invoke(train_cmd, ["--data", str(data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                       "--config", str(cfg), "--max-steps", "2", "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "parameters" in r.output and "done: step 2" in r.output
    ck = load_checkpoint(tmp_path / "run")
    assert ck["model_config"].d_model == 32 and ck["train_config"].micro_batch == 3


def test_cli_reports_bad_config_cleanly(data_dir, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": {"widht": 3}}))
    r = CliRunner().invoke(train_cmd, ["--data", str(data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                       "--config", str(cfg), "--device", "cpu"])
    assert r.exit_code == 2 and "unknown ModelConfig keys: widht" in r.output


def test_export_model_writes_a_weights_only_checkpoint(checkpoint, tmp_path, data_dir, tiny):
    from p2t_model.checkpoint import export_model

    dst = export_model(checkpoint.parent, tmp_path / "pkg" / "weights")
    assert sorted(p.name for p in dst.iterdir()) == ["manifest.json", "model.safetensors", "tokenizer.json"]
    assert not (tmp_path / "pkg" / "latest").exists()
    a, _ = load_model(checkpoint)
    b, tok = load_model(dst)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert b.lm_head.weight is b.tok_emb.weight
    m, t = tiny
    shutil.copytree(dst, tmp_path / "resume_me" / "step_00000002")
    (tmp_path / "resume_me" / "latest").write_text("step_00000002\n")
    with pytest.raises(CheckpointError, match="weights only"):
        train(m, t, data_dir, tmp_path / "resume_me", resume=True, device="cpu", progress=False, log=quiet)


def test_init_weights_starts_a_fresh_run_from_trained_weights(tmp_path, pairs, tiny, make_data):
    """`--init-weights`: a new run (fresh optimizer, schedule from step 0) that starts where the weights are, here an
    int8 export of a model that has learned four pairs: its first loss is that model's, far below a fresh start's."""
    from p2t_model.quantize import quantize_checkpoint

    d = make_data(pairs[:4])
    m, t = tiny
    t.max_steps, t.warmup_steps, t.eval_interval, t.ckpt_interval, t.log_interval = 40, 3, 1000, 40, 1000
    t.micro_batch, t.grad_accum, t.muon_lr, t.adam_lr = 4, 1, 0.05, 2e-2
    trained = train(m, t, d, tmp_path / "src", device="cpu", progress=False, log=quiet)
    int8 = quantize_checkpoint(tmp_path / "src", tmp_path / "int8")
    t.max_steps = 1
    fresh = train(m, t, d, tmp_path / "fresh", device="cpu", progress=False, log=quiet)
    init = train(m, t, d, tmp_path / "init", device="cpu", progress=False, log=quiet, init_weights=int8)
    assert losses(init.history)[1] < 0.2 * losses(fresh.history)[1]
    assert losses(init.history)[1] < 3 * losses(trained.history)[40]
    # weights move to a new pair format by fine-tuning: the text form may differ, the architecture may not
    other_format = dataclasses.replace(m, pair_format=m.pair_format - 1)
    train(other_format, t, d, tmp_path / "reformat", device="cpu", progress=False, log=quiet, init_weights=int8)
    m.d_model, m.n_head = 32, 2
    with pytest.raises(ValueError, match="model config differs"):
        train(m, t, d, tmp_path / "bad", device="cpu", progress=False, log=quiet, init_weights=int8)
