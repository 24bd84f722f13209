"""Verified pass@1 / pass@k of the LLM engine on a data split, with Wilson 95% intervals, per family and
style, where each failing candidate stopped, and the share of units `--engine auto` gains from the LLM
(units the compiler refuses whose LLM candidate verifies)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from p2t_core.llm.engine import MAX_NEW_TOKENS, STAGES, LLMEngine, check_and_verify
from p2t_core.llm.pairform import model_target, prompt_unit, restore

__all__ = ["pass_at_k", "wilson", "read_split", "row_unit", "evaluate", "compare_quantized", "failure_report",
           "training_eval_fn"]

SPLITS = ("valid_random", "valid_compositional", "train")
_HELPER_STATE = re.compile(r"^_P2T_\w+ = .*\n+", re.M)  # module state that `restore` adds beside the helpers


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may be fractional: a sum of pass@k estimates)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def read_split(data_dir: str | Path, split: str, limit: int | None = None, seed: int = 0) -> list[dict]:
    """The split's rows; with `limit`, a random sample of that many (seeded, in file order): the files are
    grouped (the compositional split by op pair), so their first rows are no sample."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.exists():
        from p2t_core.errors import P2TError

        raise P2TError(f"{path}: no such split (build one with `p2t data build`)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not limit or limit >= len(rows):
        return rows
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), limit))]


def row_unit(row: dict) -> str:
    """The unit a pair is about: the last top-level function or class of its prompt."""
    return prompt_unit(row["prompt"])


def row_signature(row: dict, unit: str):
    """The unit's signature with the tensor ranks the pair was built and verified with (`row["ranks"]`, in
    parameter order): without them the frontend assumes its default rank, on which e.g. a softmax over
    dim=2 of a 3-D input cannot run."""
    from p2t_core.llm.prompt import unit_signature

    source = row_reference(row)
    sig = unit_signature(source, unit, "<eval>")
    ranks = row.get("ranks") or []
    if len(ranks) == len(sig.tensor_params) and [len(p.dims) for p in sig.tensor_params] != ranks:
        names = [p.name for p in sig.tensor_params]
        sig = unit_signature(source, unit, "<eval>", ranks=dict(zip(names, ranks, strict=True)))
    return sig


def row_reference(row: dict) -> str:
    """The Python the pair was verified against when it was built (a NumPy rendering's torch twin; rows built
    before the `reference` field: the source)."""
    return row.get("reference") or row["source"]


def target_candidate(row: dict, unit: str, pair_format: int) -> str:
    """The candidate of a model that writes the row's target exactly: its text form (no header, no library helpers)
    restored like every decoded candidate, so the target is judged as a correct candidate would be."""
    return restore(model_target(row["target"], unit, row["prompt"], pair_format), unit, row["prompt"], pair_format)


def _stat(values: list[float]) -> dict:
    n = len(values)
    s = sum(values)
    lo, hi = wilson(s, n)
    return {"n": n, "rate": s / n if n else 0.0, "ci95": [lo, hi]}


