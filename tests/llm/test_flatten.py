"""Pair formats 3 to 5's three-address prompts: fixed rewrites, what is left alone, and every rendering style
computing the same thing after the rewrite; format 4's values and format 5's loads numbered like the compiler's
kernels."""

from __future__ import annotations

import random
import re

import pytest

from p2t_core.data import generators, render
from p2t_core.data.canonical import canonicalize
from p2t_core.engine import compile_units
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


REWRITES_4 = [
    (  # each local at its first use (the graph's post-order), a constant folded as the compiler folds it
        "import math\nimport torch\n\ndef f(x):\n    inner = math.sqrt(2.0 / math.pi) * (x + torch.pow(x, 3))\n"
        "    return 0.5 * x * (1.0 + torch.tanh(inner))\n",
        "import math\nimport torch\n\ndef f(x):\n    v1 = 0.5 * x\n    v2 = torch.pow(x, 3)\n    v3 = x + v2\n"
        "    v4 = 0.7978845608028654 * v3\n    v5 = torch.tanh(v4)\n    v6 = 1.0 + v5\n    v7 = v1 * v6\n"
        "    return v7\n",
    ),
    (  # a reduction's `.values` and `[0]` belong to its call; a local used twice is one value; an unused one goes
        "import torch\n\ndef f(x):\n    m = torch.max(torch.sigmoid(x), -1).values\n    unused = x * 2.0\n"
        "    return m * m + torch.max(x, dim=0)[0] / x.shape[-1]\n",
        "import torch\n\ndef f(x):\n    v1 = torch.sigmoid(x)\n    v2 = torch.max(v1, -1).values\n    v3 = v2 * v2\n"
        "    v4 = torch.max(x, dim=0)[0]\n    v5 = v4 / x.shape[-1]\n    v6 = v3 + v5\n    return v6\n",
    ),
    (  # folded negatives keep their parentheses; complex, infinite and huge results are not folded
        "import math\nimport torch\n\ndef f(x):\n    return x * (-2.0) ** 3 + x ** (1 - 3) - x * (-8) ** 0.5 + math.inf"
        " + 2 ** 100 + math.pi\n",
        "import math\nimport torch\n\ndef f(x):\n    v1 = x * -8.0\n    v2 = x ** (-2)\n    v3 = v1 + v2\n"
        "    v4 = (-8) ** 0.5\n    v5 = x * v4\n    v6 = v3 - v5\n    v7 = v6 + math.inf\n    v8 = 2 ** 100\n"
        "    v9 = v7 + v8\n    v10 = v9 + 3.141592653589793\n    return v10\n",
    ),
    (  # what Python cannot fold to a real number is hoisted, not evaluated (no exception escapes)
        "import math\n\ndef f(x):\n    return x * math.sqrt((-8) ** 0.5) + math.log(-1.0)\n",
        "import math\n\ndef f(x):\n    v1 = (-8) ** 0.5\n    v2 = math.sqrt(v1)\n    v3 = x * v2\n"
        "    v4 = math.log(-1.0)\n    v5 = v3 + v4\n    return v5\n",
    ),
]

REWRITES_5 = [
    (  # tensor parameters bound to their loads' names in the order of first use; scalars (numeric defaults) stay
        "import torch\n\ndef f(x, b, c, alpha=0.5, *, beta: float=-1.0):\n"
        "    return torch.sigmoid(c) * b + x * alpha * beta\n",
        "import torch\n\ndef f(x, b, c, alpha=0.5, *, beta: float=-1.0):\n    a0 = c\n    a1 = b\n    a2 = x\n"
        "    v1 = torch.sigmoid(a0)\n    v2 = v1 * a1\n    v3 = a2 * alpha\n    v4 = v3 * beta\n    v5 = v2 + v4\n"
        "    return v5\n",
    ),
    (  # a module's forward: `self` and its attributes stay; an unused parameter is not loaded
        "import torch\n\nclass M(torch.nn.Module):\n\n    def forward(self, q, unused, k):\n"
        "        return (q @ k) * self.scale + q.shape[-1]\n",
        "import torch\n\nclass M(torch.nn.Module):\n\n    def forward(self, q, unused, k):\n        a0 = q\n"
        "        a1 = k\n        v1 = a0 @ a1\n        v2 = v1 * self.scale\n        v3 = v2 + a0.shape[-1]\n"
        "        return v3\n",
    ),
    (  # a name already like a load's: the values are numbered, the loads are not named
        "import torch\n\ndef f(a1, x):\n    return torch.exp(a1) + x\n",
        "import torch\n\ndef f(a1, x):\n    v1 = torch.exp(a1)\n    v2 = v1 + x\n    return v2\n",
    ),
]

