"""Pair format 9 (p2t_core.llm.spelled): activations spelled out by NumPy and loop renderings stay one prompt line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from p2t_core.data.canonical import canonicalize
from p2t_core.engine import compile_units
from p2t_core.llm.engine import check_and_verify
from p2t_core.llm.flatten import three_address
from p2t_core.llm.pairform import model_prompt, pair_texts, restore
from p2t_core.llm.prompt import unit_signature
from p2t_core.llm.spelled import SPELLINGS

REPORT = Path(__file__).resolve().parents[2] / "scripts" / "align_report.py"
SPELLED = [(op, text.replace("M.", f"{module}."), module) for op, texts in SPELLINGS.items() for text in texts
           for module in (("numpy", "torch") if "M." in text else ("numpy" if "numpy." in text else "torch",))]


def _source(expression: str) -> str:
    return f"import math\nimport numpy\nimport torch\n\ndef f(x, y):\n    return {expression} + y\n"


def _values(text: str) -> list[str]:
    return re.findall(r"^    (v\d+) = ", text, re.M)


def _run(text: str, module: str) -> numpy.ndarray:
    scope: dict = {}
    exec(text, scope)
    x, y = torch.linspace(-4.0, 4.0, 41, dtype=torch.float64), torch.linspace(1.0, 2.0, 41, dtype=torch.float64)
    if module == "numpy":
        x, y = x.numpy(), y.numpy()
    with numpy.errstate(invalid="ignore"):  # (rsqrt of the negative half: NaN in both)
        return numpy.asarray(scope["f"](x, y))


@pytest.mark.parametrize("op,spelling,module", SPELLED, ids=[f"{op}-{m}-{i}" for i, (op, _, m) in enumerate(SPELLED)])
def test_each_spelling_is_one_line_and_computes_the_same(op, spelling, module):
    source = _source(spelling.replace("X", "x").replace("C", "0.25"))
    format8, format9 = three_address(source, 8), three_address(source, 9, ("numpy", "torch"))
    assert _values(format9) == ["v1", "v2"], format9  # the activation, then `+ y`
    assert len(_values(format8)) > 2
    numpy.testing.assert_allclose(_run(format9, module), _run(source, module), rtol=1e-12, atol=1e-12)


def test_torch_spellings_are_cut_outside_loop_prompts():
    """A generator may compose a sigmoid out of `neg`, `exp`, `add` and `div`; its torch rendering reads like the
    spelling and its kernel spells it out too, so a tensor-style prompt keeps it cut."""
    source = _source("1.0 / (1.0 + torch.exp(-x))")
    assert _values(three_address(source, 9)) == ["v1", "v2", "v3", "v4", "v5"]
    assert _values(three_address(source, 9, ("numpy", "torch"))) == ["v1", "v2"]


def test_the_operand_is_hoisted_and_must_be_the_same_everywhere():
    hoisted = three_address(_source("(x * 2.0) / (1.0 + numpy.abs(x * 2.0))"), 9)
    assert "v1 = a0 * 2.0" in hoisted and "v2 = v1 / (1.0 + numpy.abs(v1))" in hoisted
    assert len(_values(three_address(_source("x / (1.0 + numpy.exp(-y))"), 9))) == 5  # not a silu: cut


def test_numbers_match_by_value_and_constants_are_kept():
    gelu = three_address(_source("0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"), 9, ("numpy", "torch"))
    assert "v1 = 0.5 * a0 * (1.0 + torch.erf(a0 / 1.4142135623730951))" in gelu
    leaky = three_address(_source("numpy.where(x >= 0, x, x * 0.2)"), 9)
    assert "v1 = numpy.where(a0 >= 0, a0, a0 * 0.2)" in leaky
    hardtanh = three_address(_source("torch.clamp(torch.clamp(x, min=-2), max=2.0)"), 9, ("numpy", "torch"))
    assert "v1 = torch.clamp(torch.clamp(a0, min=-2), max=2.0)" in hardtanh


def test_a_loop_prompt_keeps_the_spelling_its_rewrite_writes():
    loop = canonicalize("import math\nimport torch\n\n\ndef f(x, y):\n    out = torch.empty_like(x)\n"
                        "    for i in range(x.shape[0]):\n        out[i] = 1.0 / (1.0 + math.exp(-x[i])) + y[i]\n"
                        "    return out\n")
    fused = model_prompt(loop, "f", [1, 1], 9)
    assert "    v1 = 1.0 / (1.0 + torch.exp(-a0))\n    v2 = v1 + a1\n    return v2\n" in fused
    assert len(_values(model_prompt(loop, "f", [1, 1], 8))) == 5


SILU = "import torch\nimport torch.nn.functional as F\n\ndef f(x, y):\n    return F.silu(x) + y\n"
SILU_NUMPY = "import numpy\n\ndef f(x, y):\n    return x / (1.0 + numpy.exp(-x)) + y\n"


def test_a_format_9_pair_counts_like_its_kernel_and_verifies():
    """The target is lowered from the op graph (a `silu` node: one kernel line); format 9's prompt has one line for
    it too, so the kernel's names are the prompt's own, and the target still verifies."""
    module = compile_units(SILU, "u.py", unit="f").units[0].module_source
    prompt, target = pair_texts({"prompt": SILU_NUMPY, "target": module, "ranks": [2, 2]}, 9)
    assert _values(prompt) == _values(target) == ["v1", "v2"]
    assert "v1 = a0 / (1.0 + numpy.exp(-a0))" in prompt and "v1 = a0 / (1.0 + tl.exp(-a0))" in target
    outcome, _, _ = check_and_verify(restore(target, "f", SILU_NUMPY, 9), reference_source=SILU, path="<test>",
                                     unit="f", signature=unit_signature(SILU, "f", "<test>"), backend="interpret",
                                     verify_dtypes=["float32"], timeout_s=120, seed=0, index=0)
    assert outcome.stage is None, outcome.first_message


def test_align_report_counts_what_format_9_changes(tmp_path):
    """scripts/align_report.py, the command behind format 9's figures: the written-out silu is a line spelling four
    prompt lines in format 8, one line in format 9, and the kernel has one line for the silu kept whole."""
    module = compile_units(SILU, "u.py", unit="f").units[0].module_source
    row = {"prompt": SILU_NUMPY, "target": module, "ranks": [2, 2], "family": "elementwise", "id": "silu"}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    run = subprocess.run([sys.executable, str(REPORT), str(tmp_path), "--split", "train", "--spellings"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "a line spelling several prompt lines, format 8 1," in run.stdout
    assert "a line spelling several prompt lines, format 9 0," in run.stdout
    assert "format 9 prompts changed 1," in run.stdout and "silu 1/0/0" in run.stdout
