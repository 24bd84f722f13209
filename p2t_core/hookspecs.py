"""The plugin interface of p2t. Built-in plugins implement these exactly as third-party ones do.

A plugin is a module (or object) with functions marked `@p2t_core.hookimpl`, published through an
entry point in the group `p2t`. See docs/plugins.md for a worked example.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("p2t")
hookimpl = pluggy.HookimplMarker("p2t")


@hookspec
def p2t_register_ops(registry):
    """Add this plugin's ops to `registry` (a `p2t_core.ops.OpRegistry`).

    Call `registry.add(OpDef(...))` for each op: its name, operands, Python spellings (qualified names
    such as `torch.exp`, `torch.Tensor.exp`, `torch.nn.functional.silu`, `numpy.exp`, `math.exp`), its
    Triton spelling (elementwise) or expansion into other ops (composite), and its torch reference.
    Register `@triton.jit` helper functions the spellings call in `registry.helpers[name] = source`.
    """


@hookspec(firstresult=True)
def p2t_lower_group(group, ctx):
    """Lower one fused kernel group, or return None to leave it to another plugin.

    `group` is a `p2t_core.schedule.KernelGroup` (its `kind`, nodes, inputs, outputs and anchor op);
    `ctx` is a `p2t_core.codegen.LoweringContext` (kernel name, op registry, expression emitter).
    Return a `p2t_core.codegen.Kernel`: the `@triton.jit` source and the launcher lines.
    The first plugin that returns a kernel wins; plugins are tried in reverse registration order, so a
    third-party plugin can take over a group from a built-in one.
    """


@hookspec
def p2t_validation_cases():
    """Return a list of `p2t_core.validate.ValidationCase` for `p2t validate --plugin NAME`.

    Each case is a small Python source with one unit, optional explicit shapes, and the number of
    kernels its translation must have (to keep fusion honest).
    """


@hookspec
def p2t_example_units(rng, count):
    """Return up to `count` random `p2t_core.data.examples.ExampleUnit`s of this plugin's family.

    `rng` is a `random.Random`; the same seed must give the same units. An example unit is an
    expression tree over parameters that the data pipeline renders in several Python styles and
    lowers (through the compiler) into the target kernel.
    """
