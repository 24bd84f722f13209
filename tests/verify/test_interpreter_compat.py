"""The Triton interpreter's fix for numpy >= 2.4 (p2t_core/verify/interpreter_compat.py) and the check that decides
whether the verifier may interpret on this machine."""

from __future__ import annotations

import pytest
from triton.runtime import interpreter

from p2t_core.verify import interpreter_compat, interpreter_problem


class _OneElement:
    """What numpy >= 2.4 makes of a one-element 1-D array: int() raises, .item() works."""

    def item(self):
        return 3

    def __int__(self):
        raise TypeError("only 0-dimensional arrays can be converted to Python scalars")


class _Handle:
    data = _OneElement()


class _Tensor:
    handle = _Handle()


@pytest.fixture
def fresh_interpreter(monkeypatch):
    monkeypatch.setattr(interpreter, "_patch_lang_tensor", interpreter._patch_lang_tensor)
    monkeypatch.delattr(interpreter, "_p2t_patched", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the patch is for interpreting processes only


def test_below_numpy_2_4_nothing_is_patched(fresh_interpreter, monkeypatch):
    before = interpreter._patch_lang_tensor
    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 3))
    interpreter_compat.patch_interpreter()
    assert interpreter._patch_lang_tensor is before


def test_the_patched_index_converts_through_item_and_is_restored(fresh_interpreter, monkeypatch):
    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 5))
    interpreter_compat.patch_interpreter()
    patched = interpreter._patch_lang_tensor
    interpreter_compat.patch_interpreter()  # twice: still one wrapper
    assert interpreter._patch_lang_tensor is patched
    scope = interpreter._LangPatchScope()
    interpreter._patch_lang_tensor(_Tensor, scope)
    assert _Tensor().__index__() == 3  # the interpreter's own int(data) would raise here
    scope.restore()
    assert not hasattr(_Tensor, "__index__")


def test_the_self_check_passes_here_and_names_a_failure(monkeypatch):
    interpreter_compat.self_check.cache_clear()
    assert interpreter_compat.self_check() is None  # the check kernels, interpreted in a subprocess
    monkeypatch.setattr(interpreter_compat, "_CHECK", "raise SystemExit('the check kernel went wrong')")
    interpreter_compat.self_check.cache_clear()
    assert "the check kernel went wrong" in interpreter_compat.self_check()
    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 5))
    assert "self-check" in interpreter_problem()
    interpreter_compat.self_check.cache_clear()


def test_below_numpy_2_4_the_interpreter_is_trusted_without_a_check(monkeypatch):
    monkeypatch.setattr(interpreter_compat, "numpy_version", lambda: (2, 3))
    monkeypatch.setattr(interpreter_compat, "self_check", lambda: pytest.fail("no check below numpy 2.4"))
    assert interpreter_problem() is None
