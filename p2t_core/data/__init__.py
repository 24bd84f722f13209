"""The synthetic data pipeline: (canonical Python, Triton module) pairs for training the LLM engine.

- `examples`: `ExampleUnit` / `Param` / `Expr` / `Ref`, the expression-tree form of a unit that plugins return
  from their `p2t_example_units(rng, count)` hook, with its torch reference semantics (`evaluate`);
- `generators`: built-in random units per family (elementwise, reduction, matmul, softmax, norm, loss,
  multi_output), callable from plugins;
- `render`: a unit as Python source in the styles torch, functional, method, numpy, loop, module;
- `canonical`: the canonical form (the prompt) and `canonical_hash`;
- `pipeline`: `build(out_dir, pairs, workers, seed, cache_dir)` and `stats(dir)`;
- `cli`: the `p2t data build|stats` click group.
"""
