"""Stub decoder, sources, and a tiny trained model for the LLM engine tests."""

from __future__ import annotations

import json

import pytest
import torch

torch.set_num_threads(1)

GOOD_SRC = "import torch\n\n\ndef g(x):\n    return torch.trunc(x)\n"
REFUSED_SRC = "import torch\n\n\ndef g(x):\n    return torch.fix(x)\n"   # the compiler refuses torch.fix (= trunc)
FAST = dict(backend="interpret", verify_dtypes=("float32",), timeout_s=20.0, seed=0)


class StubDecoder:
    """A fake model: "generates" the given texts, in order (greedy first)."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.calls = []

    def decode(self, prompt, k, *, temperature, top_p, max_new_tokens, seed=None):
        self.calls.append({"prompt": prompt, "k": k})
        return self.texts[:k]


@pytest.fixture(scope="session")
def good_module():
    from p2t_core.engine import compile_units

    return compile_units(GOOD_SRC, "g.py", unit="g").units[0].module_source


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """The `tiny` preset trained a few steps on a handful of pairs, exported like the shipped weights."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_model_conftest", Path(__file__).parent.parent / "model" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # tests/model/conftest.py: the tiny hand-made pairs
    make_pairs = mod.make_pairs
    from p2t_model.checkpoint import export_model
    from p2t_model.config import preset
    from p2t_model.train import train

    root = tmp_path_factory.mktemp("tiny_llm")
    (root / "data").mkdir()
    rows = make_pairs()
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m, t = preset("tiny")
    t.max_steps, t.eval_interval = 2, 1000
    train(m, t, root / "data", root / "run", device="cpu", progress=False, log=lambda s: None)
    return export_model(root / "run", root / "pkg" / "weights")
