"""Launch heuristics of issue 3 (kernel speed): split reductions (`_p2t_split_config`) and the matmul autotuner's
selection (`_p2t_tic` / `_p2t_toc`).

Split reductions run under the Triton interpreter in one subprocess (TRITON_INTERPRET=1 must be set before the
process first imports triton): natural sizes past the split threshold, odd sizes, and forced configurations
(the module's `_p2t_split_config` replaced, as scripts/gpu_kernel_sweep.py does on the GPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types

import pytest
import torch
import triton

from p2t_core.codegen.module import prelude_closure
from p2t_core.codegen.prelude import PRELUDE
from p2t_core.engine import compile_units
from p2t_core.translate import bindings_from_shapes
from p2t_core.verify import aot_compile_module

SUM_ALL = "import torch\n\ndef f(x):\n    return x.sum()\n"
COL_SUM = "import torch\n\ndef f(x):\n    return x.sum(dim=0)\n"
COL_MAX = "import torch\n\ndef f(x):\n    return x.amax(dim=0)\n"
SMOOTH_L1 = "import torch.nn.functional as F\n\ndef f(x, y):\n    return F.smooth_l1_loss(x, y, beta=0.5)\n"
MEAN_ROWS = "import torch\n\ndef f(x):\n    return x.mean(dim=-1)\n"

# (id, source, shapes, dtype, forced (n_split, block_r, block_i, num_warps) or None, expect a split launch)
CASES = [
    ("sum_all_40001_fp32", SUM_ALL, {"x": (40001,)}, "float32", None, True),
    ("sum_all_16385_bf16", SUM_ALL, {"x": (16385,)}, "bfloat16", None, True),
    ("smooth_l1_70001_bf16", SMOOTH_L1, {"x": (70001,), "y": (70001,)}, "bfloat16", None, True),
    ("col_sum_1000x300_fp32", COL_SUM, {"x": (1000, 300)}, "float32", None, True),
    ("col_sum_777x129_fp16", COL_SUM, {"x": (777, 129)}, "float16", None, True),
    ("col_max_999x37_fp32_nan", COL_MAX, {"x": (999, 37)}, "float32", None, True),
    ("mean_rows_3x30000_fp32", MEAN_ROWS, {"x": (3, 30000)}, "float32", None, True),
    ("col_sum_5x7_fp32_small", COL_SUM, {"x": (5, 7)}, "float32", None, False),
    ("col_sum_37x45_forced", COL_SUM, {"x": (37, 45)}, "float32", (3, 8, 16, 4), True),
    ("col_sum_37x45_forced_one_col", COL_SUM, {"x": (37, 45)}, "bfloat16", (5, 4, 1, 2), True),
    ("sum_all_1001_forced", SUM_ALL, {"x": (1001,)}, "float32", (7, 64, 1, 4), True),
    ("smooth_l1_999_forced", SMOOTH_L1, {"x": (999,), "y": (999,)}, "float16", (4, 128, 1, 8), True),
]

WORKER = r'''
import importlib.util, json, sys, tempfile, os
import torch, triton
from p2t_core.engine import compile_units
from p2t_core.verify.interpreter_compat import patch_interpreter
patch_interpreter()

cases = json.loads(sys.argv[1])
out = {}
tmp = tempfile.mkdtemp()
for name, source, shapes, dtype, forced, _ in cases:
    unit = compile_units(source, "u.py", unit="f", shapes={k: tuple(v) for k, v in shapes.items()}).units[0]
    path = os.path.join(tmp, name + ".py")
    with open(path, "w") as f:
        f.write(unit.module_source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    chosen = []
    heuristic = mod._p2t_split_config

    def config(n_outer, n_r, n_inner, element_size, forced=forced, heuristic=heuristic, chosen=chosen):
        if forced is None:
            result = heuristic(n_outer, n_r, n_inner, element_size)
        else:
            n_split, block_r, block_i, warps = forced
            chunk = triton.cdiv(triton.cdiv(n_r, n_split), block_r) * block_r  # a whole number of tiles
            result = (triton.cdiv(n_r, chunk), chunk, block_r, block_i, warps)
        chosen.append(result)
        return result

    mod._p2t_split_config = config
    torch.manual_seed(0)
    args = [torch.randn(s, dtype=getattr(torch, dtype)) for s in shapes.values()]
    if name.endswith("_nan"):
        args[0][500, 3] = float("nan")
    ref_mod = {}
    exec(source, ref_mod)
    ref = ref_mod["f"](*[a.double() for a in args])
    got = mod.f(*args)
    again = mod.f(*args)  # the last programs reset the counts: a second launch combines as the first did
    counts = getattr(mod, "_P2T_SEMAPHORES", {})
    both = torch.isnan(ref).eq(torch.isnan(got.double())).all().item()
    finite = ~torch.isnan(ref)
    err = ((got.double() - ref)[finite].norm() / ref[finite].norm().clamp_min(1e-30)).item()
    out[name] = {"err": err, "nan_match": both, "dtype": str(got.dtype), "shape": list(got.shape),
                 "ref_shape": list(ref.shape), "n_split": chosen[0][0] if chosen else None,
                 "same_again": torch.allclose(got, again, rtol=0, atol=0, equal_nan=True),
                 "counts_zero": all(not c.any() for c in counts.values()),
                 "count_buffers": len(counts)}
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def interpreted():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(CASES)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_split_reduction_matches_eager(interpreted, case):
    name, _, _, dtype, _, expect_split = case
    r = interpreted[name]
    assert r["shape"] == r["ref_shape"]
    assert r["dtype"] == f"torch.{dtype}"
    assert r["nan_match"]
    assert r["err"] < (1e-5 if dtype == "float32" else 1e-2), r
    assert (r["n_split"] or 1) > 1 if expect_split else (r["n_split"] or 1) == 1, r
    assert r["same_again"] and r["counts_zero"], r
    assert r["count_buffers"] == (1 if expect_split else 0), r


def _helper(name, **fakes):
    namespace = {"triton": triton, **fakes}
    for needed in prelude_closure({name}, []):  # with the helpers it calls, but the fakes
        if needed not in fakes:
            exec(PRELUDE[needed], namespace)
    return namespace[name]


@pytest.mark.parametrize("element_size", [1, 2, 4, 8])
@pytest.mark.parametrize("n_outer,n_r,n_inner", [(1, 2**26, 1), (1, 8192, 8192), (64, 2**20, 1), (8192, 8192, 1),
                                                 (1, 40001, 1), (3, 30000, 1), (1, 999, 37), (7, 100003, 3),
                                                 (1, 10**6, 65537), (1, 1, 1), (2, 0, 5)])
def test_split_config_tiles_cover_r_exactly(n_outer, n_r, n_inner, element_size):
    split_config = _helper("_p2t_split_config")
    n_split, chunk, block_r, block_i, warps = split_config(n_outer, n_r, n_inner, element_size)
    assert warps in (4, 8, 16) and block_i >= 1 and block_r >= 1
    assert block_r * block_i <= 4096  # registers: a few elements per thread
    if n_split > 1:
        assert chunk % block_r == 0  # chunks are whole tiles: no tile reads into the next chunk
        assert (n_split - 1) * chunk < n_r <= n_split * chunk  # every chunk holds rows, together all of R
        assert triton.next_power_of_2(n_split) * block_i <= 16384  # the combine stage's tile


def test_split_config_widens_columns_and_keeps_fp32_whole_tensor_split():
    split_config = _helper("_p2t_split_config")
    assert split_config(1, 2**26, 1, 4)[0] == 1024  # 1024 programs, as before this change
    n_split, _, block_r, block_i, warps = split_config(1, 8192, 8192, 4)  # the bench's col_sum
    assert block_i == 128 and n_split * 64 >= 4 * 132
    assert warps == 4 and split_config(1, 2**26, 1, 4)[4] == 8  # column tiles take 4 warps, whole rows 8
    assert split_config(8192, 8192, 1, 4)[0] == 1  # enough rows: no split


VECTOR = {"a": (6, 5), "v": (5,)}
ROWS_AND_WEIGHT = {"x": (6, 5), "w": (5,)}


@pytest.mark.parametrize("body,shapes,hinted", [
    ("def f(a, v):\n    return a @ v\n", VECTOR, {"In0_A_ptr"}),  # the vector is read by every row
    ("def f(x, w):\n    return (x * w).sum(-1)\n", ROWS_AND_WEIGHT, {"In0_X_ptr"}),
    ("def f(x):\n    return x.sum(-1)\n", {"x": (6, 5)}, set()),  # nothing shared: no hint
    ("def f(x, w):\n    return x * torch.rsqrt((x * x).mean(-1, keepdim=True)) * w\n", ROWS_AND_WEIGHT,
     set()),  # w only scales the result
])
def test_row_loads_stream_past_the_cache_only_beside_a_shared_input_of_the_reduction(body, shapes, hinted):
    unit = compile_units("import torch\n\n" + body, "u.py", unit="f", shapes=shapes).units[0]
    loads = [line for line in unit.module_source.splitlines() if "tl.load(" in line]
    streamed = {line.split("tl.load(")[1].split(" ")[0] for line in loads if "evict_first" in line}
    assert streamed == hinted and not any("evict_last" in line for line in loads)
    assert ("shared=True" in unit.module_source) == bool(hinted)  # and its rows' launch configuration knows


def test_row_config_gives_rows_beside_a_shared_input_16_warps_from_8192_elements():
    row_config = _helper("_p2t_row_config")
    assert row_config(8192, 8192, 1, 16384, 2, shared=True)[3] == 16  # matvec 8192x8192 fp16
    assert row_config(8192, 8192, 1, 16384, 2)[3] == 8  # a softmax or a sum of the same rows
    assert row_config(8192, 4096, 1, 16384, 2, shared=True)[3] == 8


class _FakeEvent:
    clock = []

    def __init__(self, enable_timing):
        self.t = None

    def record(self):
        self.t = self.clock.pop(0)

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return end.t - self.t


def test_autotune_keeps_the_lowest_median_after_six_timed_launches():
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(Event=_FakeEvent, _sleep=lambda cycles: None))
    tuning = {}
    tic = _helper("_p2t_tic", torch=fake_torch, _P2T_TUNING=tuning)
    toc = _helper("_p2t_toc", torch=fake_torch, _P2T_TUNING=tuning)
    # config a: one lucky fast launch, otherwise slow; config b: steady
    times = {"a": [1.0, 9.0, 9.0, 9.0, 9.0, 9.0], "b": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]}
    for rep in range(6):
        for config in ("a", "b"):
            _FakeEvent.clock[:] = [0.0, times[config][rep]]
            toc("key", config, tic("key", True), 2)
            assert ("best" in tuning["key"]) == (rep == 5 and config == "b")
    assert tuning["key"]["best"] == "b"
    assert tic("key", False) is None


AOT_CASES = [("col_sum_1000x300", COL_SUM, {"x": (1000, 300)}, ("float32", "bfloat16")),
             ("smooth_l1_70001", SMOOTH_L1, {"x": (70001,), "y": (70001,)}, ("bfloat16",))]


@pytest.mark.slow
@pytest.mark.parametrize("case", AOT_CASES, ids=[c[0] for c in AOT_CASES])
def test_split_kernels_compile_for_sm90(case):
    _, source, shapes, dtypes = case
    unit = compile_units(source, "u.py", unit="f", shapes=shapes).units[0]
    kernels = aot_compile_module(unit.module_source, unit.signature, dtypes=dtypes,
                                 shapes=[bindings_from_shapes(unit.signature, shapes)])
    assert {k.name for k in kernels} == {"_f_0_kernel"}  # one launch: the last program of a tile combines
    assert any(k.constexprs.get("SPLIT") for k in kernels), [k.constexprs for k in kernels]
    assert all(k.ok for k in kernels), [(k.name, k.error) for k in kernels if not k.ok]


def test_host_arithmetic_helpers_equal_tritons():
    cdiv, pow2 = _helper("_p2t_cdiv"), _helper("_p2t_pow2")
    for n in [*range(1, 4100), 2**31 - 1, 2**31, 2**31 + 1, 3 * 2**40]:
        assert pow2(n) == triton.next_power_of_2(n), n
        for d in (1, 3, 16, 128, 1000):
            assert cdiv(n, d) == triton.cdiv(n, d), (n, d)
    assert cdiv(0, 16) == 0 and pow2(0) == 1  # triton's gives 0 there; every caller clamps to >= 1


def test_prelude_closure_takes_the_helpers_that_helpers_and_launchers_name():
    assert {"_p2t_cdiv", "_p2t_pow2"} <= set(prelude_closure({"_p2t_split_config"}, []))
    assert prelude_closure(set(), ["    grid = (_p2t_cdiv(n, 1024),)"]) == ["_p2t_cdiv"]
    assert "_P2T_TUNING" in prelude_closure({"_p2t_toc"}, [])  # module state is named, not called


def _product(a, b):
    return torch.matmul(a.double(), b.double())


@pytest.mark.parametrize("case", ["irregular", "transposed_weight", "broadcast_batch", "offset_view"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_mm_operands_copies_what_triton_cannot_vectorize_and_keeps_the_product(case, dtype):
    operands = _helper("_p2t_mm_operands", torch=torch)
    def randn(*shape):
        return torch.randn(*shape, dtype=dtype)

    if case == "irregular":  # the bench's 3001x1999 @ 1999x2777, scaled down: nothing a multiple of 16
        a, b = randn(1, 37, 19), randn(1, 19, 45)
    elif case == "transposed_weight":  # x @ w.t(): b is K-major already, K a multiple of 16, but a's rows are not
        a, b = randn(1, 33, 48)[:, :, :40], randn(1, 45, 40).transpose(1, 2)
    elif case == "broadcast_batch":
        a, b = randn(3, 19, 23), randn(1, 23, 29).expand(3, 23, 29)
    else:  # aligned strides, but a start one element into the storage
        a, b = randn(1, 9, 65)[:, :, 1:], randn(1, 64, 32)
    a2, b2, k = operands(a, b)
    assert k % 16 == 0 and a2.shape == (a.shape[0], a.shape[1], k) and b2.shape == (b.shape[0], k, b.shape[2])
    assert torch.allclose(_product(a2, b2), _product(a, b), rtol=1e-12, atol=1e-12)  # the zero padding adds nothing
    for t, k_dim in ((a2, 2), (b2, 1)):  # K-major, 16-element strides, aligned starts
        assert t.stride(k_dim) == 1 and t.data_ptr() % 16 == 0
        assert all(s == 1 or s % 16 == 0 for n, s in zip(t.shape, t.stride(), strict=True) if n > 1), t.stride()
    if case == "broadcast_batch":
        assert b2.stride(0) == 0  # still one copy of the batch


def test_mm_operands_leaves_vectorizable_operands_alone():
    operands = _helper("_p2t_mm_operands", torch=torch)
    a, b = torch.randn(2, 32, 64), torch.randn(2, 64, 48)  # row-major, N a multiple of 16
    assert operands(a, b) == (a, b, 64)
    w = torch.randn(40, 64).t().unsqueeze(0)  # a transposed weight: K-major
    x = a[:1]
    assert operands(x, w) == (x, w, 64)


@pytest.mark.parametrize("case", ["irregular", "transposed_weight", "broadcast_batch", "offset_view", "aligned_b"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_mm_padded_operands_copy_without_transposing_and_keep_the_product(case, dtype):
    """A row-major b keeps its layout (a transposing copy is uncoalesced on a GPU): K padded to 16, N to 256."""
    operands = _helper("_p2t_mm_padded_operands", torch=torch)

    def randn(*shape):
        return torch.randn(*shape, dtype=dtype)

    if case == "irregular":
        a, b = randn(1, 37, 19), randn(1, 19, 45)
    elif case == "transposed_weight":  # b K-major: copied K-major, as _p2t_mm_operands does, with no N padding
        a, b = randn(1, 33, 48)[:, :, :40], randn(1, 45, 40).transpose(1, 2)
    elif case == "broadcast_batch":
        a, b = randn(3, 19, 23), randn(1, 23, 29).expand(3, 23, 29)
    elif case == "offset_view":
        a, b = randn(1, 9, 65)[:, :, 1:], randn(1, 64, 32)
    else:  # only a fails (K a multiple of 16, a's start unaligned): b is used as given
        a, b = randn(1, 9, 65)[:, :, 1:], randn(1, 64, 48)
    a2, b2, k, b_padded = operands(a, b)
    assert k % 16 == 0 and a2.shape == (a.shape[0], a.shape[1], k) and b2.shape[:2] == (b.shape[0], k)
    assert torch.allclose(_product(a2, b2)[:, :, :b.shape[2]], _product(a, b), rtol=1e-12, atol=1e-12)
    assert a2.stride(2) == 1 and a2.data_ptr() % 16 == 0
    if case == "transposed_weight":
        assert not b_padded and b2.shape[2] == b.shape[2] and b2.stride(1) == 1
    elif case in ("offset_view", "aligned_b"):
        assert b2 is b and not b_padded
    else:  # row-major and padded: no mask along N is needed for any BLOCK_N up to 256
        assert b_padded and b2.stride(2) == 1 and b2.shape[2] % 256 == 0
        assert not b2[:, :, b.shape[2]:].any() and not b2[:, b.shape[1]:, :].any()
    if case == "broadcast_batch":
        assert b2.stride(0) == 0  # still one copy of the batch


def test_zero_padded_buffers_are_kept_per_operand_and_slot_and_never_show_an_earlier_call():
    padded = _helper("_p2t_zero_padded", torch=torch)
    x, y = torch.randn(1, 5, 19), torch.randn(1, 5, 19)
    bx = padded(x, 8, 32, 0)
    assert torch.equal(bx[:, :5, :19], x) and not bx[:, :, 19:].any() and not bx[:, 5:, :].any()
    x.mul_(2.0)  # the same memory with new values: the kept buffer, copied again
    again = padded(x, 8, 32, 0)
    assert again.data_ptr() == bx.data_ptr() and torch.equal(again[:, :5, :19], x)
    assert padded(y, 8, 32, 0).data_ptr() != bx.data_ptr()  # other memory: a buffer of its own (threads included)
    assert padded(x, 8, 32, 1).data_ptr() != bx.data_ptr()  # the other operand of a product: its own slot
    narrow = padded(x[:, :, :18], 8, 32, 0)  # the same start, narrower: its own buffer, no stale column 18
    assert narrow.data_ptr() != bx.data_ptr() and not narrow[:, :, 18:].any()
    broadcast = padded(torch.randn(1, 5, 19).expand(3, 5, 19), 8, 32, 0)
    assert broadcast.shape == (3, 8, 32) and broadcast.stride(0) == 0
    from_thread = []
    worker = threading.Thread(target=lambda: from_thread.append(padded(x, 8, 32, 0)))
    worker.start()
    worker.join()
    assert torch.equal(from_thread[0], again)  # a thread copying the same memory writes the same values


PADDED_MM_WORKER = r'''
import json, sys, tempfile
import torch
from p2t_core.bench.harness import load_module
from p2t_core.engine import compile_units

source, shapes = sys.argv[1], {k: tuple(v) for k, v in json.loads(sys.argv[2]).items()}
unit = compile_units(source, "u.py", unit="f", shapes=shapes).units[0]
gate = "if a3.is_cuda and batch * m * n * k >= 2**31:"
assert gate in unit.module_source
module = load_module(unit.module_source.replace(gate, "if True:"), "padded_mm", tempfile.mkdtemp())
seen = []
copy_operands = module._p2t_mm_padded_operands
module._p2t_mm_padded_operands = lambda a, b: seen.append(copy_operands(a, b)) or seen[-1]
torch.manual_seed(0)
args = [torch.randn(s) for s in shapes.values()]
ref = {}
exec(source, ref)
out, expected = module.f(*args), ref["f"](*args)
err = ((out - expected).abs().max() / expected.abs().max()).item()
print(json.dumps({"b_padded": seen[0][3] if seen else None, "err": err, "shape": list(out.shape)}))
'''


@pytest.mark.parametrize("source,shapes,b_padded", [
    ("import torch\n\ndef f(a, b):\n    return a @ b\n", {"a": (37, 19), "b": (19, 45)}, True),
    ("import torch\n\ndef f(a, b):\n    return a @ b\n", {"a": (2, 21, 19), "b": (19, 300)}, True),
    ("import torch\n\ndef f(a, w):\n    return torch.relu(a @ w.t())\n", {"a": (33, 40), "w": (45, 40)}, False),
], ids=["irregular", "batched_past_256_columns", "transposed_weight"])
def test_matmul_kernel_on_padded_operands_matches_torch_in_the_interpreter(source, shapes, b_padded):
    """The launcher's GPU path (the copies, and B_PADDED's loads with no mask along N) run on the CPU: the copies
    are asked for whatever the device and size, so the interpreter runs the kernel on them."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", PADDED_MM_WORKER, source, json.dumps(shapes)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["b_padded"] is b_padded  # a row-major b is N-padded; w.t() is K-major and copied as such
    assert result["err"] < 1e-5


