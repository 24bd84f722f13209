"""Workers started ahead of their job: the next verification takes one; one never taken dies at exit."""

from __future__ import annotations

from candidates import ELEMENTWISE_CAND, ELEMENTWISE_REF, ELEMENTWISE_SIG

from p2t_core.verify import runner, verify


def test_a_prestarted_worker_runs_the_next_job_of_its_backend():
    runner.prestart("interpret")
    spare, _ = runner._spares["interpret"]
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    assert "interpret" not in runner._spares  # taken by that job
    assert spare.poll() is not None  # and it ran to its end


def test_aot_prestarts_the_compile_worker_too_and_unused_spares_are_killed():
    runner.prestart("aot")
    procs = [runner._spares[kind][0] for kind in ("aot", "compile")]
    runner.prestart("aot")  # already started: no second pair
    assert [runner._spares[kind][0] for kind in ("aot", "compile")] == procs
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


def test_keep_warm_replaces_each_spare_a_job_takes():
    runner.prestart("interpret", keep_warm=True)
    first, _ = runner._spares["interpret"]
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    second, _ = runner._spares["interpret"]  # started when the job took the first
    assert second is not first and first.poll() is not None and second.poll() is None
    runner._discard_spares()
    assert not runner._spares and not runner._keep_warm and second.poll() is not None


def test_wait_for_spare_sees_a_spare_finish_its_start():
    assert not runner.wait_for_spare("interpret", timeout_s=0.1)  # none started
    runner.prestart("interpret")
    assert runner.wait_for_spare("interpret", timeout_s=120)
    r = verify(ELEMENTWISE_REF, ELEMENTWISE_CAND, ELEMENTWISE_SIG, backend="interpret", dtypes=("float32",), seed=3)
    assert r.passed, r.render()
    assert not runner.wait_for_spare("interpret", timeout_s=0.1)  # the job took it
