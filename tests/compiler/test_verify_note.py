"""`p2t translate --shapes` with bench-size shapes on a machine without CUDA: the user is told up front that the
interpreter will take minutes, before verification starts."""

from __future__ import annotations

import types

import pytest

import p2t_core.verify
from p2t_core.engine import compile_units
from p2t_core.translate import INTERPRETED_ELEMENTS, verify_units

SOURCE = "import torch\n\ndef f(x):\n    return torch.relu(x)\n"


@pytest.mark.parametrize("elements,noted", [(INTERPRETED_ELEMENTS, False), (INTERPRETED_ELEMENTS + 1, True)])
def test_large_interpreted_shapes_are_noted_before_verifying(monkeypatch, elements, noted):
    said = []
    report = types.SimpleNamespace(render=lambda: "report", passed=True)
    monkeypatch.setattr(p2t_core.verify, "verify", lambda *args, **kwargs: said.append("verified") or report)
    shapes = {"x": (elements,)}
    result = compile_units(SOURCE, "u.py", unit="f", shapes=shapes)
    assert verify_units(SOURCE, result, backend="interpret", shapes=shapes, echo=said.append)
    assert any("takes minutes" in line for line in said[:1]) == noted and "verified" in said
