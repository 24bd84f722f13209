"""`p2t suggest` as a pre-commit hook in a throwaway git repository, plus --strict, --write and the eager count."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SOURCE = '''import torch
import torch.nn.functional as F


def bias_gelu(x, b):
    return F.gelu(x + b) * 0.5


def spectral(x):
    return torch.fft.fft(x).real
'''

EXPECTED = "f.py:5: bias_gelu: 3 eager kernels -> 1 fused (p2t translate f.py -f bias_gelu -o f_triton.py)"


def _env(tmp_path):
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), PYTHONPATH=str(ROOT),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return env


def _suggest(args, cwd, env):
    return subprocess.run([sys.executable, "-m", "p2t_core.suggest", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pre_commit_hook(tmp_path):
    pytest.importorskip("pre_commit")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _env(tmp_path)
    (repo / "f.py").write_text(SOURCE)
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        "  - repo: local\n"
        "    hooks:\n"
        "      - id: p2t-suggest\n"
        "        name: p2t suggest\n"
        f"        entry: {sys.executable} -m p2t_core.suggest\n"
        "        language: system\n"
        "        types: [python]\n"
        "        verbose: true\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "f.py", ".pre-commit-config.yaml"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    run = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--files", "f.py"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr  # advice only
    assert EXPECTED in run.stdout, run.stdout
    assert "spectral" not in run.stdout  # unsupported units are skipped silently


def test_strict_verbose_and_write(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "f.py").write_text(SOURCE)
    (tmp_path / "plain.py").write_text("import torch\n\n\ndef one(x):\n    return torch.exp(x)\n")
    plain = _suggest(["plain.py", "--strict"], tmp_path, env)
    assert plain.returncode == 0 and plain.stdout == ""  # one op: nothing to fuse

    strict = _suggest(["--strict", "--verbose", "f.py"], tmp_path, env)
    assert strict.returncode == 1
    assert strict.stdout.strip() == EXPECTED
    assert "f.py:9: spectral: skipped: unsupported call to torch.fft.fft" in strict.stderr

    written = _suggest(["--write", "f.py"], tmp_path, env)
    assert written.returncode == 0 and EXPECTED in written.stdout
    module = (tmp_path / "f_triton.py").read_text()
    compile(module, "f_triton.py", "exec")
    assert "def bias_gelu(x, b)" in module and "spectral" not in module


def test_eager_count_rule():
    from p2t_core.engine import compile_unit_source
    from p2t_core.suggest import counting_plugins, eager_kernels

    plugins = counting_plugins()

    def count(body, params="x"):
        plugins.spans.clear()
        src = f"import torch\nimport torch.nn.functional as F\n\n\ndef f({params}):\n    return {body}\n"
        unit = compile_unit_source(src, "f", plugins=plugins)
        return eager_kernels(unit.graph, plugins.spans), unit.n_kernels

    assert count("x.mean(-1)") == (1, 1)  # a composite is one eager kernel, not sum + div
    assert count("x.view(-1).float() * 2.0") == (1, 1)  # views and casts are free
    assert count("torch.relu(x) + y.exp()", "x, y") == (3, 1)
    assert count("F.mse_loss(x, y) + x.abs().mean()", "x, y") == (4, 1)
