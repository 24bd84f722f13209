"""Click commands of the LLM engine: `p2t eval`, and `run_translate` for `p2t translate --engine llm|auto`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from p2t_core.errors import P2TError
from p2t_core.llm.engine import MAX_NEW_TOKENS

BACKENDS = ("auto", "cuda", "interpret", "aot")


def _fail(message: str, code: int = 2):
    click.echo(f"p2t: {message}", err=True)
    sys.exit(code)


def run_translate(source: str, file: str, *, unit=None, engine="auto", output=None, no_verify=False, backend="auto",
                  shapes=None, dtypes=("float32", "float16", "bfloat16"), skip_unsupported=False, seed=None,
                  autotune=True, weights=None, k=4) -> None:
    """`p2t translate` for --engine llm|auto. With auto and nothing refused, this is exactly the compiler
    path (the model is never loaded). LLM units are verified inside the engine (that is how a candidate is
    chosen), so --no-verify only skips verifying the compiler's units."""
    from p2t_core.llm.auto import translate_with_llm
    from p2t_core.translate import verify_units

    start = time.perf_counter()
    echo = lambda text: click.echo(text, err=True)  # noqa: E731
    result = translate_with_llm(source, file, unit, engine, weights_dir=weights, shapes=shapes, autotune=autotune,
                                k=k, backend=backend, verify_dtypes=dtypes, seed=seed, progress=echo)
    for u in result.failed:
        if u.compiler_error:
            echo(f"p2t: {u.compiler_error}")
        if u.llm_error and (u.llm_error != result.llm_unavailable or u is result.failed[0]):
            echo(f"p2t: {u.name}: {u.llm_error}" if not u.llm_error.startswith("the LLM") else f"p2t: {u.llm_error}")
    if result.failed and not skip_unsupported:
        _fail(f"{len(result.failed)} unit(s) not translated; nothing written (--skip-unsupported to write the rest)")
    if not result.translated:
        _fail("no unit could be translated")
    by_engine = {}
    for u in result.translated:
        by_engine.setdefault(u.engine, []).append(u.name)
    if set(by_engine) == {"compiler"}:
        comp = result.compiler
        echo(f"p2t: translated {', '.join(u.name for u in comp.units)} with the compiler engine "
             f"({sum(u.n_kernels for u in comp.units)} kernel(s), {time.perf_counter() - start:.2f} s)")
    else:
        echo("p2t: translated " + "; ".join(f"{', '.join(v)} with the {e} engine" for e, v in by_engine.items())
             + f" ({time.perf_counter() - start:.2f} s)")
        for u in result.translated:
            echo(f"p2t:   {u.describe()}")
    if result.compiler is not None and result.compiler.units and "compiler" in by_engine:
        if not no_verify:
            ok = verify_units(source, result.compiler, backend=backend, dtypes=tuple(dtypes), shapes=shapes,
                              seed=seed, echo=echo)
            if not ok:
                _fail("verification failed; nothing written", 1)
        else:
            echo("p2t: verification skipped (--no-verify): the module is unverified")
    if output:
        Path(output).write_text(result.module_source)
        echo(f"p2t: wrote {output}")
    else:
        click.echo(result.module_source, nl=False)


