"""Pair format 3's three-address prompts: fixed rewrites, what is left alone, and every rendering style computing
the same thing after the rewrite."""

from __future__ import annotations

import random

import pytest

from p2t_core.data import generators, render
from p2t_core.data.canonical import canonicalize
from p2t_core.llm.flatten import three_address
from tests.data.test_data_render import check

REWRITES = [
    (  # nesting turned inside out in evaluation order; the return gets a name too
        "import torch\n\ndef f(x, y):\n    v0 = torch.relu(torch.exp(x)) + 0.5\n    return torch.tanh(v0) * y\n",
        "import torch\n\ndef f(x, y):\n    v1 = torch.exp(x)\n    v2 = torch.relu(v1)\n    v3 = v2 + 0.5\n"
        "    v4 = torch.tanh(v3)\n    v5 = v4 * y\n    return v5\n",
    ),
    (  # a method's receiver, keyword operands, a negative constant left in place, a tuple return
        "import torch\n\ndef f(x):\n    return ((x + 1.0).exp(), torch.clamp(x, min=-1.0, max=torch.ones(1)))\n",
        "import torch\n\ndef f(x):\n    v1 = x + 1.0\n    v2 = v1.exp()\n    v3 = torch.ones(1)\n"
        "    v4 = torch.clamp(x, min=-1.0, max=v3)\n    return (v2, v4)\n",
    ),
    (  # a module's forward is rewritten, its __init__ is not; attributes and subscripts are operands
        "import torch\n\nclass M(torch.nn.Module):\n\n    def __init__(self):\n        super().__init__()\n"
        "        self.w = torch.ones(3)\n\n    def forward(self, x):\n        return torch.sum(x * self.w, dim=-1)"
        " / x.shape[-1]\n",
        "import torch\n\nclass M(torch.nn.Module):\n\n    def __init__(self):\n        super().__init__()\n"
        "        self.w = torch.ones(3)\n\n    def forward(self, x):\n        v1 = x * self.w\n"
        "        v2 = torch.sum(v1, dim=-1)\n        v3 = v2 / x.shape[-1]\n        return v3\n",
    ),
]

UNCHANGED = [
    # a loop (its accumulator is assigned twice)
    "import torch\n\ndef f(x):\n    v0 = 0.0\n    for v1 in range(3):\n        v0 += torch.exp(x[v1]) * 2.0\n"
    "    return v0\n",
    # a parameter already named like a renumbered local
    "import torch\n\ndef f(v2, x):\n    return torch.exp(v2) + x\n",
    # a lambda, unpacking
    "import torch\n\ndef f(x):\n    g = lambda t: t * 2.0\n    return g(torch.exp(x))\n",
    "import torch\n\ndef f(x):\n    a, b = torch.exp(x), x\n    return a + b\n",
    # a chained comparison evaluates its last operand only if the first comparison holds
    "import torch\n\ndef f(x):\n    return 0.0 < torch.exp(x) < torch.tanh(x)\n",
    # nothing nested and already numbered
    "import torch\n\ndef f(x):\n    v1 = torch.exp(x)\n    return v1\n",
]


@pytest.mark.parametrize(("before", "after"), REWRITES)
def test_rewrites(before, after):
    assert three_address(before) == after
    assert three_address(after) == after  # a fixed point


@pytest.mark.parametrize("source", UNCHANGED)
def test_left_alone(source):
    assert three_address(source) == source


UNITS = generators.generate_units(random.Random(4321), 60)


@pytest.mark.parametrize("family", sorted(generators.FAMILIES))
def test_every_style_computes_the_same_after_the_rewrite(family):
    units = [u for u in UNITS if u.family == family] or generators.generate_units(random.Random(9), 5, [family])
    rewritten = 0
    for i, unit in enumerate(units[:8]):
        for style in render.applicable_styles(unit):
            prompt = canonicalize(render.render(unit, style, random.Random(f"{i}:{style}")))
            flat = three_address(prompt)
            rewritten += flat != prompt
            check(unit, flat, style)
    assert rewritten  # each family has straight-line renderings that the rewrite changes
