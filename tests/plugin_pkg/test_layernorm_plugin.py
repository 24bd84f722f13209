"""The example third-party plugin (examples/p2t-plugin-layernorm) on a fresh plugin manager, and one slow test
that installs it for real into a temporary virtual environment."""

from __future__ import annotations

import importlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from p2t_core.engine import compile_units
from p2t_core.plugins import Plugins, builtin_plugins, new_manager

PKG = Path(__file__).resolve().parents[2] / "examples" / "p2t-plugin-layernorm"


@pytest.fixture(scope="module")
def layernorm():
    sys.path.insert(0, str(PKG / "src"))
    try:
        yield importlib.import_module("p2t_layernorm")
    finally:
        sys.path.remove(str(PKG / "src"))


@pytest.fixture(scope="module")
def plugins(layernorm):
    pm = new_manager(entry_points=False)
    for p in builtin_plugins():
        pm.register(p, name=p.__name__.rsplit(".", 1)[-1])
    pm.register(layernorm, name="layernorm")
    return Plugins(pm)


LN = '''import torch
import torch.nn.functional as F


def ln_silu(x, w, b):
    return F.silu(F.layer_norm(x, (x.shape[-1],), w, b, 1e-5))
'''


def test_ops_are_registered(plugins):
    op = plugins.registry.ops["layer_norm"]
    assert op.plugin == "layernorm" and op.kind == "composite"
    assert plugins.registry.lookup("torch.nn.functional.layer_norm") is op
    assert "layernorm" in plugins.names()


def test_not_leaked_into_default_plugins(plugins):
    from p2t_core.plugins import default_plugins

    assert "layer_norm" not in default_plugins().registry.ops or importlib.util.find_spec("p2t_layernorm")


def test_layer_norm_fuses_into_one_kernel_and_verifies(plugins):
    from p2t_core.translate import bindings_from_shapes
    from p2t_core.verify import verify

    shapes = {"x": (5, 70), "w": (70,), "b": (70,)}  # w and b are used elementwise only: give their rank
    unit = compile_units(LN, "ln.py", plugins=plugins, shapes=shapes, keep_going=False).units[0]
    assert unit.n_kernels == 1, unit.schedule.describe()
    assert unit.schedule.groups[0].kind == "reduction"
    report = verify(LN, unit.module_source, unit.signature, backend="interpret", dtypes=("float32", "bfloat16"),
                    shapes=[bindings_from_shapes(unit.signature, shapes)], seed=3)
    assert report.passed, report.render()


def test_validation_cases_pass_on_the_interpreter(plugins):
    from p2t_core.translate import run_validation

    rows = run_validation(plugins, "layernorm", backend="interpret")
    assert len(rows) == 5
    assert all(r["passed"] and r["kernels"] == 1 for r in rows), [(r["case"], r["detail"]) for r in rows]


def test_example_units_render_and_compile_to_one_kernel(plugins):
    from p2t_core.data.pipeline import hook_units
    from p2t_core.data.render import applicable_styles, render, target_source, unit_entry
    from p2t_core.engine import compile_unit_source

    units = [u for u in hook_units(plugins.pm, random.Random(0), 4) if u.family == "layernorm"]
    assert len(units) == 4
    again = [u for u in hook_units(plugins.pm, random.Random(0), 4) if u.family == "layernorm"]
    assert [u.key() for u in units] == [u.key() for u in again]  # deterministic for a seed
    for u in units:
        for style in applicable_styles(u):
            render(u, style, random.Random(1))
        unit = compile_unit_source(target_source(u), unit_entry(u, "torch"), plugins=plugins)
        assert unit.n_kernels == 1


@pytest.mark.slow
def test_real_install_registers_the_entry_point(tmp_path):
    """`pip install` into a fresh venv that sees this environment's packages (p2t, torch, setuptools, pip)
    through a .pth file; --no-deps --no-build-isolation --no-index, so no network is needed."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]  # a site dir, so its own .pth files (editable p2t) are processed too
    Path(site, "outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    pkg = tmp_path / "pkg"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    install = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              str(pkg)], capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        text = install.stdout + install.stderr
        if "No module named pip" in text or "setuptools" in text or "network" in text.lower():
            pytest.skip(f"cannot build offline here: {text[-300:]}")
        raise AssertionError(text)
    assert list(Path(site).glob("p2t_plugin_layernorm-*.dist-info")), "installed into the temp venv"
    probe = ("import importlib.metadata as m; "
             "print(sorted((e.name, e.value) for e in m.entry_points(group='p2t')))")
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "('layernorm', 'p2t_layernorm')" in out, out
    listed = subprocess.run([str(py), "-m", "p2t_core.cli", "plugins"], capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "layer_norm" in listed.stdout, listed.stdout + listed.stderr
