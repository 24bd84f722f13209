"""Every style renders valid Python that computes the unit's function (checked against the tree's semantics)."""

from __future__ import annotations

import ast
import random

import numpy as np
import pytest
import torch

from p2t_core.data import generators, render
from p2t_core.data.canonical import canonicalize
from p2t_core.data.examples import ExampleUnit, Expr, Param, Ref, evaluate, from_json, make_inputs, to_json


def run(src: str, unit: ExampleUnit, style: str, inputs: dict) -> list[torch.Tensor]:
    ns: dict = {}
    exec(compile(src, "<rendering>", "exec"), ns)
    if style == "module":  # held tensors: sized by constructor arguments, then given the test's values
        held = render.held_tensors(unit)
        init = {p.name: inputs[p.name] for p in unit.scalar_params}
        for p in held:
            init.update(zip(render.size_args(unit, p), inputs[p.name].shape, strict=True))
        mod = ns[render.class_name(unit)](**init)
        for p in held:
            getattr(mod, p.name).data = inputs[p.name].clone()
        outs = mod(*[inputs[p.name] for p in unit.tensor_params if p not in held])
    else:
        args = dict(inputs)
        if style == "numpy":
            args = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
        outs = ns[unit.name](**args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return [o if isinstance(o, torch.Tensor) else torch.as_tensor(np.asarray(o)) for o in outs]


def check(unit: ExampleUnit, src: str, style: str, seed: int = 1) -> None:
    ast.parse(src)
    inputs = make_inputs(unit, seed=seed)
    ref = evaluate(unit, inputs)
    outs = run(src, unit, style, inputs)
    assert len(outs) == len(ref)
    for o, r in zip(outs, ref, strict=True):
        assert tuple(o.shape) == tuple(r.shape), src
        torch.testing.assert_close(o.double(), r.double(), rtol=1e-3, atol=1e-4, equal_nan=True, msg=src)


UNITS = generators.generate_units(random.Random(1234), 70)


@pytest.mark.parametrize("family", sorted(generators.FAMILIES))
def test_every_style_agrees_with_the_tree(family):
    units = [u for u in UNITS if u.family == family] or generators.generate_units(random.Random(7), 5, [family])
    styles_seen = set()
    for i, unit in enumerate(units[:12]):
        for style in render.applicable_styles(unit):
            styles_seen.add(style)
            for variant in range(2):
                src = render.render(unit, style, random.Random(f"{i}:{style}:{variant}"))
                check(unit, src, style)
                # the canonical form computes the same thing
                check(unit, canonicalize(src), style)
            check(unit, render.render(unit, style, None), style)
    assert {"torch", "functional", "method", "module"} <= styles_seen


def test_loop_style_covers_its_shapes():
    u = ExampleUnit("rowsum", [Param("x", "tensor", 2, ("M", "N")), Param("s", "float", 0, (), 2.0)],
                    [Expr("mul", (Expr("sum", (Expr("exp", (Ref("x"),)),), {"dim": -1, "keepdim": False}),
                                  Ref("s")))], "reduction")
    src = render.render(u, "loop", random.Random(0))
    assert "for " in src and "+=" in src and "math.exp" in src
    check(u, src, "loop")
    mm = ExampleUnit("mm", [Param("a", "tensor", 2, ("M", "K")), Param("b", "tensor", 2, ("K", "N")),
                            Param("bias", "tensor", 1, ("N",))],
                     [Expr("relu", (Expr("add", (Expr("matmul", (Ref("a"), Ref("b"))), Ref("bias"))),))], "matmul")
    src = render.render(mm, "loop", random.Random(0))
    assert src.count("for ") == 3
    check(mm, src, "loop")
    sm = ExampleUnit("sm", [Param("x", "tensor", 2, ("M", "N"))],
                     [Expr("softmax", (Expr("mul", (Ref("x"), 0.5)),), {"dim": -1})], "softmax")
    check(sm, render.render(sm, "loop", random.Random(3)), "loop")
    assert "loop" not in render.applicable_styles(
        ExampleUnit("w", [Param("x", "tensor", 3, ("B", "M", "N"))], [Expr("exp", (Ref("x"),))], "elementwise"))


def test_variation_and_determinism():
    unit = next(u for u in UNITS if u.family == "reduction")
    a = {render.render(unit, "torch", random.Random(s)) for s in range(12)}
    assert len(a) > 3  # surface variation
    assert render.render(unit, "method", random.Random(5)) == render.render(unit, "method", random.Random(5))
    assert render.target_source(unit) == render.render(unit, "torch", None)
    mod = render.render(UNITS[0], "module", random.Random(2))
    assert "nn.Module" in mod and "def forward(self" in mod


def test_json_roundtrip_and_key():
    for u in UNITS[:20]:
        v = from_json(to_json(u))
        assert v == u and v.key() == u.key()


def test_json_roundtrip_keeps_the_keyword_order():
    """Units travel to workers and the cache as JSON; their renderings (and so the cache keys) must not change."""
    expr = Expr("hardtanh", (Ref("x"),), {"min_val": -1.0, "max_val": 1.0})
    u = ExampleUnit("clip", [Param("x", "tensor", 2, ("M", "N"))], [expr], "elementwise")
    v = from_json(to_json(u))
    for style in render.applicable_styles(u):
        assert render.render(v, style, random.Random(3)) == render.render(u, style, random.Random(3))
    assert render.target_source(v, "torch") == render.target_source(u, "torch")
    assert "min_val=-1.0, max_val=1.0" in render.target_source(v, "torch")


def test_generators_are_deterministic():
    a = generators.generate_units(random.Random(99), 30)
    b = generators.generate_units(random.Random(99), 30)
    assert [to_json(u) for u in a] == [to_json(u) for u in b]


def test_module_style_holds_a_weight_that_the_target_and_the_verifier_signature_agree_on():
    import itertools

    from p2t_core.data.pipeline import iter_units, unit_signature
    from p2t_core.engine import compile_units
    from p2t_core.verify import verify

    units = list(itertools.islice(iter_units(5), 120))
    held = [u for u in units if render.held_tensors(u)]
    assert 0.15 < len(held) / len(units) < 0.55  # half the units, of those with a tensor that can be held
    for k, u in enumerate(held[:6]):
        p = render.held_tensors(u)[0]
        size = ", ".join(render.size_args(u, p))
        src = render.render(u, "module", random.Random(k))
        tgt = render.target_source(u, "module")
        for text in (src, tgt):  # the prompt's rendering and the target's build the same parameter
            assert f"self.{p.name} = nn.Parameter(" in text and f"({size}))" in text, text
        assert f"def forward(self, {p.name}" not in src and f", {p.name})" not in src.split("def forward")[1]
        compiled = compile_units(tgt, "<held>", keep_going=False).units[0].signature
        want = unit_signature(u, "module")
        assert [a.name for a in compiled.init_args] == [a.name for a in want.init_args]
        assert [(m.name, m.init) for m in compiled.module_tensors] == [(m.name, m.init) for m in want.module_tensors]
        assert [t.name for t in compiled.params] == [t.name for t in want.params]
    unit = held[0]
    cu = compile_units(render.target_source(unit, "module"), "<held>", keep_going=False).units[0]
    r = verify(render.render(unit, "module", random.Random(0)), cu.module_source, unit_signature(unit, "module"),
               backend="interpret", dtypes=("float32",), seed=0)
    assert r.passed, r.render()


def test_a_module_rows_ranks_are_those_of_its_forward_tensors():
    import itertools

    from p2t_core.data.pipeline import iter_units, tensor_ranks, unit_signature

    unit = next(u for u in itertools.islice(iter_units(5), 200) if render.held_tensors(u))
    sig = unit_signature(unit, "module")
    assert tensor_ranks(unit, "module") == [len(p.dims) for p in sig.tensor_params]  # as the engine's prompt
    assert tensor_ranks(unit, "torch") == [p.rank for p in unit.tensor_params]
