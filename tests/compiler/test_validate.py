"""`p2t validate` and `p2t plugins` through the CLI, and a plugin registered on a fresh manager."""

from __future__ import annotations

import json
import types

import pytest
import torch
from click.testing import CliRunner

from p2t_core.cli import main
from p2t_core.engine import compile_unit_source
from p2t_core.hookspecs import hookimpl
from p2t_core.ops import OpDef
from p2t_core.plugins import Plugins, builtin_plugins, new_manager
from p2t_core.verify import verify

BUILTINS = ("elementwise", "reduction", "matmul", "softmax")


@pytest.mark.slow
@pytest.mark.parametrize("plugin", BUILTINS)
def test_validate_plugin_passes(plugin, tmp_path):
    out = tmp_path / "rows.json"
    result = CliRunner().invoke(main, ["validate", "--plugin", plugin, "--backend", "interpret", "--json", str(out)])
    assert "Traceback" not in result.output
    rows = json.loads(out.read_text())
    failed = [(r["case"], r["kernels"], r["detail"]) for r in rows if not r["passed"]]
    assert result.exit_code == 0 and not failed, failed or result.output[-3000:]
    assert rows and {r["plugin"] for r in rows} == {plugin}
    assert f"{len(rows)} passed, 0 failed" in result.output


def test_validate_unknown_plugin():
    result = CliRunner().invoke(main, ["validate", "--plugin", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.stderr and "Traceback" not in result.output


def test_validate_needs_a_choice():
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2 and "--plugin" in result.stderr


def test_plugins_lists_builtins_and_their_ops():
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    text = result.output
    for name in BUILTINS:
        assert name in text
    for op in ("gelu", "sigmoid", "logsumexp", "mse_loss", "matmul", "linear", "softmax", "log_softmax",
               "torch.nn.functional.silu", "torch.Tensor.exp"):
        assert op in text, op


def test_plugins_registry_covers_every_op_family():
    from p2t_core.plugins import default_plugins

    reg = default_plugins().registry
    by_plugin = {}
    for op in reg.ops.values():
        by_plugin.setdefault(op.plugin, set()).add(op.name)
    assert set(BUILTINS) <= set(by_plugin)
    assert {"exp", "relu", "where", "clamp"} <= by_plugin["elementwise"]
    assert {"sum", "mean", "var", "argmax"} <= by_plugin["reduction"]
    assert {"matmul", "bmm", "mv"} <= by_plugin["matmul"]
    assert {"softmax", "log_softmax"} <= by_plugin["softmax"]


# ------------------------------------------------------------------------------------------ a third-party plugin
def _cube_plugin():
    """An elementwise op with a Python spelling nothing else claims (`torch.special.i0` stands for a new
    function: the frontend resolves it by qualified name) and a method spelling on tensors."""
    plugin = types.SimpleNamespace()

    def p2t_register_ops(registry):
        registry.add(OpDef("cube", "elementwise", ("x",), ("torch.special.i0", "torch.Tensor.i0"),
                           triton="{x} * {x} * {x}", reference=lambda x: x * x * x, plugin="cube"))

    plugin.p2t_register_ops = hookimpl(p2t_register_ops)
    return plugin


def fresh(*extra):
    pm = new_manager(entry_points=False)
    for p in builtin_plugins():
        pm.register(p, name=p.__name__.rsplit(".", 1)[-1])
    for name, p in extra:
        pm.register(p, name=name)
    return Plugins(pm)


SRC = "import torch\n\n\ndef f(x):\n    return torch.special.i0(x) + x.relu()\n"


def test_third_party_op_is_used_by_the_compiler():
    plugins = fresh(("cube", _cube_plugin()))
    assert plugins.registry.ops["cube"].plugin == "cube"
    unit = compile_unit_source(SRC, "f", plugins=plugins)
    assert unit.n_kernels == 1  # fused with the built-in relu
    assert "* a0 * a0" in unit.module_source or "a0 * a0 * a0" in unit.module_source, unit.module_source
    # the generated module computes x**3 + relu(x); verify it against that (i0 itself is something else)
    reference = "import torch\n\n\ndef f(x):\n    return x * x * x + x.relu()\n"
    report = verify(reference, unit.module_source, unit.signature, backend="interpret", dtypes=("float32",),
                    shapes=[{v: 7 for v in unit.signature.size_vars}], seed=1, noncontiguous=False)
    assert report.passed, report.render()


def test_without_the_plugin_the_spelling_is_unsupported():
    from p2t_core.errors import UnsupportedError

    with pytest.raises(UnsupportedError):
        compile_unit_source(SRC, "f", plugins=fresh())


def test_fresh_manager_does_not_leak_into_default_plugins():
    from p2t_core.plugins import default_plugins

    fresh(("cube", _cube_plugin()))
    assert "cube" not in default_plugins().registry.ops


def test_third_party_plugin_can_take_over_lowering():
    """Plugins are tried in reverse registration order: a later plugin claims elementwise groups first."""
    from p2t_core.codegen.elementwise import lower_elementwise

    seen = []
    plugin = types.SimpleNamespace()

    def p2t_lower_group(group, ctx):
        if group.kind == "elementwise":
            seen.append(group.kind)
            return lower_elementwise(group, ctx)
        return None

    plugin.p2t_lower_group = hookimpl(p2t_lower_group)
    unit = compile_unit_source("import torch\n\n\ndef g(x):\n    return torch.exp(x) * 2.0\n", "g",
                               plugins=fresh(("takeover", plugin)))
    assert seen and unit.n_kernels == 1


def test_duplicate_spelling_is_refused():
    plugin = types.SimpleNamespace()

    def p2t_register_ops(registry):
        registry.add(OpDef("myexp", "elementwise", ("x",), ("torch.exp",), triton="tl.exp({x})",
                           reference=torch.exp))

    plugin.p2t_register_ops = hookimpl(p2t_register_ops)
    with pytest.raises(ValueError, match="torch.exp"):
        fresh(("dup", plugin))