def test_row_config_gives_tiles_of_at_most_2_kb_one_warp():
    config = _helper("_p2t_row_config")
    assert config(65536, 1024, 1, 16384, 2) == (1024, 1, True, 1)  # 1024-wide bf16 rows: 2 KB
    assert config(65536, 1024, 1, 16384, 4)[3] == 4  # fp32: 4 KB, as before
    assert config(16384, 4096, 1, 16384, 2)[3] == 8
    assert config(65536, 1024, 1, 16384)[3] == 4  # launchers written before element_size: fp32 sizing


def test_short_rows_become_inner_positions_unless_an_offset_could_pass_2_31():
    short_rows = _helper("_p2t_short_rows")
    strides = [[64, 1, 1], [1, 0, 1]]  # a (rows, 64) input and a keepdim output
    assert short_rows(1048576, 64, 1, 4, strides) == (1, 1048576, [[1, 1, 64], [1, 0, 1]])
    assert short_rows(8192, 1024, 1, 2, strides)[:2] == (8192, 1)  # 2 KB rows keep one row a program
    assert short_rows(2**26, 64, 1, 4, [[64, 1, 1]])[:2] == (2**26, 1)  # 2**32 elements: 32-bit offsets overflow


@pytest.mark.parametrize("n_r,element_size,rows,warps", [
    (64, 4, 64, 8),    # softmax 1048576x64 fp32: 64 rows a program, as the H100 bench timed it (0.99x compile)
    (256, 2, 16, 8),   # LayerNorm 262144x256 bf16: 16 rows, not 64 (0.0950 against 0.0997 ms in the H100 sweep)
    (128, 4, 32, 8),
    (16, 2, 256, 8),   # widened to 4096 elements
])
def test_row_config_gives_short_rows_programs_of_4096_elements(n_r, element_size, rows, warps):
    config = _helper("_p2t_row_config")
    assert config(1, n_r, 262144, 16384, element_size) == (n_r, rows, True, warps)


