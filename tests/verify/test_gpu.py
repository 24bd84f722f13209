"""The cuda backend on a real GPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
from candidates import (
    ELEMENTWISE_CAND,
    ELEMENTWISE_REF,
    ELEMENTWISE_SIG,
    RMSNORM_CAND,
    RMSNORM_REF,
    RMSNORM_SIG,
    ROWSUM_CAND,
    ROWSUM_REF,
    ROWSUM_SIG,
    bug,
)

from p2t_core.verify import verify

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300)]


@pytest.mark.parametrize("ref,cand,sig", [(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG),
                                          (ROWSUM_REF, ROWSUM_CAND, ROWSUM_SIG),
                                          (RMSNORM_REF, RMSNORM_CAND, RMSNORM_SIG)])
def test_correct_candidates_pass_on_cuda(ref, cand, sig):
    r = verify(ref, cand, sig, backend="cuda", seed=1)
    assert r.backend == "cuda"
    assert r.passed, r.render()


def test_missing_store_mask_on_cuda():
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs, out.to(OUT.dtype.element_ty))")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="cuda", dtypes=("float32",),
               shapes=[{"M": 5, "N": 37}], noncontiguous=False, seed=0)
    assert not r.passed and "write outside the output" in r.cases[0].message, r.render()


def test_illegal_address_fails_its_case_and_the_rest_run_in_a_fresh_worker():
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs + (N == 1) * (1 << 40), out.to(OUT.dtype.element_ty), "
                                       "mask=mask)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="cuda", dtypes=("float32",),
               shapes=[{"M": 3, "N": 1}, {"M": 3, "N": 5}, {"M": 4, "N": 7}], noncontiguous=False, seed=0)
    assert r.cases[0].status == "fail", r.render()
    assert [c.status for c in r.cases[1:]] == ["pass", "pass"], r.render()


def test_a_keep_warm_cuda_worker_serves_the_next_job_and_a_poisoned_one_is_replaced():
    from p2t_core.verify import runner

    runner._discard_spares()  # whatever an earlier test in this process kept
    runner.prestart("cuda", keep_warm=True)
    first = runner._spares["cuda"]
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="cuda", dtypes=("float32",), seed=1)
    assert r.passed and r.phases["precompile_specializations"] >= 1, r.render()
    assert runner._spares["cuda"] is first and first.jobs == 1
    cand = bug(ELEMENTWISE_CAND, STORE="tl.store(OUT + offs + (1 << 40), out.to(OUT.dtype.element_ty), mask=mask)")
    r = verify(ELEMENTWISE_REF, cand, ELEMENTWISE_SIG, backend="cuda", dtypes=("float32",),
               shapes=[{"M": 3, "N": 5}], noncontiguous=False, seed=0)
    assert not r.passed, r.render()
    assert runner._spares["cuda"] is not first and not first.alive()
    runner._discard_spares()
