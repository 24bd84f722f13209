"""Canonical form: formatting, comments, docstrings, local names and import aliases do not matter."""

from __future__ import annotations

import random

from p2t_core.data import generators, render
from p2t_core.data.canonical import canonical_hash, canonicalize

A = '''import torch as t
import torch.nn.functional as F


def fused(x, w, alpha: float = 0.5):
    """Docstring."""
    # a comment
    hidden = t.exp(x)   *alpha
    gated=F.silu( hidden ) @ w   # trailing
    return gated
'''

B = '''import torch
from torch.nn import functional as F

def fused(x, w, alpha: float=0.5):
    a = torch.exp(x) * alpha
    b = F.silu(a) @ w
    return b
'''

C = '''import torch
def fused(x, w, alpha: float = 0.5):
    y = torch.exp(x) * alpha
    z = torch.nn.functional.silu(y) @ w
    return z
'''


def test_invariance():
    assert canonicalize(A) == canonicalize(B) == canonicalize(C)
    assert canonical_hash(canonicalize(A)) == canonical_hash(canonicalize(C))
    text = canonicalize(A)
    assert "v0 = torch.exp(x) * alpha" in text and "Docstring" not in text and "#" not in text
    assert "def fused(x, w, alpha: float=0.5)" in text


def test_different_functions_differ():
    assert canonicalize(A) != canonicalize(C.replace("alpha", "beta"))  # parameter names are kept
    assert canonicalize(C) != canonicalize(C.replace("torch.exp", "torch.sin"))


def test_idempotent_and_deterministic_on_renderings():
    for i, u in enumerate(generators.generate_units(random.Random(5), 30)):
        for style in render.applicable_styles(u):
            src = render.render(u, style, random.Random(i))
            c = canonicalize(src)
            assert canonicalize(c) == c
            assert canonicalize(src) == c


def test_module_and_loop_locals():
    src = '''
import numpy as np
class M(object):
    def __init__(self, eps=1e-5):
        self.eps = eps
    def forward(self, x):
        """doc"""
        s = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return x / s
'''
    text = canonicalize(src)
    assert "numpy.sqrt" in text and "v0 = numpy.sqrt" in text and "self.eps = eps" in text
    loop = "import torch\ndef f(x):\n    o = torch.empty_like(x)\n    for i in range(x.shape[0]):\n" \
           "        o[i] = x[i] * 2.0\n    return o\n"
    assert "for v1 in range(x.shape[0])" in canonicalize(loop)