@pytest.mark.parametrize("n_outer,n_r,n_inner,element_size", [
    (1, 64, 2**22, 2),       # a softmax over 2**22 rows of 64 bf16 seen as inner positions
    (1, 256, 2**24, 2),      # rows of 256: wider tiles than max_single, so R is looped
    (3, 5000, 2**23 + 7, 4),  # a column reduction of a long inner dim
])
def test_row_config_keeps_the_inner_tiles_within_cuda_grid_y(n_outer, n_r, n_inner, element_size):
    config = _helper("_p2t_row_config")
    block_r, block_i, single, _ = config(n_outer, n_r, n_inner, 16384, element_size)
    assert triton.cdiv(n_inner, block_i) <= 65535
    assert block_r * block_i <= 16384 or not single
    assert not single or block_r >= n_r  # a single tile holds its whole reduction


def test_row_config_keeps_wide_column_tiles_of_long_reductions():
    config = _helper("_p2t_row_config")
    assert config(1, 256, 65536, 16384, 4)[:3] == (256, 64, True)  # 1 KB columns: 256-byte runs of each row stay
    assert config(1, 8192, 65536, 16384, 4)[:3] == (64, 64, False)


def test_rows_keeps_the_strides_of_a_layout_and_never_a_copy():
    cache = {}
    rows = _helper("_p2t_rows", torch=torch, _P2T_ROW_STRIDES=cache)
    x = torch.randn(6, 5, 4)
    view, strides = rows(x, (6, 5, 4), (1,))
    assert view is x and strides == [20, 4, 1] and len(cache) == 1
    y = torch.randn(6, 5, 4)  # same layout: the kept strides, the new tensor
    assert rows(y, (6, 5, 4), (1,)) == (y, [20, 4, 1]) and len(cache) == 1
    apart = torch.randn(6, 4, 5).transpose(1, 2)[:, :, :3]  # rows that do not collapse: copied every call
    for _ in range(2):
        copy, strides = rows(apart, (6, 5, 3), (0, 2))
        assert copy is not apart and torch.equal(copy, apart)
    assert (apart.shape, apart.stride(), (6, 5, 3), (0, 2)) not in cache
    assert rows(x, [6, 5, 4], [1])[1] == [20, 4, 1]  # lists, as a hand-written launcher may pass them


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_irregular_matmul_on_cuda_copies_its_operands_and_matches_torch(tmp_path):
    from p2t_core.bench.harness import load_module

    shapes = {"a": (1701, 1599), "b": (1599, 797)}  # 2.17G multiply-adds (>= 2**31), no dim a multiple of 16
    unit = compile_units("import torch\n\ndef f(a, b):\n    return a @ b\n", "u.py", unit="f", shapes=shapes).units[0]
    module = load_module(unit.module_source, "irregular_mm", str(tmp_path))
    seen = []
    copy_operands = module._p2t_mm_padded_operands
    module._p2t_mm_padded_operands = lambda a, b: seen.append(copy_operands(a, b)) or seen[-1]
    a = torch.randn(shapes["a"], device="cuda", dtype=torch.bfloat16)
    b = torch.randn(shapes["b"], device="cuda", dtype=torch.bfloat16)
    out = module.f(a, b)
    assert seen and seen[0][2] == 1600 and seen[0][3]  # K padded to a multiple of 16, b's N to 256
    torch.testing.assert_close(out.float(), a.float() @ b.float(), rtol=2e-2, atol=2e-1)


