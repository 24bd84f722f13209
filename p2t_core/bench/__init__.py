"""`p2t bench`: p2t's kernels against eager PyTorch and torch.compile (issue 3).

- `suite`: the built-in suite as data (`BenchUnit`, `get_suite`, `select`);
- `harness`: `run_bench(units, tiny=..., autotune=..., compile_backend=..., budget_s=...) -> BenchRun`
  (translate, agree-check, time, account; `measure_ceilings`; `file_units` for a user's file);
- `report`: `render(run)` (rich table + geomeans + target checks), `write_json`, `plot`, `targets`, `summary`;
- `cli`: the click command `bench` (`python -m p2t_core.bench.cli`), registered in `p2t` as `p2t bench`.

GPU: `scripts/gpu_bench.sh`. CPU: `p2t bench --tiny` (Triton interpreter; TRITON_INTERPRET=1 is set by the
command itself and must precede the process's first `import triton`).
"""
