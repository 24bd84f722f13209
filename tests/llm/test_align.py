"""Pair formats 7 and 8 (p2t_core.llm.align): an elementwise kernel's values take the names of the prompt's locals."""

import multiprocessing
import re

import torch

from p2t_core.engine import compile_units
from p2t_core.llm.align import align_kernel_names, align_row_kernel_names
from p2t_core.llm.engine import check_and_verify
from p2t_core.llm.pairform import library_helpers, model_prompt, model_target, pair_texts, restore
from p2t_core.llm.prompt import unit_signature


def _pair(target_source: str, prompt_source: str, ranks: list[int], unit: str = "f") -> tuple[str, str]:
    """(format-6 prompt of `prompt_source`, format-6 target compiled from `target_source`): the data pipeline lowers
    a unit's target from its graph, which may spell an operation the prompt writes out."""
    module = compile_units(target_source, "u.py", unit=unit).units[0].module_source
    return model_prompt(prompt_source, unit, ranks, 6), model_target(module, unit, prompt_source, 6)


def _values(text: str) -> list[str]:
    return re.findall(r"^    (v\w+) = ", text, re.M)


SILU = "import torch\nimport torch.nn.functional as F\n\ndef f(x, y):\n    return F.silu(x) + y\n"
SILU_WRITTEN_OUT = "import numpy\n\ndef f(x, y):\n    return x / (1.0 + numpy.exp(-x)) + y\n"


def test_a_value_spelling_several_operations_takes_the_name_of_the_last():
    prompt, target = _pair(SILU, SILU_WRITTEN_OUT, [2, 2])
    assert re.findall(r"^    (v\d+) = ", prompt, re.M) == ["v1", "v2", "v3", "v4", "v5"]  # -x, exp, 1 +, /, + y
    assert _values(target) == ["v1", "v2"]
    aligned = align_kernel_names(prompt, target, library_helpers())
    assert _values(aligned) == ["v4", "v5"]
    assert "v4 = a0 / (1.0 + tl.exp(-a0))" in aligned and "v5 = v4 + a1" in aligned
    assert "tl.store(Out0_ptr + offsets, v5.to(" in aligned
    assert aligned.replace("v4", "v1").replace("v5", "v2") == target  # nothing but the names


def test_a_kernel_counting_like_the_prompt_is_unchanged():
    prompt, target = _pair(SILU, SILU, [2, 2])
    assert align_kernel_names(prompt, target, library_helpers()) == target


def test_a_value_the_prompt_does_not_hold_is_named_after_the_next_local():
    clamp = "import torch\n\ndef f(a, y):\n    return torch.clamp(a * 0.1, -0.5, 1.0) + y\n"
    prompt, target = _pair(clamp, clamp, [2, 2])
    assert _values(target) == ["v1", "v2", "v3", "v4"]  # 0.1 a, maximum, minimum, + y
    aligned = align_kernel_names(prompt, target, library_helpers())
    assert _values(aligned) == ["v1", "v2_1", "v2", "v3"]
    assert "v2 = tl.where(v2_1 != v2_1, v2_1, tl.minimum(v2_1, 1.0))" in aligned


def test_a_scalar_parameter_takes_the_value_its_launch_passes():
    silu = ("import torch\nimport torch.nn.functional as F\n\ndef f(x, y, scale: float = 3.0):\n"
            "    return F.silu(x) * scale + y\n")
    written = "import numpy\n\ndef f(x, y, scale: float = 3.0):\n    return x / (1.0 + numpy.exp(-x)) * scale + y\n"
    prompt, target = _pair(silu, written, [2, 2])
    assert "s0" in target
    assert _values(align_kernel_names(prompt, target, library_helpers())) == ["v4", "v5", "v6"]


def test_a_modules_tensor_is_loaded_under_its_attribute():
    module = ("import torch\n\nclass Gate(torch.nn.Module):\n\n    def __init__(self, features: int):\n"
              "        super().__init__()\n        self.w = torch.nn.Parameter(torch.randn(features))\n\n"
              "    def forward(self, x):\n        return torch.clamp(x, 0.0, max=2.0) * self.w\n")
    prompt, target = _pair(module, module, [2], unit="Gate")
    assert re.search(r"a1 = tl\.load\(In1_W_ptr", target) and _values(target) == ["v1", "v2", "v3"]
    assert _values(align_kernel_names(prompt, target, library_helpers())) == ["v1_1", "v1", "v2"]


def test_a_row_kernel_keeps_its_format_6_target():
    softmax = "import torch\n\ndef f(x):\n    return torch.softmax(x * 2.0, dim=-1)\n"
    prompt, target = _pair(softmax, softmax, [2])
    assert align_kernel_names(prompt, target, library_helpers()) == target


