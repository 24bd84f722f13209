"""scripts/compare_evals.py: the paired comparison that decides whether new weights are shown better."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_evals", REPO / "scripts" / "compare_evals.py")
compare_evals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_evals)


def result(oks: list[bool], ids=None) -> dict:
    ids = ids or [f"u{i}" for i in range(len(oks))]
    return {"per_row": [{"id": i, "family": "elementwise" if n % 2 else "reduction", "greedy_ok": ok}
                        for n, (i, ok) in enumerate(zip(ids, oks, strict=True))]}


@pytest.mark.parametrize(("wins", "losses", "p"), [(0, 0, 1.0), (3, 9, 0.146), (9, 3, 0.146), (10, 0, 0.00195),
                                                   (5, 5, 1.0)])
def test_sign_test_matches_the_binomial_tail(wins, losses, p):
    assert compare_evals.sign_test(wins, losses) == pytest.approx(p, abs=5e-4)


def test_paired_counts_only_the_units_one_side_passes(tmp_path, capsys):
    a = result([True, True, False, True, False, True])
    b = result([True, False, False, False, True, True])
    out = compare_evals.paired(a, b)
    assert (out["pass_a"], out["pass_b"], out["only_a"], out["only_b"]) == (4, 3, 2, 1)
    assert out["only_a_families"] == {"elementwise": 2}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    compare_evals.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--names", "new", "shipped"])
    text = capsys.readouterr().out
    assert "new 4/6" in text and "only shipped passes 1" in text and "p = 1" in text


def test_results_over_different_rows_are_refused():
    with pytest.raises(SystemExit, match="not over the same rows"):
        compare_evals.paired(result([True, False]), result([True, False], ids=["x", "y"]))


def test_an_interrupted_eval_is_compared_on_the_common_prefix():
    out = compare_evals.paired(result([True, False, True, True]), result([False, False, True]))
    assert (out["rows"], out["pass_a"], out["pass_b"], out["only_a"]) == (3, 2, 1, 1)


def test_join_puts_an_interrupted_eval_and_its_tail_back_together(tmp_path, capsys):
    prefix = {**result([True, False]), "split": "valid_random", "interrupted": True, "data": "full"}
    tail = {**result([True, True], ids=["u2", "u3"]), "data": "tail"}
    (tmp_path / "p.json").write_text(json.dumps(prefix))
    (tmp_path / "t.json").write_text(json.dumps(tail))
    compare_evals.main(["--join", str(tmp_path / "j.json"), str(tmp_path / "p.json"), str(tmp_path / "t.json")])
    joined = json.loads((tmp_path / "j.json").read_text())
    assert [r["id"] for r in joined["per_row"]] == ["u0", "u1", "u2", "u3"]
    assert (joined["rows"], joined["passed"], joined["split"]) == (4, 3, "valid_random")
    assert "3/4 over 2 parts" in capsys.readouterr().out
    out = compare_evals.paired(joined, result([True, True, False, True]))
    assert (out["rows"], out["only_a"], out["only_b"]) == (4, 1, 1)
    with pytest.raises(SystemExit, match="share rows"):
        compare_evals.join([prefix, prefix])


def test_rows_either_eval_finds_ill_posed_are_also_compared_without(tmp_path, capsys):
    a, b = result([True, False, True, False]), result([False, False, True, True])
    a["per_row"][0]["target_ok"] = False  # `p2t eval --check-targets`: u0's own target fails
    for r in a["per_row"][1:] + b["per_row"]:
        r["target_ok"] = True
    b["per_row"][3]["target_ok"] = None  # a row that could not be set up has no verdict: kept
    posed = compare_evals.well_posed(a, b)
    assert [r["id"] for r in posed[0]["per_row"]] == [r["id"] for r in posed[1]["per_row"]] == ["u1", "u2", "u3"]
    assert compare_evals.well_posed(result([True]), result([False])) is None
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    compare_evals.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 rows: a 2/4") and lines[1].startswith("only a passes 1")  # unchanged
    assert lines[2] == ("well-posed rows 3 of 4: a 1/3 = 0.333, b 2/3 = 0.667; only a passes 0, only b passes 1; "
                        "sign test p = 1")


def test_target_verdicts_come_from_a_third_result_that_checked_them(tmp_path, capsys):
    """Two evals without --check-targets, the rows' own kernels checked once elsewhere (`--targets`)."""
    checked = result([False, False, False])
    for r, ok in zip(checked["per_row"], (True, False, None), strict=True):
        r["target_ok"] = ok
    assert [r.get("target_ok") for r in compare_evals.with_targets(result([True] * 3), checked)["per_row"]] == [
        True, False, None]
    for name, res in (("a", result([True, True, False])), ("b", result([True, False, False])), ("t", checked)):
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
    compare_evals.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--targets", str(tmp_path / "t.json")])
    assert capsys.readouterr().out.splitlines()[2].startswith("well-posed rows 2 of 3: a 1/2 = 0.500, b 1/2 = 0.500")
