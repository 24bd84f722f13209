"""The CUDA backend's compile-ahead (`p2t_core.verify.precompile`): the forked-children map runs anywhere; the
collecting dry run and the children's compiles need a GPU."""

from __future__ import annotations

import time

import pytest
from candidates import ELEMENTWISE_CAND, ELEMENTWISE_REF, ELEMENTWISE_SIG, RMSNORM_CAND, RMSNORM_REF, RMSNORM_SIG
from test_verify import AUTOTUNED

from p2t_core.verify import verify
from p2t_core.verify.precompile import REHEARSAL_CANDIDATE, REHEARSAL_REFERENCE, fork_map, rehearsal_signature


def _write(path_and_text):
    path, text = path_and_text
    with open(path, "w") as f:
        f.write(text)


def test_fork_map_runs_every_item_in_children(tmp_path):
    items = [(str(tmp_path / f"{k}.txt"), f"item {k}") for k in range(7)]
    assert fork_map(_write, items, workers=3, timeout_s=30) == [True] * 7
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == [f"item {k}" for k in range(7)]


def _fail_on_odd(k):
    if k % 2:
        raise ValueError(k)


def test_a_child_that_raises_marks_its_share_failed():
    # Two children: child 0 takes 0, 2, 4; child 1 takes 1, 3 and raises on 1.
    assert fork_map(_fail_on_odd, [0, 1, 2, 3, 4], workers=2, timeout_s=30) == [True, False, True, False, True]


def _hang_on_zero(k):
    if k == 0:
        time.sleep(60)


def test_children_past_the_timeout_are_killed_and_reaped():
    t0 = time.monotonic()
    assert fork_map(_hang_on_zero, [0, 1], workers=2, timeout_s=1.0) == [False, True]
    assert time.monotonic() - t0 < 10


def test_the_warm_up_rehearsal_is_a_passing_pair():
    # A spare CUDA worker verifies it before its job; a rehearsal that failed early would warm up less.
    r = verify(REHEARSAL_REFERENCE, REHEARSAL_CANDIDATE, rehearsal_signature(), backend="interpret",
               dtypes=("float32",), seed=0)
    assert r.passed, r.render()


@pytest.mark.gpu
@pytest.mark.parametrize("ref,cand,sig", [(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG),
                                          (RMSNORM_REF, RMSNORM_CAND, RMSNORM_SIG)])
def test_cuda_verification_compiles_every_specialization_ahead(ref, cand, sig, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty Triton cache: every kernel is compiled here
    r = verify(ref, cand, sig, backend="cuda", seed=3)
    assert r.passed, r.render()
    found, compiled = r.phases["precompile_specializations"], r.phases["precompile_compiled"]
    assert found >= 2 and compiled == found, r.phases


@pytest.mark.gpu
def test_autotuned_kernels_compile_every_config_ahead_and_still_tune(tmp_path, monkeypatch):
    from p2t_core.signature import Signature, TensorParam

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sig = Signature(unit="double", kind="function", params=(TensorParam("x", ("N",)),))
    r = verify("def double(x):\n    return x * 2\n", AUTOTUNED, sig, backend="cuda", dtypes=("float32",),
               shapes=[{"N": 300}, {"N": 4096}], noncontiguous=False, seed=0)
    assert r.passed, r.render()
    assert r.phases["precompile_specializations"] >= 2, r.phases  # both configs, though the dry run launched none


@pytest.mark.gpu
def test_a_launcher_that_hangs_in_the_dry_run_times_out_there():
    cand = ELEMENTWISE_CAND.replace("def silu_axpy(", "def silu_axpy(*a, **k):\n    while True:\n        pass\n\n\n"
                                                     "def _unused(")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="cuda", dtypes=("float32",), timeout_s=5, seed=0)
    assert not r.passed and "running the launchers" in (r.error or ""), r.render()
