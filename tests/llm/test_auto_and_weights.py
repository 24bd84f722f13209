"""--engine auto/llm selection, the tiny trained model through the engine, int8 shards."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from p2t_core.llm.auto import translate_with_llm
from p2t_core.llm.engine import LLMEngine, LLMTranslationError, LLMUnavailable
from tests.llm.conftest import FAST, GOOD_SRC, REFUSED_SRC, StubDecoder


def test_auto_uses_the_compiler_when_it_accepts_and_never_loads_the_model():
    stub = StubDecoder([])
    res = translate_with_llm(GOOD_SRC, "g.py", None, "auto", llm=LLMEngine(decoder=stub))
    assert res.engines() == {"g": "compiler"} and stub.calls == []
    assert "engine: compiler" in res.module_source.splitlines()[0]


def test_auto_rescues_a_refused_unit_with_the_llm(good_module):
    res = translate_with_llm(REFUSED_SRC, "g.py", None, "auto", llm=LLMEngine(decoder=StubDecoder([good_module])),
                             k=1, **FAST)
    assert res.engines() == {"g": "llm"}
    assert "unsupported call to torch.fix" in res.units[0].compiler_error
    assert "g: llm, candidate 1 of 1 verified" in res.report()
    assert "engine: llm" in res.module_source.splitlines()[0]


def test_auto_without_weights_reports_both_engines(tmp_path):
    res = translate_with_llm(REFUSED_SRC, "g.py", None, "auto", weights_dir=tmp_path)
    assert res.engines() == {"g": None} and "has no weights" in res.llm_unavailable
    assert "compiler: " in res.report() and "llm: the LLM engine has no weights" in res.report()


def test_engine_llm_failure_lists_candidates():
    res = translate_with_llm(GOOD_SRC, "g.py", "g", "llm", llm=LLMEngine(decoder=StubDecoder(["garbage (", ""])),
                             k=2, **FAST)
    assert res.engines() == {"g": None}
    assert "candidate 0 (greedy): grammar failed" in res.units[0].llm_error


def test_run_translate_cli_messages(tmp_path):
    from p2t_core.llm.cli import run_translate

    f = tmp_path / "g.py"
    f.write_text(REFUSED_SRC)
    import click

    @click.command()
    def cmd():
        run_translate(REFUSED_SRC, str(f), engine="auto", weights=str(tmp_path / "none"), no_verify=True)

    r = CliRunner().invoke(cmd, [])
    assert r.exit_code == 2
    assert "unsupported call to torch.fix" in r.output and "has no weights" in r.output
    assert "1 unit(s) not translated" in r.output


def test_no_shipped_weights_is_a_clear_error(tmp_path):
    with pytest.raises(LLMUnavailable, match="no weights"):
        LLMEngine(tmp_path).decoder  # noqa: B018


def test_tiny_model_decodes_and_the_chain_rejects_garbage_cleanly(tiny_weights, tmp_path):
    from p2t_model.quantize import load_quantized, quantize_checkpoint

    qdir = quantize_checkpoint(tiny_weights, tmp_path / "int8")
    for wdir in (tiny_weights, qdir):
        eng = LLMEngine(wdir, device="cpu")
        with pytest.raises(LLMTranslationError) as info:
            eng.translate_unit(GOOD_SRC, "g.py", "g", k=3, max_new_tokens=48, **FAST)
        assert len(info.value.outcomes) == 3
        assert all(o.stage in ("grammar", "semantics") for o in info.value.outcomes)
    model, tok = load_quantized(qdir)
    assert model.lm_head.weight is model.tok_emb.weight and tok.end_id == 3


def test_averaged_weights_are_the_mean_of_their_sources(tiny_weights, tmp_path):
    from p2t_model.checkpoint import model_tensors
    from p2t_model.model import MinimalLLM
    from p2t_model.quantize import average_quantized, load_quantized, quantize_checkpoint, save_quantized

    first = quantize_checkpoint(tiny_weights, tmp_path / "a")
    model, tok = load_quantized(first, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # the second source: every weight halved
    second = save_quantized(model, tok, tmp_path / "b")
    mean = average_quantized([first, second], tmp_path / "mean")
    want = {n: 0.75 * t for n, t in model_tensors(load_quantized(first, dtype=torch.float32)[0]).items()}
    got = model_tensors(load_quantized(mean, dtype=torch.float32)[0])
    assert got.keys() == want.keys()
    for name, w in want.items():  # within a rounding step of int8 per row
        step = w.abs().amax(dim=-1, keepdim=True) / 127 if w.dim() == 2 else torch.zeros(())
        assert ((got[name] - w).abs() <= step + 1e-6).all(), name
    other = tmp_path / "other"
    save_quantized(MinimalLLM(replace(model.config, n_layer=model.config.n_layer + 1)), tok, other)
    with pytest.raises(ValueError, match="another architecture"):
        average_quantized([first, other], tmp_path / "bad")


def test_int8_shards_load_without_pickle_and_a_tampered_shard_is_refused(tiny_weights, tmp_path, monkeypatch):
    from p2t_model.checkpoint import CheckpointError
    from p2t_model.quantize import INDEX, load_quantized, quantize_checkpoint

    qdir = quantize_checkpoint(tiny_weights, tmp_path / "int8", max_shard_bytes=64 * 1024)
    index = json.loads((qdir / INDEX).read_text())
    shards = [n for n in index["files"] if n.endswith(".safetensors")]
    assert len(shards) > 1 and all(f["bytes"] <= 64 * 1024 for f in index["files"].values())

    def no_pickle(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    load_quantized(qdir)
    data = bytearray((qdir / shards[0]).read_bytes())
    data[-1] ^= 0x01
    (qdir / shards[0]).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="tampered"):
        load_quantized(qdir)


def test_quantize_round_trip_error_is_small():
    from p2t_model.quantize import relative_error

    g = torch.Generator().manual_seed(0)
    for shape in ((512, 64), (64, 192), (8192, 512)):
        assert relative_error(torch.randn(*shape, generator=g) * 0.02) < 1e-2


def test_pass_at_k_and_wilson():
    from p2t_core.llm.evaluate import pass_at_k, wilson

    assert pass_at_k(4, 0, 1) == 0 and pass_at_k(4, 4, 4) == 1 and pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(5, 1, 4) == pytest.approx(0.8)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)


def test_eval_cli_on_the_tiny_model(tiny_weights, tmp_path):
    from p2t_core.llm.cli import eval_cmd

    d = tmp_path / "data"
    d.mkdir()
    rows = [{"prompt": "import torch\n\ndef g(x):\n    return torch.trunc(x)\n", "source": GOOD_SRC,
             "target": "", "family": "elementwise", "style": "torch", "hash": "h1"},
            {"prompt": "import torch\n\ndef g(x):\n    return torch.fix(x)\n", "source": REFUSED_SRC,
             "target": "", "family": "elementwise", "style": "method", "hash": "h2"}]
    (d / "valid_random.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(eval_cmd, ["--weights", str(tiny_weights), "--data", str(d), "--k", "2",
                                      "--max-new-tokens", "24", "--backend", "interpret", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["rows"] == 2 and res["pass@1"]["rate"] == 0 and res["pass@2"]["n"] == 2
    assert sum(res["failures"]["all_candidates"].values()) == 4
    assert res["auto"]["compiler_refused"] == 1 and res["auto"]["rescued_by_llm"] == 0
    assert set(res["by_style"]) == {"torch", "method"}


def test_eval_greedy_pass_decodes_units_in_one_batch(tiny_weights, tmp_path):
    from p2t_core.llm.cli import eval_cmd

    d = tmp_path / "data"
    d.mkdir()
    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n", "source": GOOD_SRC, "target": "",
             "family": "elementwise", "style": "torch", "hash": f"h{i}"} for i, op in enumerate(["exp", "sin", "abs"])]
    (d / "valid_random.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(eval_cmd, ["--weights", str(tiny_weights), "--data", str(d), "--k", "1", "--batch", "3",
                                      "--temperature", "0", "--max-new-tokens", "16", "--backend", "interpret",
                                      "--no-rescue", "--json", str(out), "--failures", str(tmp_path / "f.jsonl")])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    # the tiny model cannot write a module in 16 tokens: every greedy candidate fails, each at one stage
    assert res["rows"] == 3 and res["pass@1"]["rate"] == 0 and sum(res["failures"]["greedy"].values()) == 3
    failed = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [f["stage"] for f in failed] == [r["stages"][0] for r in res["per_row"]]
    assert all(f["prompt"].startswith("# ranks: ") and "candidate" in f for f in failed)


def test_eval_decodes_greedy_candidates_in_batches_sorted_by_prompt_length(good_module):
    from p2t_core.llm.evaluate import evaluate

    class BatchStub(StubDecoder):
        def decode(self, *a, **kw):
            raise AssertionError("one greedy candidate per unit is decoded in batches, not one by one")

        def decode_many(self, prompts, *, max_new_tokens, temperature, top_p, seed):
            self.calls.append({"prompts": prompts})
            return [good_module if "trunc" in p else "def g(x):\n    return x\n" for p in prompts]

    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n", "source": GOOD_SRC,
             "family": "elementwise", "style": "torch"} for op in ("trunc", "sin", "absolute")]
    stub = BatchStub([])
    lines = []
    res = evaluate(LLMEngine(decoder=stub), rows, k=1, decode_batch=2, rescue=False, log=lines.append, **FAST)
    assert [len(c["prompts"]) for c in stub.calls] == [2, 1]
    assert [line.split(" (")[0] for line in lines] == ["decoded 2/3 units", "decoded 3/3 units"]
    assert 0 < res["decode_s"] < res["seconds"] and res["verify_s"] > 0
    ops = [next(op for op in ("trunc", "sin", "absolute") if op in p) for c in stub.calls for p in c["prompts"]]
    assert ops == ["sin", "trunc", "absolute"]  # shortest row prompt first
    assert [r["greedy_ok"] for r in res["per_row"]] == [True, False, False]  # results stay in the rows' order


def test_read_split_limit_is_a_seeded_sample_in_file_order(tmp_path):
    from p2t_core.llm.evaluate import read_split

    (tmp_path / "valid_random.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    a = [r["i"] for r in read_split(tmp_path, "valid_random", 10, seed=1)]
    assert a == sorted(a) and len(set(a)) == 10 and a != list(range(10))
    assert a == [r["i"] for r in read_split(tmp_path, "valid_random", 10, seed=1)]
    assert a != [r["i"] for r in read_split(tmp_path, "valid_random", 10, seed=2)]
    assert len(read_split(tmp_path, "valid_random", 99)) == 50


def test_row_signature_takes_the_ranks_the_pair_was_built_with():
    from p2t_core.llm.evaluate import row_signature

    row = {"source": "import torch\n\n\ndef f(x, b):\n    return torch.relu(x + b)\n", "ranks": [3, 1]}
    assert [len(p.dims) for p in row_signature(row, "f").tensor_params] == [3, 1]


def test_the_model_sees_the_canonical_name_and_ranks_and_the_candidate_gets_name_and_helpers_back(good_module):
    """The prompt calls `g` unit_fn and gives its ranks; the model answers without the library helpers; the
    candidate is renamed back and gets the helpers it calls before it is checked."""
    from p2t_core.llm.pairform import model_target

    answer = model_target(good_module, "g", "def g(x):\n    pass\n", 2)
    assert "def unit_fn(" in answer and "_unit_fn_0_kernel" in answer and "def _p2t_" not in answer
    stub = StubDecoder([answer])
    res = LLMEngine(decoder=stub).translate_unit(REFUSED_SRC, "g.py", "g", k=1, **FAST)
    assert stub.calls[0]["prompt"].startswith("# ranks: 2\n") and "def unit_fn(x)" in stub.calls[0]["prompt"]
    assert "def g(" in res.module_source and "_g_0_kernel" in res.module_source and "unit_fn" not in res.module_source
    assert "def _p2t_layout(" in res.module_source


def test_eval_verifies_several_units_at_a_time_and_keeps_the_rows_order(good_module):
    from p2t_core.llm.evaluate import evaluate

    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n",
             "source": f"import torch\n\n\ndef g(x):\n    return torch.{op}(x)\n",
             "family": "elementwise", "style": "torch"} for op in ("trunc", "sin", "trunc", "cos")]

    def run(jobs):
        stub = StubDecoder([good_module])  # every unit gets the trunc module: only the trunc rows verify
        res = evaluate(LLMEngine(decoder=stub), rows, k=1, decode_batch=1, rescue=False, jobs=jobs, **FAST)
        return [(r["greedy_ok"], r["stages"]) for r in res["per_row"]]

    assert run(3) == run(1) == [(True, [None]), (False, ["verification"]), (True, [None]), (False, ["verification"])]


def test_the_cpu_decoder_runs_int8_matmuls_close_to_the_dequantized_model(tiny_weights, tmp_path):
    import torch
    from p2t_model.quantize import int8_matmuls, load_quantized, quantize_checkpoint

    qdir = quantize_checkpoint(tiny_weights, tmp_path / "int8")
    model, _ = load_quantized(qdir)
    fast = int8_matmuls(model)
    assert sum(isinstance(m, torch.nn.Linear) for m in fast.modules()) == 0  # every matmul is int8
    ids = torch.randint(4, model.config.vocab_size, (1, 24))
    with torch.inference_mode():
        ref, got = model(ids)[0], fast(ids)[0]
    assert ((got - ref).norm() / ref.norm()).item() < 0.05
    decoder = LLMEngine(qdir, device="cpu").decoder
    assert not any(isinstance(m, torch.nn.Linear) for m in decoder.model.modules())


def test_failure_report_diffs_the_failed_greedy_candidates_against_their_targets(good_module):
    from p2t_core.llm.evaluate import evaluate, failure_report

    trunc = "tl.where(a0 < 0, tl.ceil(a0), tl.floor(a0))"  # the compiler's trunc

    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n",
             "source": f"import torch\n\n\ndef g(x):\n    return torch.{op}(x)\n",
             "target": good_module.replace(trunc, f"tl.{op}(a0)"),
             "family": "elementwise", "style": "torch"} for op in ("trunc", "sin")]
    assert "tl.sin(a0)" in rows[1]["target"]
    res = evaluate(LLMEngine(decoder=StubDecoder([good_module])), rows, k=1, decode_batch=1, rescue=False,
                   keep_texts=True, **FAST)
    (failed,) = failure_report(rows, res["per_row"], 3)  # the trunc row verified: only the sin row is reported
    assert failed["stage"] == "verification" and "wrong values" in failed["message"]
    assert "v1 = torch.sin(x)" in failed["prompt"]  # the prompt the model read (format 3)
    assert "-    v1 = tl.sin(a0)" in failed["diff"] and f"+    v1 = {trunc}" in failed["diff"]
    assert "def _p2t_" not in failed["diff"]  # in the model's text form: no library helpers


def test_eval_check_targets_finds_rows_whose_own_target_fails_and_reports_pass_at_1_without_them(good_module, capsys):
    """A row whose own target (the compiler's module) fails against its reference is ill-posed: no candidate can be
    judged on it. Here the sin row keeps the trunc row's target; a row that cannot be set up has no verdict."""
    from p2t_core.llm.cli import _print_summary
    from p2t_core.llm.evaluate import evaluate
    from p2t_core.llm.pairform import PAIR_FORMAT, model_target

    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n",
             "source": f"import torch\n\n\ndef g(x):\n    return torch.{op}(x)\n", "target": good_module,
             "family": "elementwise", "style": "torch", "id": f"{op}{i}"}
            for i, op in enumerate(("trunc", "trunc", "sin"))]
    rows.append({"prompt": "x = 1\n", "source": "x = 1\n", "target": "", "family": "elementwise", "style": "torch",
                 "id": "setup"})
    stub = StubDecoder([model_target(good_module, "g", rows[0]["prompt"], PAIR_FORMAT)])  # what a perfect model writes
    res = evaluate(LLMEngine(decoder=stub), rows, k=1, decode_batch=1, rescue=False, jobs=2, check_targets=True,
                   **FAST)
    assert [r["target_ok"] for r in res["per_row"]] == [True, True, False, None]
    assert "wrong values" in res["per_row"][2]["target_message"]
    assert [r["greedy_ok"] for r in res["per_row"]] == [True, True, False, False]
    assert res["pass@1"]["n"] == 4 and res["pass@1"]["rate"] == 0.5  # the headline number is over every row
    well = res["well_posed"]
    assert (well["rows"], well["ill_posed"], well["pass@1"]["n"], well["pass@1"]["rate"]) == (2, ["sin2"], 2, 1.0)
    _print_summary(res, "eval")
    assert "well-posed rows: 2 of 4 (ill-posed: sin2); pass@1 on them 1.000" in capsys.readouterr().err
    unchecked = evaluate(LLMEngine(decoder=stub), rows[:1], k=1, decode_batch=1, rescue=False, **FAST)
    assert "target_ok" not in unchecked["per_row"][0] and "well_posed" not in unchecked