def test_pair_texts_of_format_7_differ_from_format_6_only_in_the_targets_names():
    module = compile_units(SILU, "u.py", unit="f").units[0].module_source
    row = {"prompt": SILU_WRITTEN_OUT, "target": module, "ranks": [2, 2]}
    (p6, t6), (p7, t7) = pair_texts(row, 6), pair_texts(row, 7)
    assert p6 == p7 and t6 != t7 and _values(t7) == ["v4", "v5"]


def test_an_aligned_target_still_verifies():
    prompt, target = _pair(SILU, SILU_WRITTEN_OUT, [2, 2])
    aligned = align_kernel_names(prompt, target, library_helpers())
    module = restore(aligned, "f", SILU_WRITTEN_OUT, 7)
    outcome, _, _ = check_and_verify(module, reference_source=SILU, path="<test>", unit="f",
                                     signature=unit_signature(SILU, "f", "<test>"), backend="interpret",
                                     verify_dtypes=["float32"], timeout_s=120, seed=0, index=0)
    assert outcome.stage is None, outcome.first_message


def test_runs_in_workers_forked_after_torch_started_its_threads():
    """The training loader forks its workers once torch has run (model_texts); a torch op that opened an OpenMP
    region in such a worker hung it (seen with torch.randn before the one-thread guard)."""
    module = compile_units(SILU, "u.py", unit="f").units[0].module_source
    row = {"prompt": SILU_WRITTEN_OUT, "target": module, "ranks": [3, 3]}  # 4,096 values an input
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # tests/llm/conftest.py runs torch on one thread
    try:
        torch.randn(1024, 1024) @ torch.randn(1024, 1024)  # the parent's OpenMP pool is up
        with multiprocessing.get_context("fork").Pool(2) as pool:
            texts = pool.starmap_async(pair_texts, [(row, 7)] * 4).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    assert all(_values(t) == ["v4", "v5"] for _, t in texts)


def test_a_clamp_whose_bound_never_acts_still_names_its_second_half():
    """cos is within [-1, 1], so clamp(cos, -0.5, 2.0)'s minimum holds the maximum's values: the minimum, the last
    value holding the local, takes its name."""
    source = "import torch\n\ndef f(a):\n    return torch.clamp(torch.cos(a), -0.5, 2.0) + 0.5\n"
    prompt, target = _pair(source, source, [2])
    assert _values(align_kernel_names(prompt, target, library_helpers())) == ["v1", "v2_1", "v2", "v3"]


def test_values_equal_along_a_round_trip_keep_the_prompts_order():
    source = "import torch\n\ndef f(a):\n    return torch.log(a).to(torch.float16).to(torch.float32)\n"
    prompt, target = _pair(source, source, [2])
    assert re.findall(r"^    (v\d+) = ", prompt, re.M) == ["v1", "v2", "v3"]
    aligned = align_kernel_names(prompt, target, library_helpers())
    assert _values(aligned) == _values(target)


HARDSIGMOID_AFTER_HARDTANH = ("import torch\nimport torch.nn.functional as F\n\ndef f(h):\n"
                              "    return F.hardsigmoid(F.hardtanh(h, -2.0, 2.0))\n")
SPELLED_OUT = ("import torch\n\ndef f(h):\n    v = torch.clamp(torch.clamp(h, min=-2.0), max=2.0)\n"
               "    return torch.clamp(torch.relu(v / 6.0 + 0.5), max=1.0)\n")


def test_format_8_names_a_line_after_the_last_local_in_a_row_that_holds_its_value():
    """hardtanh leaves [-2, 2], so v / 6 + 0.5 is already within [0, 1]: the prompt's `+ 0.5`, relu and clamp hold
    the kernel's one hardsigmoid line alike. Format 7 took the first (and stored a value the prompt does not
    return); format 8 takes the last, which the prompt returns."""
    prompt, target = _pair(HARDSIGMOID_AFTER_HARDTANH, SPELLED_OUT, [2])
    returned = re.search(r"^    return (v\d+)$", prompt, re.M).group(1)
    assert returned == "v6" and _values(target) == ["v1", "v2"]
    first = align_kernel_names(prompt, target, library_helpers())
    last = align_kernel_names(prompt, target, library_helpers(), latest=True)
    assert _values(first) == ["v2", "v4"]  # the clamp's two lines are v1, v2; then / 6, + 0.5, relu, clamp
    assert _values(last) == ["v2", "v6"] and f"tl.store(Out0_ptr + offsets, {returned}.to(" in last
    assert pair_texts({"prompt": SPELLED_OUT, "target": compile_units(
        HARDSIGMOID_AFTER_HARDTANH, "u.py", unit="f").units[0].module_source, "ranks": [2]}, 8)[1] == last


def test_format_8_leaves_the_next_value_a_local():
    """A kernel that spells the same operations over several lines keeps one local a line: the latest choice of a
    value stops short of the next value's local."""
    prompt, target = _pair(SPELLED_OUT, SPELLED_OUT, [2])
    first = _values(align_kernel_names(prompt, target, library_helpers()))
    last = _values(align_kernel_names(prompt, target, library_helpers(), latest=True))
    assert first == last == ["v1", "v2", "v3", "v4", "v5", "v6"]  # relu and clamp act on nothing here, yet each
    # of the kernel's lines keeps its own local: the choice goes back from the last value


