"""The compiler's own output passes the safety chain; known prelude helpers are trusted only verbatim."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from p2t_core.codegen.prelude import PRELUDE
from p2t_core.postprocess import check_candidate
from p2t_core.postprocess.safety import PRELUDE_RETURNS, check_semantics, is_trusted_prelude

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@functools.cache
def _validation_cases():
    from p2t_core.plugins import default_plugins

    out = []
    for cases in default_plugins().pm.hook.p2t_validation_cases():
        out.extend(cases)
    return out


def _case_ids():
    return [f"{i}-{c.unit}" for i, c in enumerate(_validation_cases())]


@functools.cache
def _compiled_example(path: str) -> str:
    from p2t_core.engine import compile_units

    return compile_units(Path(path).read_text(), path).module_source


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_pass_the_safety_chain(path):
    result = check_candidate(_compiled_example(str(path)))
    assert result.ok, f"{path.name}: {result}"


@pytest.mark.parametrize("index", range(len(_validation_cases())), ids=_case_ids())
def test_validation_cases_pass_the_safety_chain(index):
    from p2t_core.engine import compile_units

    case = _validation_cases()[index]
    kwargs = {"unit": case.unit}
    if case.shapes:
        kwargs["shapes"] = case.shapes[0]
    module = compile_units(case.source, f"<case {case.unit}>", **kwargs).module_source
    result = check_candidate(module)
    assert result.ok, f"{case.unit}: {result}"


def test_every_prelude_helper_has_a_return_kind():
    assert set(PRELUDE) <= set(PRELUDE_RETURNS), "add the new helper's result kind to PRELUDE_RETURNS"
    for name, src in PRELUDE.items():
        node = ast.parse(src).body[0]
        if isinstance(node, ast.Assign):  # module-level state of the helpers (the autotuning cache): `NAME = {}`
            assert [t.id for t in node.targets] == [name] and isinstance(node.value, ast.Dict)
            continue
        assert isinstance(node, ast.FunctionDef) and node.name == name and is_trusted_prelude(node)


def _module_with_prelude() -> str:
    src = _compiled_example(str(ROOT / "examples" / "rmsnorm.py"))
    for name in ("_p2t_rows", "_p2t_size", "_p2t_row_sizes", "_p2t_empty_rows", "_p2t_check_rank"):
        assert f"def {name}(" in src
    assert check_candidate(src).ok
    return src


def test_formatting_and_comments_do_not_matter():
    src = _module_with_prelude()
    edited = src.replace("    size = 1\n    for s in sizes:", "    size = 1  # a comment\n\n    for s in sizes:")
    assert edited != src and check_candidate(edited).ok


TAMPERED = [
    # (replace, with, fragment of the expected violation)
    ("            size = s\n", "            size = s * 2\n", "'*'/'**' parameters"),
    ("            block_i = block_i // 2\n", "            block_i = block_i // 2 + 0\n", "'while' loops"),
    ("    return outer, reduced, inner\n", "    return outer, reduced, inner, open('/tmp/p2t-x', 'w')\n",
     "'open' is not allowed"),
    ("        return torch.empty(shape, dtype=dtype, device=device)\n",
     "        return torch.exp(torch.empty(shape, dtype=dtype, device=device))\n", "torch.exp"),
    ('raise ValueError("p2t: " + name', 'raise SystemExit("p2t: " + name', "raise NAME"),
]


@pytest.mark.parametrize("old,new,fragment", TAMPERED, ids=[t[2] for t in TAMPERED])
def test_tampered_prelude_helper_is_checked_normally(old, new, fragment):
    src = _module_with_prelude()
    assert old in src
    bad = src.replace(old, new)
    result = check_candidate(bad)
    assert not result.ok and result.stage == "semantics"
    assert any(fragment in m for m in result.messages), str(result)


def test_decorated_prelude_name_is_not_trusted():
    fn = ast.parse("@triton.jit\n" + PRELUDE["_p2t_size"].lstrip()).body[0]
    assert not is_trusted_prelude(fn)


HOST = """import torch
import triton
import triton.language as tl


@triton.jit
def _k(X_ptr, Out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    {kernel}
    tl.store(Out_ptr + offs, tl.load(X_ptr + offs, mask=mask), mask=mask)


def _check(name, t, n: int):
    {helper}


def f(x):
    out = torch.empty_like(x)
    n = out.numel()
    _check("x", x, n)
    _k[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
    return out
"""


def _host(helper="pass", kernel="pass") -> str:
    return HOST.format(helper=helper, kernel=kernel)


@pytest.mark.parametrize("helper", [
    "raise ValueError('p2t: bad')",
    "raise RuntimeError('p2t: ' + name + ' is bad')",
    "raise TypeError('a')",
    "raise IndexError('a')",
    "for i in range(n):\n        if i == 1:\n            continue\n        n = n + 1",
    "if t.dim() != 2:\n        raise ValueError(\"p2t: \" + name + \" has the wrong rank\")",
])
def test_host_raise_and_continue_ok(helper):
    src = _host(helper=helper)
    assert check_candidate(src).ok, str(check_candidate(src))


@pytest.mark.parametrize("helper,kernel,fragment", [
    ("raise SystemExit('x')", "pass", "raise NAME"),
    ("raise KeyboardInterrupt('x')", "pass", "raise NAME"),
    ("raise ValueError(name)", "pass", None),  # a local name alone is fine ...
    ("raise ValueError('a' + torch.empty(1))", "pass", "non-tensor"),  # ... a call is not
    ("raise ValueError('a' + undefined)", "pass", "non-tensor"),
    ("pass", "raise ValueError('x')", "only allowed in host code"),
    ("continue", "pass", "outside a for loop"),
    ("pass", "for i in range(3):\n        continue", "inside kernels"),
    ("while n:\n        n = n - 1", "pass", "'while' loops"),
])
def test_host_raise_and_continue_rules(helper, kernel, fragment):
    got = "\n".join(str(v) for v in check_semantics(_host(helper=helper, kernel=kernel)))
    if fragment is None:
        assert got == ""
    else:
        assert fragment in got, got


def test_inplace_outputs_pass_the_safety_chain():
    from p2t_core.engine import compile_units

    src = ("import torch\n\n\ndef f(x, out):\n    for i in range(x.shape[0]):\n        out[i] = x[i] * 2\n"
           "    return out\n")
    module = compile_units(src, "inplace.py", unit="f", shapes={"x": (4,), "out": (4,)}).module_source
    assert "_p2t_writeback(" in module and "_p2t_inplace(" in module
    result = check_candidate(module)
    assert result.ok, str(result)
