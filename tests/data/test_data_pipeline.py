"""The pair pipeline with a fake compiler and verifier: dedup, determinism, cache, resume, splits."""

from __future__ import annotations

import hashlib
import json
from itertools import combinations
from pathlib import Path

import p2t_data_fakes as fakes
import pytest

from p2t_core.data import pipeline
from p2t_core.data.canonical import canonical_hash
from p2t_core.data.pipeline import Fingerprints, build, entry_path

PAIRS = 240


def fps(softmax_hash: str = "s1") -> Fingerprints:
    from p2t_core.data.examples import ALL_OPS

    owner = {op: "elementwise" for op in ALL_OPS}
    owner.update({"softmax": "softmax", "log_softmax": "softmax", "matmul": "matmul"})
    owner.update({op: "reduction" for op in ("sum", "mean", "max", "min", "amax", "amin", "prod", "argmax",
                                             "argmin", "var", "std", "norm", "logsumexp")})
    return Fingerprints("compiler-1", {"elementwise": "e1", "softmax": softmax_hash, "matmul": "m1",
                                       "reduction": "r1"}, owner)


def run(tmp: Path, name: str = "out", cache: str = "cache", seed: int = 0, pairs: int = PAIRS, workers: int = 1,
        fingerprints: Fingerprints | None = None, interrupt_after: int | None = None, heldout=None,
        keep: pipeline.UnitFilter | None = None):
    fakes.reset(interrupt_after)
    return build(tmp / name, pairs=pairs, workers=workers, seed=seed, cache_dir=tmp / cache,
                 compile_fn=fakes.fake_compile, verify_fn=fakes.fake_verify, fingerprints=fingerprints or fps(),
                 use_plugins=False, progress=False, quiet=True, heldout=heldout,
                 keep=keep or pipeline.UnitFilter())


def rows(d: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(x) for x in (d / f"{s}.jsonl").read_text().splitlines()] for s in pipeline.SPLITS}


def test_build_dedup_failures_and_format(tmp_path):
    s = run(tmp_path)
    assert s.candidates == PAIRS
    assert s.written + sum(s.failures.values()) == PAIRS  # nothing dropped silently
    assert s.failures.get("unsupported", 0) > 0  # the fake compiler refuses mish
    assert s.duplicates > 0
    r = rows(tmp_path / "out")
    all_rows = [x for v in r.values() for x in v]
    assert len(all_rows) == s.written
    hashes = [x["hash"] for x in all_rows]
    assert len(set(hashes)) == len(hashes)
    for x in all_rows:
        assert set(x) == {"id", "hash", "prompt", "source", "reference", "target", "family", "style", "ops", "ranks",
                          "dtypes", "n_kernels"}
        assert canonical_hash(x["prompt"]) == x["hash"]
        # what the target was verified against: the source, or a NumPy rendering's torch twin
        assert (x["reference"] == x["source"]) == (x["style"] != "numpy")
        assert "numpy" not in x["reference"]
        assert "mish" not in x["ops"]
    assert {x["style"] for x in all_rows} == {"torch", "functional", "method", "numpy", "loop", "module"}
    assert call_counts_match(s)
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["counts"] == s.splits and man["seed"] == 0 and man["failures"] == s.failures
    for f, h in man["files"].items():
        assert hashlib.sha256((tmp_path / "out" / f).read_bytes()).hexdigest() == h
    table = pipeline.stats_data(tmp_path / "out")
    assert sum(table["splits"].values()) == s.written and table["lengths"]["pair"]["p99"] > 0
    pipeline.stats(tmp_path / "out")  # renders


def call_counts_match(s) -> bool:
    # one compile per (unit, target kind), one verify per compiled pair
    return fakes.CALLS["verify"] == s.computed - s.failures.get("unsupported", 0)


def test_deterministic_for_a_seed(tmp_path):
    run(tmp_path, "a", "ca")
    run(tmp_path, "b", "cb")
    for s in pipeline.SPLITS:
        assert (tmp_path / "a" / f"{s}.jsonl").read_text() == (tmp_path / "b" / f"{s}.jsonl").read_text()
    run(tmp_path, "c", "cc", seed=1, pairs=60)
    assert (tmp_path / "c" / "train.jsonl").read_text() != (tmp_path / "a" / "train.jsonl").read_text()