def evaluate(engine: LLMEngine, rows: Sequence[dict], *, k: int = 4, samples: int | None = None,
             temperature: float = 0.8, top_p: float = 0.95, max_new_tokens: int = MAX_NEW_TOKENS,
             backend: str = "auto", verify_dtypes: Sequence[str] = ("float32",), timeout_s: float = 60.0, seed: int = 0,
             rescue: bool = True, progress: Callable[[int], None] | None = None, decode_batch: int = 16,
             jobs: int = 1, keep_texts: bool = False, log: Callable[[str], None] | None = None,
             check_targets: bool = False) -> dict:
    """Decode `samples` (>= k; default k) candidates per row (greedy + sampled), send every one through the
    chain, and aggregate. `rescue`: also run the compiler on each row's source to measure what auto gains.
    With `decode_batch` > 1, rows are decoded that many at a time: their greedy candidates in one left-padded batch,
    then their samples in another (each row's prompt `samples - 1` times). All rows are decoded first; then `jobs`
    rows are checked and verified at a time (each verification is a process).
    `keep_texts`: each row's record also holds its greedy candidate (`greedy_text`), for `failure_report`.
    `log` gets a line per decoded batch (decoding comes before any verification, and `progress` counts only
    verified rows); the result says how the time split between the two (`decode_s`, `verify_s`).
    `check_targets`: also verify each row's target (the compiler's module) on the greedy candidate's inputs
    (`target_ok`, and `target_message` where it fails): a row whose target fails is ill-posed on those inputs (a
    correct kernel fails there too), and `summarize` also reports pass@1 without such rows (`well_posed`)."""
    n_samples = max(k, samples or k)
    per_row = []
    t0 = time.perf_counter()
    setup: dict[int, tuple] = {}  # row index -> (unit, signature), or (None, why) where the row cannot be set up
    for i, row in enumerate(rows):
        try:
            unit = row_unit(row)
            setup[i] = (unit, row_signature(row, unit))
        except Exception as e:  # noqa: BLE001 - a row we cannot even set up counts as a failure, with why
            setup[i] = (None, f"{type(e).__name__}: {e}"[:300])

    def ranks(i: int) -> list[int]:
        return [len(p.dims) for p in setup[i][1].tensor_params]

    ready = [i for i in range(len(rows)) if setup[i][0] is not None]
    candidates: dict[int, list[str]] = {}  # row index -> its candidate modules, greedy first
    if decode_batch > 1:  # decode_batch units a batch: their greedy candidates, then their samples
        by_length = sorted(ready, key=lambda i: len(rows[i]["prompt"]))  # little padding per batch
        for b in range(0, len(by_length), decode_batch):
            idx = by_length[b:b + decode_batch]
            units = [(rows[i]["prompt"], setup[i][0], ranks(i)) for i in idx]
            texts = engine.batch_candidates(units, max_new_tokens=max_new_tokens)
            candidates.update((i, [t]) for i, t in zip(idx, texts, strict=True))
            if n_samples > 1:
                texts = engine.batch_candidates([u for u in units for _ in range(n_samples - 1)],
                                                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                                seed=seed + b)
                for j, i in enumerate(idx):
                    candidates[i] += texts[j * (n_samples - 1):(j + 1) * (n_samples - 1)]
            if log:
                log(f"decoded {len(candidates)}/{len(ready)} units ({time.perf_counter() - t0:.1f} s)")
    for i in ready:
        if i not in candidates:
            candidates[i] = engine.candidates(rows[i]["prompt"], setup[i][0], ranks(i), k=n_samples,
                                              temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                              seed=seed + i)
    decode_s = time.perf_counter() - t0
    pair_format = engine.pair_format if check_targets else None

    def judge(i: int) -> dict:
        """Row i's record: every candidate through the chain (verification runs in its own worker process)."""
        row = rows[i]
        rec = {"id": row.get("id", row.get("hash", str(i))), "family": row.get("family", "?"),
               "style": row.get("style", "?")}
        unit, sig = setup[i]
        if unit is None:
            rec.update(unit=None, n=n_samples, c=0, greedy_ok=False, stages=["setup"] * n_samples,
                       message=sig, compiler_refused=None, auto_ok=False)
            if check_targets:
                rec["target_ok"] = None
            return rec

        def verdict(text: str, index: int) -> tuple[str | None, str]:
            o, _, _ = check_and_verify(text, reference_source=row_reference(row), path="<eval>", unit=unit,
                                       signature=sig, backend=backend, verify_dtypes=verify_dtypes,
                                       timeout_s=timeout_s, seed=seed, index=index)
            return o.stage, o.first_message if o.stage else ""

        verdicts: dict[str, tuple[str | None, str]] = {}
        stages = []
        for j, text in enumerate(candidates[i]):
            key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            if key not in verdicts:
                verdicts[key] = verdict(text, j)
            stages.append(verdicts[key][0])
        c = sum(s is None for s in stages)
        rec.update(unit=unit, n=len(stages), c=c, greedy_ok=bool(stages) and stages[0] is None,
                   stages=stages, message=next((m for s, m in verdicts.values() if s), ""))
        if keep_texts:
            rec["greedy_text"] = candidates[i][0]
        if check_targets:
            stage, message = verdict(target_candidate(row, unit, pair_format), 0)  # the candidates' inputs (seed)
            rec["target_ok"] = stage is None
            if stage:
                rec["target_message"] = message
        rec["auto_ok"] = any(s is None for s in stages[:k])
        rec["compiler_refused"] = None
        if rescue:
            from p2t_core.engine import compile_units

            try:
                comp = compile_units(row["source"], "<eval>", unit=unit)
                rec["compiler_refused"] = not comp.units
            except Exception:  # noqa: BLE001 - any refusal (parse errors included)
                rec["compiler_refused"] = True
        return rec

    # Rows in order, `jobs` verifier workers at a time. An interrupt (Ctrl-C, a time-boxed job's `timeout -s INT`)
    # ends the evaluation with the rows verified so far, a prefix of `rows`: the result says so, and two
    # evaluations cut at different rows still compare on their common prefix (scripts/compare_evals.py).
    pool = ThreadPoolExecutor(max(1, jobs))
    interrupted = False
    try:
        for rec in pool.map(judge, range(len(rows))):
            per_row.append(rec)
            if progress:
                progress(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    result = summarize(per_row, k, time.perf_counter() - t0)
    result.update(decode_s=decode_s, verify_s=result["seconds"] - decode_s, interrupted=interrupted,
                  rows_planned=len(rows))
    return result


def summarize(per_row: list[dict], k: int, seconds: float = 0.0) -> dict:
    def block(recs):
        ok = [r for r in recs if r["n"] >= k]
        return {"pass@1": _stat([float(r["greedy_ok"]) for r in recs]),
                f"pass@{k}": _stat([pass_at_k(r["n"], r["c"], k) for r in ok])}

    by_family, by_style = defaultdict(list), defaultdict(list)
    for r in per_row:
        by_family[r["family"]].append(r)
        by_style[r["style"]].append(r)
    stops, greedy_stops = Counter(), Counter()
    for r in per_row:
        for j, s in enumerate(r["stages"]):
            if s is not None:
                stops[s] += 1
                if j == 0:
                    greedy_stops[s] += 1
    refused = [r for r in per_row if r.get("compiler_refused")]
    rescued = [r for r in refused if r["auto_ok"]]
    measured = [r for r in per_row if r.get("compiler_refused") is not None]
    checked = [r for r in per_row if r.get("target_ok") is not None]  # evaluate(check_targets=True)
    posed = [r for r in checked if r["target_ok"]]
    well_posed = {"well_posed": {"rows": len(posed), "ill_posed": [r["id"] for r in checked if not r["target_ok"]],
                                 "pass@1": _stat([float(r["greedy_ok"]) for r in posed])}} if checked else {}
    return {
        "k": k, "rows": len(per_row), "seconds": seconds,
        **block(per_row),
        "by_family": {f: block(rs) for f, rs in sorted(by_family.items())},
        "by_style": {s: block(rs) for s, rs in sorted(by_style.items())},
        "failures": {"all_candidates": {s: stops.get(s, 0) for s in (*STAGES, "setup")},
                     "greedy": {s: greedy_stops.get(s, 0) for s in (*STAGES, "setup")}},
        "auto": {"measured": len(measured), "compiler_refused": len(refused), "rescued_by_llm": len(rescued),
                 "rescued_share_of_units": _stat([float(r in rescued) for r in measured]),
                 "rescued_share_of_refusals": _stat([float(r["auto_ok"]) for r in refused])},
        **well_posed,
        "per_row": [{kk: v for kk, v in r.items()} for r in per_row],
    }


def compare_quantized(weights_dir: str | Path, rows: Sequence[dict], *, device: str | None = None, **kw) -> dict:
    """Greedy pass@1 of the unquantized checkpoint vs its int8 quantization (made in a temporary directory)."""
    from p2t_model.quantize import quantize_checkpoint

    full = evaluate(LLMEngine(weights_dir, device), rows, **kw)
    with tempfile.TemporaryDirectory(prefix="p2t-int8-") as tmp:
        qdir = quantize_checkpoint(weights_dir, Path(tmp) / "int8")
        quant = evaluate(LLMEngine(qdir, device), rows, **kw)
    return {"unquantized": full, "quantized": quant,
            "pass@1_delta": quant["pass@1"]["rate"] - full["pass@1"]["rate"]}


def training_eval_fn(data_dir: str | Path, units: int, *, backend: str = "auto", jobs: int = 1, seed: int = 0,
                     decode_batch: int = 16) -> Callable:
    """An `eval_fn` for `p2t_model.train.train`: at each evaluation, the verified greedy pass@1 of the model as it is
    at that step on the same `units` seeded rows of each held-out split (`pass_valid_random`, ...), through the
    whole post-processor chain, so a run's log shows what its loss curve is worth."""
    from p2t_core.llm.engine import ModelDecoder

    samples = {s: read_split(data_dir, s, units, seed) for s in SPLITS[:2] if (Path(data_dir) / f"{s}.jsonl").exists()}

    def eval_fn(model, tokenizer, step: int) -> dict:
        engine = LLMEngine(decoder=ModelDecoder(model, tokenizer))
        out = {}
        for split, rows in samples.items():
            if rows:
                res = evaluate(engine, rows, k=1, samples=1, temperature=0.0, backend=backend, seed=seed,
                               rescue=False, jobs=jobs, decode_batch=decode_batch)
                out[f"pass_{split}"] = res["pass@1"]["rate"]
        return out

    return eval_fn


def failure_report(rows: Sequence[dict], per_row: Sequence[dict], pair_format: int) -> list[dict]:
    """One record per row whose greedy candidate failed (`evaluate(..., keep_texts=True)`): where it stopped, the
    prompt the model read, and a unified diff of what it wrote against the row's target, both in the model's text
    form (no header, no library helpers, the canonical unit name) so the diff shows the model's mistakes. The
    target is the compiler's output when the split was built: launcher lines that the compiler has changed since
    differ too."""
    import difflib

    from p2t_core.llm.pairform import model_prompt, model_target

    out = []
    for row, rec in zip(rows, per_row, strict=True):
        if rec["greedy_ok"] or "greedy_text" not in rec:
            continue
        unit = rec["unit"]
        wrote, want = (model_target(_HELPER_STATE.sub("", t), unit, row["prompt"], pair_format)
                       for t in (rec["greedy_text"], row["target"]))
        diff = difflib.unified_diff(want.splitlines(), wrote.splitlines(), "target", "greedy candidate",
                                    lineterm="", n=1)
        out.append({"id": rec["id"], "family": rec["family"], "style": rec["style"], "stage": rec["stages"][0],
                    "message": rec["message"],
                    "prompt": model_prompt(row["prompt"], unit, row.get("ranks") or [], pair_format),
                    "diff": "\n".join(diff), "candidate": rec["greedy_text"]})
    return out
