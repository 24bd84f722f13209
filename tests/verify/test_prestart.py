"""Workers started ahead of their job: the next verification takes one; one never taken dies at exit."""

from __future__ import annotations

import pytest
from candidates import ELEMENTWISE_CAND, ELEMENTWISE_REF, ELEMENTWISE_SIG, bug

from p2t_core.verify import runner, verify


@pytest.fixture(autouse=True)
def no_spares():
    """Each test starts and ends with no spare workers and no keep-warm backends (the state is per process)."""
    runner._discard_spares()
    yield
    runner._discard_spares()


def test_a_prestarted_worker_runs_the_next_job_of_its_backend():
    runner.prestart("interpret")
    spare = runner._spares["interpret"].proc
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    assert "interpret" not in runner._spares  # taken by that job
    assert spare.poll() is not None  # and it ran to its end


def test_aot_prestarts_the_compile_worker_too_and_unused_spares_are_killed():
    runner.prestart("aot")
    procs = [runner._spares[kind].proc for kind in ("aot", "compile")]
    runner.prestart("aot")  # already started: no second pair
    assert [runner._spares[kind].proc for kind in ("aot", "compile")] == procs
    runner._discard_spares()
    assert not runner._spares and all(p.poll() is not None for p in procs)


def test_an_aot_verification_starts_its_compile_worker_while_the_cases_run(monkeypatch):
    started = []
    real_run_job = runner.run_job

    def watch(job, timeout_s):
        started.append((job.get("mode", "cases"), "compile" in runner._spares))
        yield from real_run_job(job, timeout_s)

    monkeypatch.setattr("p2t_core.verify.run_job", watch)
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="aot", dtypes=("float32",), seed=3)
    assert r.passed and r.kernels, r.render()
    # the compile worker was already started when the interpreted cases began, and it did the compile
    assert started == [("cases", True), ("compile", True)]
    assert "compile" not in runner._spares


def test_keep_warm_reuses_a_worker_whose_job_ended_cleanly_and_replaces_one_that_died():
    runner.prestart("interpret", keep_warm=True)
    first = runner._spares["interpret"]
    for n in (1, 2):
        r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",),
                   seed=n)
        assert r.passed, r.render()
        assert runner._spares["interpret"] is first and first.alive() and first.jobs == n  # the same process
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3,
               memory_limit_mb=4096)
    assert r.passed, r.render()
    first = runner._spares["interpret"]  # another memory limit: a fresh worker, reused from then on
    assert first.jobs == 1 and first.memory_limit_mb == 4096
    hang = bug(ELEMENTWISE_CAND, PRELUDE="while True:\n    pass")
    r = verify(ELEMENTWISE_REF, hang, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",),
               shapes=[{"M": 2, "N": 3}], noncontiguous=False, timeout_s=3, seed=0, memory_limit_mb=4096)
    assert not r.passed and "timeout" in r.cases[0].message, r.render()
    second = runner._spares["interpret"]  # started when the hung one was killed
    assert second is not first and not first.alive() and second.alive()
    runner._discard_spares()
    assert not runner._spares and not runner._keep_warm and not second.alive()


def test_keep_warm_replaces_the_spare_of_a_backend_it_does_not_reuse():
    runner.prestart("aot", keep_warm=True)
    first = runner._spares["aot"]
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="aot", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    second = runner._spares["aot"]  # started when the job that took the first ended
    assert second is not first and not first.alive() and second.alive()


def test_wait_for_spare_sees_a_spare_finish_its_start():
    assert not runner.wait_for_spare("interpret", timeout_s=0.1)  # none started
    runner.prestart("interpret")
    assert runner.wait_for_spare("interpret", timeout_s=120)
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    assert not runner.wait_for_spare("interpret", timeout_s=0.1)  # the job took it