def test_cache_reuse_and_corruption(tmp_path):
    first = run(tmp_path)
    assert first.computed == PAIRS and fakes.CALLS["compile"] > 0
    again = run(tmp_path, "out2")
    assert fakes.CALLS == {"compile": 0, "verify": 0}
    assert again.cached == PAIRS and again.computed == 0
    assert (tmp_path / "out" / "train.jsonl").read_text() == (tmp_path / "out2" / "train.jsonl").read_text()
    # corrupt two entries: one with bad JSON, one with edited content (its hash no longer matches)
    files = sorted((tmp_path / "cache").rglob("*.json"))
    files[0].write_text("{not json")
    header, body = files[1].read_text().split("\n", 1)
    entry = json.loads(body)
    entry["target"] = "import os  # tampered"
    files[1].write_text(header + "\n" + json.dumps(entry, sort_keys=True))
    third = run(tmp_path, "out3")
    assert third.corrupt == 2 and third.computed == 2 and third.cached == PAIRS - 2
    assert "tampered" not in (tmp_path / "out3" / "train.jsonl").read_text()


def test_candidate_list_is_cached_and_checked(tmp_path, monkeypatch):
    run(tmp_path)
    [path] = (tmp_path / "cache" / "candidates").glob("*.jsonl")

    def no_rendering(*a, **k):
        raise AssertionError("a warm build must not render again")

    monkeypatch.setattr(pipeline, "make_candidates", no_rendering)
    warm = run(tmp_path, "warm")
    assert warm.cached == PAIRS and warm.candidates == PAIRS
    assert (tmp_path / "out" / "train.jsonl").read_text() == (tmp_path / "warm" / "train.jsonl").read_text()
    path.write_text(path.read_text().replace('"torch"', '"numpy"', 1))  # tampered: fails its hash
    assert pipeline.load_candidates(tmp_path / "cache", path.stem) is None
    monkeypatch.undo()
    again = run(tmp_path, "again")
    assert again.cached == PAIRS
    assert (tmp_path / "out" / "train.jsonl").read_text() == (tmp_path / "again" / "train.jsonl").read_text()


def test_forked_cache_lookup_matches_the_serial_one(tmp_path, monkeypatch):
    run(tmp_path)
    monkeypatch.setattr(pipeline, "FORKED_LOOKUP_MIN", 0)
    s = run(tmp_path, "forked", workers=2)
    assert s.cached == PAIRS and s.computed == 0
    for name in pipeline.SPLITS:
        assert (tmp_path / "out" / f"{name}.jsonl").read_text() == (tmp_path / "forked" / f"{name}.jsonl").read_text()


def test_plugin_fingerprint_invalidates_only_its_pairs(tmp_path):
    run(tmp_path)
    s = run(tmp_path, "out2", fingerprints=fps(softmax_hash="s2"))
    r = rows(tmp_path / "out2")
    uses_softmax = sum(1 for v in r.values() for x in v if {"softmax", "log_softmax"} & set(x["ops"]))
    assert 0 < s.computed < PAIRS
    assert s.computed >= uses_softmax  # (+ failed pairs with softmax ops)
    assert s.cached + s.computed == PAIRS
    # a changed compiler rebuilds everything
    s3 = run(tmp_path, "out3", fingerprints=Fingerprints("compiler-2", fps().plugins, fps().op_owner))
    assert s3.computed == PAIRS


def test_interrupted_build_resumes(tmp_path):
    full = run(tmp_path, "ref", "refcache")
    total_verifies = fakes.CALLS["verify"]
    n = 37
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, interrupt_after=n)
    assert fakes.CALLS["verify"] == n + 1
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) >= n  # every pair verified before the interrupt is on disk (plus compile refusals)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    s = run(tmp_path)
    assert s.cached == len(cached)
    assert fakes.CALLS["verify"] == total_verifies - n  # the n verified pairs are reused
    assert s.written == full.written
    assert (tmp_path / "out" / "train.jsonl").read_text() == (tmp_path / "ref" / "train.jsonl").read_text()


def test_splits_are_disjoint_and_compositional(tmp_path):
    s = run(tmp_path, pairs=400)
    r = rows(tmp_path / "out")
    held = {tuple(p) for p in s.heldout_combos}
    assert held and r["valid_compositional"]
    hashes = {k: {x["hash"] for x in v} for k, v in r.items()}
    for a, b in combinations(pipeline.SPLITS, 2):
        assert not hashes[a] & hashes[b]
    for x in r["train"] + r["valid_random"]:
        assert not set(combinations(sorted(set(x["ops"])), 2)) & held
    for x in r["valid_compositional"]:
        assert set(combinations(sorted(set(x["ops"])), 2)) & held
    # all stylings of a unit land in one split: the same source-unit prompt never straddles splits
    assert s.splits["train"] > s.splits["valid_compositional"]