def test_eval_decodes_the_samples_of_a_batch_of_units_in_one_batch_too(good_module):
    from p2t_core.llm.evaluate import evaluate

    class BatchStub(StubDecoder):
        def decode(self, *a, **kw):
            raise AssertionError("with --batch > 1 nothing is decoded one unit at a time")

        def decode_many(self, prompts, *, max_new_tokens, temperature, top_p, seed):
            self.calls.append({"n": len(prompts), "temperature": temperature, "seed": seed})
            return [good_module if "trunc" in p else "def g(x):\n    return x\n" for p in prompts]

    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n", "source": GOOD_SRC,
             "family": "elementwise", "style": "torch"} for op in ("trunc", "sin", "absolute")]
    stub = BatchStub([])
    res = evaluate(LLMEngine(decoder=stub), rows, k=3, decode_batch=2, rescue=False, **{**FAST, "seed": 5})
    # per batch of 2 units: their greedy candidates (2 rows), then 2 samples each (4 rows); then the last unit
    assert [(c["n"], c["temperature"]) for c in stub.calls] == [(2, 0.0), (4, 0.8), (1, 0.0), (2, 0.8)]
    assert [c["seed"] for c in stub.calls if c["temperature"]] == [5, 7]  # seed + the batch's first position
    assert [(r["n"], r["c"]) for r in res["per_row"]] == [(3, 3), (3, 0), (3, 0)]