BCE = ("import torch\n\ndef f(inp, label):\n    return torch.nn.functional.binary_cross_entropy(torch.sigmoid(inp), "
       "torch.sigmoid(label), reduction='none')\n")


def test_format_8_names_the_loads_as_the_prompt_binds_their_parameters():
    """The lowering of binary cross-entropy reads the target first, so the kernel loads `label` as a0 where the
    prompt binds it to a1: format 7 cannot match the values and keeps format 6's names; format 8 names the loads
    after the prompt first, and then the values too."""
    prompt, target = _pair(BCE, BCE, [2, 2])
    assert "    a0 = inp\n    a1 = label\n" in prompt and "a0 = tl.load(In0_Label_ptr" in target
    assert align_kernel_names(prompt, target, library_helpers()) == target
    last = align_kernel_names(prompt, target, library_helpers(), latest=True)
    assert "a1 = tl.load(In0_Label_ptr" in last and "a0 = tl.load(In1_Inp_ptr" in last
    assert "v2 = 1.0 / (1.0 + tl.exp(-a1))" in last  # the prompt's v2 = torch.sigmoid(a1)
    assert "tl.store(Out0_ptr + offsets, v3.to(" in last  # the prompt returns v3
    module = restore(last, "f", BCE, 8)
    outcome, _, _ = check_and_verify(module, reference_source=BCE, path="<test>", unit="f",
                                     signature=unit_signature(BCE, "f", "<test>"), backend="interpret",
                                     verify_dtypes=["float32"], timeout_s=120, seed=0, index=0)
    assert outcome.stage is None, outcome.first_message


HARDSWISH_MIN_AMAX = ("import torch\n\ndef f(feat):\n    v4 = feat * torch.clamp(feat + 3.0, 0.0, 6.0) / 6.0\n"
                      "    v5 = torch.minimum(v4, feat)\n    return v5, torch.amax(torch.abs(v5))\n")


def _row_values(text: str) -> list[str]:
    return re.findall(r"^ +(v\w+) = ", text, re.M)


def test_a_row_kernels_values_take_the_prompts_names_in_every_pass():
    """The valid_random unit the format-9 weights failed twice: the clamp is two kernel lines, so `v1005` held the
    prompt's `v4`; format 10 names each value as the prompt does, in the single-block branch and in both loops."""
    prompt, target = _pair(HARDSWISH_MIN_AMAX, HARDSWISH_MIN_AMAX, [2])
    assert "v1005 = v1004 / 6.0" in target
    aligned = align_row_kernel_names(prompt, target, library_helpers())
    assert "v1001" not in aligned and "v2001" not in aligned
    chain = ["v1", "v2_1", "v2", "v3", "v4", "v5"]
    assert _row_values(aligned) == chain + ["v6"] + chain + ["v6"] + chain
    assert "v5 = tl.minimum(v4, x0" in aligned and "v6 = tl.abs(v5)" in aligned
    module = restore(aligned, "f", HARDSWISH_MIN_AMAX, 10)
    outcome, _, _ = check_and_verify(module, reference_source=HARDSWISH_MIN_AMAX, path="<test>", unit="f",
                                     signature=unit_signature(HARDSWISH_MIN_AMAX, "f", "<test>"),
                                     backend="interpret", verify_dtypes=["float32"], timeout_s=120, seed=0, index=0)
    assert outcome.stage is None, outcome.first_message


def test_a_row_kernels_values_read_from_a_reduction_keep_their_names():
    softmax = "import torch\n\ndef f(x):\n    return torch.softmax(x * 2.0, dim=-1) + 1.0\n"
    prompt, target = _pair(softmax, softmax, [2])
    aligned = align_row_kernel_names(prompt, target, library_helpers())
    assert aligned != target and "v1 = x0 * 2.0" in aligned and "v1001" not in aligned
    assert re.findall(r"\bsm\d+\b", aligned) == re.findall(r"\bsm\d+\b", target)  # the softmax's own names
    assert align_row_kernel_names(prompt, aligned, library_helpers()) == aligned
    elementwise_prompt, elementwise = _pair(SILU, SILU, [2, 2])
    assert align_row_kernel_names(elementwise_prompt, elementwise, library_helpers()) == elementwise


def test_pair_texts_of_format_10_differ_from_format_9_only_in_row_kernels_names():
    module = compile_units(HARDSWISH_MIN_AMAX, "u.py", unit="f").units[0].module_source
    row = {"prompt": HARDSWISH_MIN_AMAX, "target": module, "ranks": [2]}
    (p9, t9), (p10, t10) = pair_texts(row, 9), pair_texts(row, 10)
    assert p9 == p10 and t9 != t10
    assert re.sub(r"\bv\w+\b", "V", t9) == re.sub(r"\bv\w+\b", "V", t10)