def _print_summary(res: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    k = res["k"]
    con = Console(stderr=True)
    t = Table(title=title)
    for col in ("group", "n", "pass@1", "95% CI", f"pass@{k}", "95% CI "):
        t.add_column(col)

    def row(name, b):
        p1, pk = b["pass@1"], b[f"pass@{k}"]
        t.add_row(name, str(p1["n"]), f"{p1['rate']:.3f}", f"[{p1['ci95'][0]:.3f}, {p1['ci95'][1]:.3f}]",
                  f"{pk['rate']:.3f}" if pk["n"] else "-", f"[{pk['ci95'][0]:.3f}, {pk['ci95'][1]:.3f}]")

    row("all", res)
    for f, b in res["by_family"].items():
        row(f"family {f}", b)
    for s, b in res["by_style"].items():
        row(f"style {s}", b)
    con.print(t)
    f = res["failures"]
    con.print("failures (all candidates): " + ", ".join(f"{s} {n}" for s, n in f["all_candidates"].items()))
    con.print("failures (greedy): " + ", ".join(f"{s} {n}" for s, n in f["greedy"].items()))
    a = res["auto"]
    share = a["rescued_share_of_units"]
    con.print(f"--engine auto: the compiler refuses {a['compiler_refused']} of {a['measured']} unit(s); the LLM "
              f"rescues {a['rescued_by_llm']} ({share['rate']:.3f} of all units, 95% CI "
              f"[{share['ci95'][0]:.3f}, {share['ci95'][1]:.3f}])")
    if "well_posed" in res:
        w = res["well_posed"]
        p1 = w["pass@1"]
        ill = f" (ill-posed: {', '.join(w['ill_posed'])})" if w["ill_posed"] else ""
        con.print(f"well-posed rows: {w['rows']} of {res['rows']}{ill}; pass@1 on them {p1['rate']:.3f} "
                  f"[{p1['ci95'][0]:.3f}, {p1['ci95'][1]:.3f}]")
    if "decode_s" in res:
        con.print(f"time: decoding {res['decode_s']:.1f} s, checking and verifying {res['verify_s']:.1f} s")


@click.command("eval")
@click.option("--weights", type=click.Path(file_okay=False), help="Weights directory (default: the shipped ones).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data", show_default=True,
              help="Directory of JSONL splits from `p2t data build`.")
@click.option("--split", type=click.Choice(["valid_random", "valid_compositional", "train"]), default="valid_random",
              show_default=True)
@click.option("--k", type=int, default=4, show_default=True, help="k of pass@k.")
@click.option("--samples", type=int, help="Candidates decoded per unit (>= k; default k).")
@click.option("--limit", type=int, help="A random sample of N rows of the split (seeded by --seed, in file order).")
@click.option("--style", "styles", multiple=True,
              help="Keep only rows of this rendering style (repeatable), picked from the --limit sample, so the "
                   "rows pair with a run without --style.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the full results as JSON here.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Verification backend (auto: cuda on a GPU, else aot = interpret + sm_90 compile).")
@click.option("--dtypes", default="float32", show_default=True, help="Dtypes to verify each candidate in.")
@click.option("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, show_default=True)
@click.option("--temperature", type=float, default=0.8, show_default=True)
@click.option("--top-p", type=float, default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", help="torch device for decoding (default: cuda if available).")
@click.option("--batch", "decode_batch", type=int, default=16, show_default=True,
              help="Units decoded together: their greedy candidates in one batch, their samples in another.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Units verified at a time (each verification is its own worker process).")
@click.option("--no-rescue", is_flag=True, help="Skip measuring what --engine auto gains (no compiler runs).")
@click.option("--compare-quantized", is_flag=True, help="Also evaluate the int8 quantization of --weights.")
@click.option("--failures", "failures_out", type=click.Path(dir_okay=False),
              help="Write each unit whose greedy candidate failed here (JSONL): the stage and message, the model's "
                   "prompt, and a diff of its candidate against the target.")
@click.option("--check-targets", is_flag=True,
              help="Also verify each row's target (the compiler's kernel) on the same inputs; rows whose target "
                   "fails are ill-posed and pass@1 is also reported without them.")
def eval_cmd(weights, data_dir, split, k, samples, limit, styles, json_out, backend, dtypes, max_new_tokens,
             temperature, top_p, seed, device, decode_batch, jobs, no_rescue, compare_quantized, failures_out,
             check_targets):
    """Verified pass@1 (greedy) and pass@k of the LLM engine on a data split.

    \b
    Examples:
      p2t eval --data data --split valid_compositional --k 4 --json eval.json
      p2t eval --weights runs/50m/latest --limit 50 --backend aot --compare-quantized
      p2t eval --limit 64 --k 1 --temperature 0 --failures failed.jsonl
    Every candidate goes through grammar → semantics → compile → verification; the table gives Wilson 95%
    intervals per family and style, where failures stopped, and the share of units --engine auto gains.
    """
    from p2t_core.llm.engine import LLMEngine
    from p2t_core.llm.evaluate import compare_quantized as compare
    from p2t_core.llm.evaluate import evaluate, failure_report, read_split

    if k < 1 or (samples is not None and samples < k):
        raise click.BadParameter("need k >= 1 and --samples >= k")
    from p2t_core.verify import interpreter_problem, resolve_backend

    if resolve_backend(backend) in ("interpret", "aot"):
        if problem := interpreter_problem():  # before decoding: every verdict would be a false failure
            raise P2TError(problem)
    rows = read_split(data_dir, split, limit, seed=seed)
    if styles:
        rows = [r for r in rows if r.get("style") in styles]
    if not rows:
        raise P2TError(f"{data_dir}/{split}.jsonl has no rows" + (f" of style {', '.join(styles)}" if styles else ""))
    kw = dict(k=k, samples=samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
              backend=backend, verify_dtypes=tuple(dtypes.split(",")), seed=seed, rescue=not no_rescue,
              decode_batch=decode_batch, jobs=jobs, check_targets=check_targets)
    engine = LLMEngine(weights, device)
    engine.decoder  # load now: a missing model is an error before any progress bar  # noqa: B018
    with click.progressbar(length=len(rows), label=f"p2t eval {split}", file=sys.stderr) as bar:
        res = evaluate(engine, rows, progress=bar.update, keep_texts=bool(failures_out),
                       log=lambda line: click.echo(f"\np2t eval: {line}", err=True), **kw)
    if failures_out:
        failed = failure_report(rows, res["per_row"], engine.pair_format)
        Path(failures_out).write_text("".join(json.dumps(f) + "\n" for f in failed))
        click.echo(f"p2t: wrote {len(failed)} failed unit(s) to {failures_out}", err=True)
    res.update(split=split, data=str(data_dir), weights=str(weights or "shipped"), backend=backend)
    cut = f", interrupted after {res['rows']}" if res["interrupted"] else ""
    _print_summary(res, f"p2t eval: {split} ({len(rows)} units{cut}, k={k})")
    out = res
    if compare_quantized:
        if weights is None:
            from p2t_core.llm.engine import default_weights_dir

            weights = default_weights_dir()
        cmp = compare(weights, rows, device=device, **kw)
        click.echo(f"p2t: pass@1 unquantized {cmp['unquantized']['pass@1']['rate']:.3f}, int8 "
                   f"{cmp['quantized']['pass@1']['rate']:.3f} (delta {cmp['pass@1_delta']:+.3f})", err=True)
        out = {**res, "compare_quantized": {"quantized": cmp["quantized"], "pass@1_delta": cmp["pass@1_delta"]}}
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1, default=str))
        click.echo(f"p2t: wrote {json_out}", err=True)