UNCHANGED_4 = [
    # a call evaluated for its effect: emitting values at their first use would move or drop it
    "import torch\n\ndef f(x):\n    y = torch.exp(x)\n    print(y)\n    return y\n",
]


@pytest.mark.parametrize(("before", "after"), REWRITES)
def test_rewrites(before, after):
    assert three_address(before) == after
    assert three_address(after) == after  # a fixed point


@pytest.mark.parametrize(("before", "after"), REWRITES_4)
def test_format_4_rewrites(before, after):
    assert three_address(before, 4) == after
    assert three_address(after, 4) == after


@pytest.mark.parametrize(("before", "after"), REWRITES_5)
def test_format_5_rewrites(before, after):
    assert three_address(before, 5) == after


@pytest.mark.parametrize("source", UNCHANGED)
def test_left_alone(source):
    assert three_address(source) == source


@pytest.mark.parametrize("source", UNCHANGED + UNCHANGED_4)
def test_left_alone_by_format_4(source):
    assert three_address(source, 4) == source


UNITS = generators.generate_units(random.Random(4321), 60)


@pytest.mark.parametrize("family", sorted(generators.FAMILIES))
def test_every_style_computes_the_same_after_the_rewrite(family):
    units = [u for u in UNITS if u.family == family] or generators.generate_units(random.Random(9), 5, [family])
    rewritten = 0
    for i, unit in enumerate(units[:8]):
        for style in render.applicable_styles(unit):
            prompt = canonicalize(render.render(unit, style, random.Random(f"{i}:{style}")))
            for version, spelled in ((3, ()), (4, ()), (5, ()), (9, ("numpy", "torch"))):
                flat = three_address(prompt, version, spelled)
                rewritten += flat != prompt
                check(unit, flat, style)
    assert rewritten  # each family has straight-line renderings that the rewrite changes


def test_format_4_numbers_values_like_the_compiled_kernel():
    """On a unit whose every value is one kernel line, format 4's prompt lines and the kernel's lines agree in
    number and operation, in order (format 3 computes the clip after the division, as the source is written)."""
    source = ("import torch\n\ndef f(logits, feat):\n    v0 = torch.div(logits, 3.0)\n"
              "    v1 = torch.sigmoid(torch.clip(logits, -0.5, max=0.5) + v0)\n    return v1 * feat\n")
    kernel = compile_units(source, "u.py").module_source
    kernel_ops = re.findall(r"^\s+v\d+ = (?:tl\.where\(\w+ != \w+.*(min|max)imum|.*(/ 3\.0)|.*(exp)|.*(\+)|.*(\*))",
                            kernel, re.M)
    kernel_ops = [next(g for g in groups if g) for groups in kernel_ops]
    prompt_ops = re.findall(r"^\s+v\d+ = .*(clip|div|sigmoid|\+|\*)", three_address(source, 4), re.M)
    assert kernel_ops == ["max", "min", "/ 3.0", "+", "exp", "*"]
    assert prompt_ops == ["clip", "div", "+", "sigmoid", "*"]  # clip first, as the kernel


def test_format_5_names_loads_like_the_compiled_kernels():
    """On generated one-kernel units of every family, the prompt's `aK = name` lines are the kernel's `InK_Name_ptr`
    arguments, in order (a matmul's operands, loaded by its template, are the only ones without such a pointer).
    A unit of several kernels numbers each kernel's inputs from 0, which the prompt cannot know; and where the
    frontend lowers a call's operands in another order than Python passes them (`kl_div(input, target)` reads the
    target first), the prompt's order is Python's. Those are few."""
    agree, disagree = 0, []
    for i, unit in enumerate(UNITS):
        style = render.applicable_styles(unit)[0]
        source = canonicalize(render.render(unit, style, random.Random(f"{i}:{style}")))
        bound = re.findall(r"^\s+a(\d+) = (\w+)$", three_address(source, 5), re.M)
        compiled = compile_units(source, "u.py")
        if not bound or sum(u.n_kernels for u in compiled.units) > 1:
            continue
        pointers = {(int(k), name.lower()) for k, name in re.findall(r"\bIn(\d+)_(\w+?)_ptr\b",
                                                                     compiled.module_source)}
        if pointers <= {(int(k), name.lower()) for k, name in bound}:
            agree += bool(pointers)
        else:
            disagree.append(source)
    assert agree >= 30 and len(disagree) <= agree // 20, disagree