def test_an_interrupted_eval_returns_the_rows_verified_so_far(good_module):
    """`timeout -s INT` on a time-boxed eval (scripts/gpu_eval.sh): what was verified is kept, marked interrupted."""
    from p2t_core.llm.evaluate import evaluate

    rows = [{"prompt": "import torch\n\ndef g(x):\n    return torch.trunc(x)\n", "source": GOOD_SRC,
             "family": "elementwise", "style": "torch", "id": f"r{i}"} for i in range(4)]
    seen = []

    def progress(_n):  # the interrupt arrives in the main thread, as a SIGINT would, after the second row
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    res = evaluate(LLMEngine(decoder=StubDecoder([good_module])), rows, k=1, decode_batch=1, rescue=False, jobs=1,
                   progress=progress, **FAST)
    assert res["interrupted"] and res["rows"] == 2 and res["rows_planned"] == 4
    assert [r["id"] for r in res["per_row"]] == ["r0", "r1"] and res["pass@1"]["rate"] == 1.0


def test_weights_with_a_draft_table_decode_the_same_greedy_candidates(tiny_weights, tmp_path):
    """`python -m p2t_model.drafts DATA WEIGHTS` writes drafts.safetensors beside the weights; the decoder loads it
    and its greedy candidates are the tokens it writes without one. A damaged table is refused at load."""
    import shutil

    from p2t_model.drafts import DRAFTS_FILE
    from p2t_model.drafts import main as build_drafts

    from p2t_core.llm.engine import ModelDecoder, load_decoder

    wdir = tmp_path / "weights"
    shutil.copytree(tiny_weights, wdir)
    data = tiny_weights.parent.parent / "data"
    build_drafts([str(data), str(wdir), "--pairs", "50"])
    drafted = load_decoder(wdir, "cpu")
    assert drafted.drafts is not None and len(drafted.drafts) > 10
    plain = ModelDecoder(drafted.model, drafted.tokenizer)
    prompts = ["# ranks: 1 1\ndef unit_fn(x, y):\n    return torch.exp(x) + y\n", "def unit_fn(x):\n    return x\n"]
    kw = dict(max_new_tokens=60, temperature=0.0)
    assert drafted.decode_many(prompts, **kw) == plain.decode_many(prompts, **kw)
    assert drafted.decode(prompts[0], 1, top_p=1.0, **kw) == plain.decode(prompts[0], 1, top_p=1.0, **kw)
    (wdir / DRAFTS_FILE).write_bytes(b"not a table")
    with pytest.raises(ValueError, match="not a draft table"):
        load_decoder(wdir, "cpu")