def test_larger_build_keeps_an_earlier_builds_heldout_combinations(tmp_path):
    small = run(tmp_path, name="small", pairs=200)
    chosen_anew = run(tmp_path, name="anew", pairs=400)
    kept = run(tmp_path, name="kept", pairs=400, heldout=small.heldout_combos)
    assert kept.heldout_combos == small.heldout_combos != chosen_anew.heldout_combos
    # so no unit the small build held out for validation is trained on by the larger one
    small_valid = {x["hash"] for x in rows(tmp_path / "small")["valid_compositional"]}
    assert small_valid and small_valid <= {x["hash"] for x in rows(tmp_path / "kept")["valid_compositional"]}


def test_a_unit_filter_builds_only_the_long_chains_it_asks_for(tmp_path):
    run(tmp_path, name="all", pairs=400)
    everything = rows(tmp_path / "all")
    long_ew = [x for split in everything.values() for x in split
               if x["family"] == "elementwise" and len(set(x["ops"])) >= 4]
    assert long_ew and len(long_ew) < 400  # the filter below has something to keep and something to reject
    keep = pipeline.UnitFilter(("elementwise",), min_ops=4)
    s = run(tmp_path, name="long", pairs=120, keep=keep)
    kept = [x for split in rows(tmp_path / "long").values() for x in split]
    assert s.candidates == 120 and s.written == len(kept) > 0
    assert all(x["family"] == "elementwise" and len(set(x["ops"])) >= 4 for x in kept)
    manifest = json.loads((tmp_path / "long" / "manifest.json").read_text())
    assert manifest["unit_filter"] == {"families": ["elementwise"], "min_ops": 4}
    assert "unit_filter" not in json.loads((tmp_path / "all" / "manifest.json").read_text())
    # the same seed and size without the filter is another request, not the filtered one's cached candidates
    unfiltered = run(tmp_path, name="unfiltered", pairs=120)
    assert {x["family"] for split in rows(tmp_path / "unfiltered").values() for x in split} != {"elementwise"}
    assert unfiltered.candidates == 120


def test_worker_pool(tmp_path):
    s = run(tmp_path, pairs=48, workers=2)
    assert s.computed == 48 and s.written > 0
    run(tmp_path, "serial", "cache2", pairs=48)
    assert (tmp_path / "out" / "train.jsonl").read_text() == (tmp_path / "serial" / "train.jsonl").read_text()


def test_entry_layout(tmp_path):
    run(tmp_path, pairs=20)
    f = next((tmp_path / "cache").rglob("*.json"))
    header, body = f.read_bytes().split(b"\n", 1)
    data = json.loads(header)
    assert entry_path(tmp_path / "cache", data["key"]) == f and f.parent.name == data["key"][:2]
    assert set(data) == {"key", "sha256"} and hashlib.sha256(body).hexdigest() == data["sha256"]
    assert json.loads(body)["status"] in ("ok", "fail")


def test_real_compiler(tmp_path):
    """The real engine (skips only while `p2t_core.engine.compile_unit_source` does not exist)."""
    try:
        from p2t_core.engine import compile_unit_source  # noqa: F401
    except (ImportError, AttributeError):
        pytest.skip("p2t_core.engine.compile_unit_source is not available")
    fakes.reset()
    s = build(tmp_path / "out", pairs=24, workers=1, seed=3, verify_fn=fakes.fake_verify, use_plugins=False,
              progress=False, quiet=True)
    assert s.written + sum(s.failures.values()) == 24
    assert "no_compiler" not in s.failures
    assert s.written > 0
    for x in rows(tmp_path / "out")["train"]:
        assert "@triton.jit" in x["target"]


def test_units_come_from_the_plugins_hook():
    """The built-in plugins implement `p2t_example_units`; the pipeline takes units from the hook only."""
    from itertools import islice

    from p2t_core.plugins import default_plugins

    pm = default_plugins().pm
    impls = {pm.get_name(i.plugin) for i in pm.hook.p2t_example_units.get_hookimpls()}
    assert {"elementwise", "reduction", "matmul", "softmax"} <= impls
    units = list(islice(pipeline.iter_units(0, pm, chunk=32), 300))
    assert {u.family for u in units} == {"elementwise", "reduction", "matmul", "softmax", "norm", "loss",
                                         "multi_output"}
    assert units == list(islice(pipeline.iter_units(0, pm, chunk=32), 300))  # deterministic
