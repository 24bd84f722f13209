"""The adversarial corpus: every hostile module is rejected statically and nothing ever runs."""

from __future__ import annotations

import pytest

from p2t_core.postprocess import check_candidate
from tests.postprocess.corpus import good_modules, hostile_cases

CASES = hostile_cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 50
    assert {c.expect for c in CASES} == {"grammar", "semantics", "sandbox"}
    assert all("MARKER_PATH" in c.text for c in CASES if c.name != "empty_module")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_module_is_rejected_and_never_runs(case, tmp_path):
    marker = tmp_path / "marker"
    result = check_candidate(case.with_marker(marker))
    if case.expect == "sandbox":
        # passes the static gates on purpose; the verifier's sandboxed worker must contain it
        assert result.ok, str(result)
    else:
        assert not result.ok, f"{case.name} was accepted"
        assert result.stage == case.expect, str(result)
        assert result.messages and all(m.startswith("line ") for m in result.messages)
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(good_modules()))
def test_good_module_passes(name):
    result = check_candidate(good_modules()[name])
    assert result.ok, str(result)