ONE_LAUNCH_GPU_CASES = [("col_sum_8192x8192_fp32", COL_SUM, {"x": (8192, 8192)}, torch.float32),
                        ("smooth_l1_2e24_bf16", SMOOTH_L1, {"x": (2**24,), "y": (2**24,)}, torch.bfloat16),
                        ("sum_all_odd_fp32", SUM_ALL, {"x": (2**26 + 3,)}, torch.float32)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", ONE_LAUNCH_GPU_CASES, ids=[c[0] for c in ONE_LAUNCH_GPU_CASES])
def test_split_reductions_on_cuda_combine_every_partial_in_one_launch(tmp_path, case):
    """The tile's last program reads the other programs' partial results: a missing barrier or fence would show as
    a result that differs from launch to launch (the combine's order is fixed, so correct runs are bitwise equal)."""
    from p2t_core.bench.harness import load_module

    name, source, shapes, dtype = case
    unit = compile_units(source, "u.py", unit="f", shapes=shapes).units[0]
    module = load_module(unit.module_source, name, str(tmp_path))
    launches = []
    split_config = module._p2t_split_config
    module._p2t_split_config = lambda *a: launches.append(split_config(*a)) or launches[-1]
    args = [torch.randn(s, device="cuda", dtype=dtype) for s in shapes.values()]
    first = module.f(*args)
    assert launches[0][0] > 1  # split
    outs = [module.f(*args) for _ in range(200)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # another stream: its own counts
        outs += [module.f(*args) for _ in range(20)]
    torch.cuda.synchronize()
    assert all(torch.equal(o, first) for o in outs)
    assert len(module._P2T_SEMAPHORES) == 2 and all(not c.any() for c in module._P2T_SEMAPHORES.values())
    ref_mod = {}
    exec(source, ref_mod)
    ref = ref_mod["f"](*[a.double() for a in args])
    # A sum of 8192 fp32 values carries ~1e-5 of rounding whatever the order (the H100 run of 2026-12-05 saw 3.0e-5
    # against float64): the atol grows to 4x torch's own error at the input dtype.
    torch_error = (ref_mod["f"](*args).double() - ref).abs().max().item()
    torch.testing.assert_close(first.double(), ref, rtol=1e-5 if dtype == torch.float32 else 1e-2,
                               atol=max(1e-5, 4 * torch_error))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_short_rows_past_65535_inner_tiles_launch_on_cuda(tmp_path):
    """2**22 rows of 64 as 64-row programs would be 65,536 programs on the grid's second axis, one past CUDA's limit
    (the eighteenth session's sweep: "invalid argument"); the launcher widens the tiles instead."""
    from p2t_core.bench.harness import load_module

    source = "import torch\n\ndef f(x):\n    return torch.softmax(x, dim=-1)\n"
    unit = compile_units(source, "u.py", unit="f", shapes={"x": (2, 64)}).units[0]
    module = load_module(unit.module_source, "short_rows_grid", str(tmp_path))
    x = torch.randn(2**22, 64, device="cuda", dtype=torch.bfloat16)
    torch.testing.assert_close(module.f(x), torch.softmax(x, dim=-1), rtol=1e-2, atol=1e-2)


BMM = "import torch\n\ndef f(a, b):\n    return torch.bmm(a, b)\n"


class _LaunchRecorder:
    """Stands in for a @triton.jit kernel: keeps each launch's grid and meta-parameters, runs nothing."""

    def __init__(self):
        self.launches = []

    def __getitem__(self, grid):
        return lambda *args, **meta: self.launches.append((grid, meta))


def test_batched_matmul_puts_batch_and_tiles_on_the_grids_first_axis(tmp_path):
    """CUDA allows the grid's second axis 65,535 programs; a batch of 70,000 products must launch anyway. The kernel
    is not run here (70,000 interpreted programs take minutes): the recorder keeps the grid the launcher asks for."""
    from p2t_core.bench.harness import load_module

    unit = compile_units(BMM, "u.py", unit="f", shapes={"a": (3, 5, 7), "b": (3, 7, 6)}).units[0]
    module = load_module(unit.module_source, "bmm_grid", str(tmp_path))
    (name,) = [k for k, v in vars(module).items() if isinstance(v, triton.runtime.JITFunction)]
    recorder = _LaunchRecorder()
    setattr(module, name, recorder)
    module.f(torch.randn(70000, 33, 7), torch.randn(70000, 7, 40))
    ((grid, meta),) = recorder.launches
    assert grid == (70000 * triton.cdiv(33, meta["BLOCK_M"]) * triton.cdiv(40, meta["BLOCK_N"]),)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batched_matmul_past_65535_matrices_launches_on_cuda(tmp_path):
    from p2t_core.bench.harness import load_module

    unit = compile_units(BMM, "u.py", unit="f", shapes={"a": (3, 5, 7), "b": (3, 7, 6)}).units[0]
    module = load_module(unit.module_source, "bmm_many", str(tmp_path))
    a = torch.randn(70000, 16, 24, device="cuda")
    b = torch.randn(70000, 24, 8, device="cuda")
    torch.testing.assert_close(module.f(a, b), torch.bmm(a, b), rtol=1e-2, atol=1e-2)  # tf32 as torch may use