def test_eval_style_keeps_those_rows_and_refuses_an_interpreter_it_cannot_trust(tiny_weights, tmp_path, monkeypatch):
    from p2t_core.llm.cli import eval_cmd

    d = tmp_path / "data"
    d.mkdir()
    rows = [{"prompt": f"import torch\n\ndef g(x):\n    return torch.{op}(x)\n", "source": GOOD_SRC, "target": "",
             "family": "elementwise", "style": style, "hash": f"h{i}"}
            for i, (op, style) in enumerate([("exp", "torch"), ("sin", "loop"), ("abs", "torch")])]
    (d / "valid_random.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval.json"
    args = ["--weights", str(tiny_weights), "--data", str(d), "--k", "1", "--temperature", "0",
            "--max-new-tokens", "8", "--backend", "interpret", "--no-rescue", "--json", str(out)]
    r = CliRunner().invoke(eval_cmd, [*args, "--style", "torch"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["rows"] == 2
    r = CliRunner().invoke(eval_cmd, [*args, "--style", "numpy"])
    assert "no rows of style numpy" in str(r.exception)
    # an interpreter that fails its self-check (numpy 2.4+ broke Triton 3.6's): every verdict would be a false failure
    from p2t_core.verify import interpreter_compat

    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 5))
    monkeypatch.setattr(interpreter_compat, "self_check", lambda: "TypeError: only 0-dimensional arrays")
    out.unlink()
    r = CliRunner().invoke(eval_cmd, args)
    assert "fails its self-check" in str(r.exception) and not out.exists()
