"""The plugin manager: built-in and third-party plugins load the same way, through entry points."""

from __future__ import annotations

import functools

import pluggy

from p2t_core import hookspecs
from p2t_core.ops import OpRegistry

ENTRY_POINT_GROUP = "p2t"


def new_manager(*, entry_points: bool = True, plugins: tuple = ()) -> pluggy.PluginManager:
    """A fresh manager. Tests pass `entry_points=False` plus explicit plugins so nothing installed leaks in."""
    pm = pluggy.PluginManager("p2t")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def builtin_plugins() -> tuple:
    from p2t_plugins import elementwise, matmul, reduction, softmax

    return (elementwise, reduction, matmul, softmax)


class Plugins:
    """A manager plus the op registry its plugins fill."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.registry = OpRegistry()
        for impl in reversed(pm.hook.p2t_register_ops.get_hookimpls()):  # registration order
            before = set(self.registry.ops)
            impl.function(registry=self.registry)
            name = pm.get_name(impl.plugin) or ""
            for op_name in set(self.registry.ops) - before:
                op = self.registry.ops[op_name]
                if not op.plugin:
                    object.__setattr__(op, "plugin", name)

    def names(self) -> list[str]:
        return [self.pm.get_name(p) for p in self.pm.get_plugins()]

    def plugin(self, name: str):
        return self.pm.get_plugin(name)


@functools.cache
def default_plugins() -> Plugins:
    """Entry-point plugins; falls back to the built-ins when the package metadata is missing (source tree)."""
    pm = new_manager()
    if not pm.get_plugins():
        for plugin in builtin_plugins():
            pm.register(plugin, name=plugin.__name__.rsplit(".", 1)[-1])
    return Plugins(pm)
