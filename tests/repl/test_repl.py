"""`p2t repl` driven through a pseudo-terminal (pexpect): translate, err and recover, :save, :kernels, history."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("prompt_toolkit")

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TIMEOUT = 60  # loaded CI machines: the first translation imports torch and triton


def _env(history):
    env = dict(os.environ)
    env.update(P2T_HISTORY=str(history), PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1", TERM="xterm", COLUMNS="200",
               PYTHONUNBUFFERED="1")
    return env


def spawn(history, *args):
    child = pexpect.spawn(sys.executable, ["-m", "p2t_core.repl", *args], env=_env(history), encoding="utf-8",
                          timeout=TIMEOUT, dimensions=(50, 200))
    child.expect("Ctrl-D quits")
    return child


def prompt(child):
    """Wait for the next prompt: keys sent before prompt_toolkit is back in raw mode would be cooked by the tty."""
    child.expect(">>>")


def send_block(child, text):
    """Type a source line by line (Enter after each) and end it with a blank line."""
    prompt(child)
    for line in text.splitlines():
        child.send(line + "\r")
    child.send("\r")


def command(child, line):
    prompt(child)
    child.send(line + "\r")


def output_since(child, pattern):
    child.expect(pattern)
    return ANSI.sub("", child.before + child.after)


FN = "import torch\n\ndef scaled_relu(x):\ny = torch.relu(x) * 2.0\nreturn y + 1.0"


def test_session(tmp_path):
    history = tmp_path / "history"
    child = spawn(history)
    command(child, ":verify off")
    child.expect("verification off")
    # prompt_toolkit keeps the indentation after `def ...:`, so the body lines are typed unindented
    send_block(child, FN)
    text = output_since(child, r"verification off \(:verify on\)")
    assert "translated scaled_relu with the compiler engine (1 kernel(s)" in text
    assert "_scaled_relu_0_kernel" in text and "@triton.jit" in text

    # a bad input: one error line, no traceback, the session goes on
    send_block(child, "def broken(x):\nreturn torch.fft.fft(x)")
    text = output_since(child, r"unsupported call to torch\.fft\.fft[^\r\n]*")
    assert "Traceback" not in text
    command(child, ":nonsense")
    child.expect("unknown command :nonsense")

    # recovers: the last good unit is still there
    command(child, ":kernels")
    text = output_since(child, r"kernel 0: elementwise[^\r\n]*")
    assert "scaled_relu: 1 kernel(s)" in text
    command(child, ":graph")
    child.expect(r"graph scaled_relu\(x\)")
    out = tmp_path / "saved_triton.py"
    command(child, f":save {out}")
    child.expect("wrote")
    compile(out.read_text(), str(out), "exec")  # the saved module is valid Python
    assert "def scaled_relu(x)" in out.read_text()

    # one verified translation (interpreter on CPU)
    command(child, ":verify on")
    child.expect("verification on")
    send_block(child, "import torch\n\ndef neg_exp(x):\nreturn torch.exp(-x)")
    text = output_since(child, r"verification (PASSED|FAILED) \([0-9.]+ s\)")
    assert "verification PASSED" in text, text
    command(child, ":bench")
    child.expect("needs CUDA" if not _cuda() else r"eager [0-9.]+ us")

    # Ctrl-C cancels a half-typed input
    prompt(child)
    child.send("def half(x):\r")
    child.send("\x03")  # Ctrl-C
    child.expect(r"\(cancelled\)")
    prompt(child)
    child.send("\x04")  # Ctrl-D on an empty prompt quits
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "scaled_relu" in history.read_text()


def _cuda():
    import torch

    return torch.cuda.is_available()


def test_history_persists_across_sessions(tmp_path):
    history = tmp_path / "hist"
    child = spawn(history)
    command(child, ":shapes x=4x8")
    child.expect("shapes x=4x8")
    prompt(child)
    child.send("\x04")  # Ctrl-D: not an input, so not in the history
    child.expect(pexpect.EOF)
    child.close()
    assert ":shapes x=4x8" in history.read_text()

    child = spawn(history)
    prompt(child)
    child.send("\x1b[A")  # Up: the previous session's last input comes back
    child.send("\r")
    child.expect("shapes x=4x8")
    command(child, ":quit")
    child.expect(pexpect.EOF)


def test_non_tty_stdin_is_one_translation(tmp_path):
    src = "import torch\n\n\ndef g(x, y):\n    return torch.sigmoid(x) * y\n"
    run = subprocess.run([sys.executable, "-m", "p2t_core.repl", "--no-verify"], input=src, capture_output=True,
                         text=True, timeout=120, env=_env(tmp_path / "h"))
    assert run.returncode == 0, run.stderr
    assert "def g(x, y)" in run.stdout and "translated g" in run.stderr
    bad = subprocess.run([sys.executable, "-m", "p2t_core.repl"], input="def g(:\n", capture_output=True, text=True,
                         timeout=120, env=_env(tmp_path / "h"))
    assert bad.returncode == 2 and "syntax error" in bad.stderr and "Traceback" not in bad.stderr
