"""`p2t verify`: the control passes, the buggy example fails, every hostile candidate is rejected or contained.

Everything goes through the click command (in process, with CliRunner): a rejected candidate must never
reach the verifier (which is replaced here by a tripwire), and no payload may ever create its marker.
Candidates that pass the static gates on purpose (a huge allocation, an endless loop, a stray store) run
in the verifier's worker and must fail there, contained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2t_core.verify_cli import verify_cmd
from tests.postprocess.corpus import HOSTILE_DIR, hostile_cases
from tests.verify_cmd.hostile_extra import EXTRA

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
REF = HERE / "ref_f.py"
CONTROL = HERE / "control_f.py"
FAST = ["--backend", "interpret", "--dtypes", "float32", "--shapes", "x=37", "--seed", "1"]
ONE = [*FAST, "--contiguous-only"]  # a single case: one worker run

STATIC = [(c.name, c.expect, c.text) for c in hostile_cases() if c.expect != "sandbox"] + EXTRA
SANDBOX = {c.name: c.text for c in hostile_cases() if c.expect == "sandbox"}


def run(*args: str):
    result = CliRunner().invoke(verify_cmd, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def _write(tmp_path: Path, text: str, marker: Path) -> Path:
    path = tmp_path / "candidate.py"
    path.write_bytes(text.replace("MARKER_PATH", str(marker)).encode("utf-8", "surrogateescape"))
    return path


def test_enough_hostile_candidates():
    assert len(STATIC) + len(SANDBOX) >= 30
    names = {n for n, _, _ in STATIC}
    for needed in ("import_os", "import_sys", "import_subprocess", "import_ctypes", "dunder_import", "eval_call",
                   "exec_call", "globals_builtins", "getattr_builtins", "vars_module", "subclasses_escape",
                   "decorator_payload", "default_arg_payload", "fstring_payload", "metaclass_payload",
                   "torch_load_pickle", "monkeypatch_torch_exp", "triton_runtime_driver", "inline_asm",
                   "truncated_text", "torch_math_launcher", "wrong_call_signature"):
        assert needed in names, needed


@pytest.mark.parametrize("name,stage,text", STATIC, ids=[s[0] for s in STATIC])
def test_hostile_candidate_is_rejected_before_anything_runs(name, stage, text, tmp_path, monkeypatch):
    import p2t_core.verify

    def tripwire(*a, **k):
        raise AssertionError("the verifier was reached with a rejected candidate")

    monkeypatch.setattr(p2t_core.verify, "verify", tripwire)
    marker = tmp_path / "marker"
    cand = _write(tmp_path, text, marker)
    out = tmp_path / "out.json"
    result = run(cand, "--reference", REF, "--json", out, *FAST)
    assert result.exit_code == 1, result.output
    data = json.loads(out.read_text())
    assert data["stage"] == stage and data["report"] is None and data["messages"], data
    assert f"rejected by the {stage} check" in result.output
    assert not marker.exists()


def test_control_passes_and_writes_json(tmp_path):
    out = tmp_path / "report.json"
    result = run(CONTROL, "--reference", REF, "--json", out, *FAST)
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    data = json.loads(out.read_text())
    assert data["stage"] == "verify" and data["report"]["passed"] is True
    assert {c["layout"] for c in data["report"]["cases"]} == {"contiguous", "strided"}


def test_buggy_softmax_example_fails():
    ex = ROOT / "examples" / "verify"
    result = run(ex / "softmax_triton_buggy.py", "--reference", ex / "softmax_ref.py", "--backend", "interpret",
                 "--dtypes", "float32", "--shapes", "x=5x33", "--seed", "1", "--contiguous-only")
    assert result.exit_code == 1, result.output
    assert "wrong values" in result.output and "FAILED" in result.output


@pytest.mark.parametrize("name,expect", [
    ("oob_store_no_mask", "write outside the output"),
    ("huge_allocation", "out of memory"),
])
def test_sandbox_contains_what_passes_the_static_gates(name, expect, tmp_path):
    marker = tmp_path / "marker"
    cand = _write(tmp_path, SANDBOX[name], marker)
    result = run(cand, "--reference", REF, "--memory-mb", "2048", *ONE)
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    assert expect in result.output or "worker crashed" in result.output, result.output
    assert not marker.exists()


def test_endless_loop_is_stopped_by_the_timeout(tmp_path):
    marker = tmp_path / "marker"
    cand = _write(tmp_path, SANDBOX["long_host_loop"], marker)
    result = run(cand, "--reference", REF, "--timeout", "5", *ONE)
    assert result.exit_code == 1, result.output
    assert "timeout after 5 s" in result.output
    assert not marker.exists()


# A harmless construct the grammar rejects (an f-string in an error message): --trusted skips the gates.
TRUSTED_OK = CONTROL.read_text().replace(
    "    x = x.contiguous()\n",
    "    if x.dim() > 8:\n        raise ValueError(f\"rank {x.dim()} is not supported\")\n    x = x.contiguous()\n")

# A payload at import time: with --trusted it RUNS (in the worker process, not in the CLI's process).
PAYLOAD = "import os\n\nopen(\"MARKER_PATH\", \"w\").write(str(os.getpid()))\n" + CONTROL.read_text()


def test_trusted_skips_the_static_gates(tmp_path):
    cand = tmp_path / "candidate.py"
    cand.write_text(TRUSTED_OK)
    assert run(cand, "--reference", REF, *FAST).exit_code == 1  # the grammar rejects the f-string
    result = run(cand, "--reference", REF, "--trusted", *ONE)
    assert result.exit_code == 0, result.output


def test_trusted_payload_runs_in_the_worker_only(tmp_path):
    marker = tmp_path / "marker"
    cand = _write(tmp_path, PAYLOAD, marker)
    rejected = run(cand, "--reference", REF, *FAST)
    assert rejected.exit_code == 1 and not marker.exists()
    # Honest limit of --trusted: the code runs with the user's rights. It ran in the worker (another pid),
    # not in this process; the worker has a temp cwd, a clean env and limits, but no filesystem jail.
    result = run(cand, "--reference", REF, "--trusted", *ONE)
    assert result.exit_code == 0, result.output
    assert marker.exists()
    assert int(marker.read_text()) != os.getpid()


@pytest.mark.parametrize("args,fragment", [
    (["missing.py", "--reference", REF], "no such file"),
    ([CONTROL, "--reference", "missing_ref.py"], "no such file"),
    ([CONTROL, "--reference", REF, "-f", "nope"], "no unit named 'nope'"),
    ([CONTROL, "--reference", ROOT / "examples" / "losses.py"], "choose one with -f NAME"),
    ([CONTROL, "--reference", REF, "--shapes", "x=4xq"], "bad --shapes"),
    ([CONTROL, "--reference", REF, "--shapes", "y=4"], "not parameters of f"),
    ([CONTROL, "--reference", REF, "--dtypes", "float8"], "bad --dtypes"),
    ([CONTROL, "--reference", HOSTILE_DIR / "truncated_text.txt"], "syntax error in the reference"),
])
def test_unusable_input_exits_2(args, fragment, monkeypatch):
    import p2t_core.verify

    monkeypatch.setattr(p2t_core.verify, "verify", lambda *a, **k: pytest.fail("verifier reached"))
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("p2t:")]) == 1


def test_signature_falls_back_to_shapes(tmp_path):
    # The compiler and the frontend both refuse this reference (data-dependent control flow): --shapes gives
    # the signature, and a correct candidate still verifies.
    ref = tmp_path / "ref.py"
    ref.write_text("import torch\n\n\ndef f(x, alpha: float = 2.0):\n    if x.numel() < 0:\n        return x\n"
                   "    return x * alpha\n")
    cand = tmp_path / "cand.py"
    cand.write_text(CONTROL.read_text().replace("def f(x):", "def f(x, alpha: float = 2.0):"))
    result = run(cand, "--reference", ref, "--backend", "interpret", "--dtypes", "float32", "--seed", "1")
    assert result.exit_code == 2 and "--shapes" in result.output, result.output
    result = run(cand, "--reference", ref, *ONE)
    assert "signature of f from the shapes" in result.output, result.output
    assert result.exit_code == 0, result.output
