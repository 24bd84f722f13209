"""`p2t bench`: benchmark translated units against eager PyTorch and torch.compile.

Also runnable as `python -m p2t_core.bench.cli ...` (what scripts/gpu_bench.sh does).
"""

from __future__ import annotations

import sys

import click

from p2t_core.errors import P2TError


def _fail(message: str, code: int = 2):
    click.echo(f"p2t: {message}", err=True)
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--suite", "suite_name", default="builtin", show_default=True, metavar="NAME",
              help="The built-in suite to run (ignored with FILE).")
@click.option("--only", metavar="SUBSTR[,SUBSTR...]", help="Only units whose name contains one of these.")
@click.option("--shapes", metavar="SPEC", help="FILE mode (required there): parameter shapes, e.g. x=4096x4096,w=4096.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="FILE mode: the dtype of the floating-point inputs.")
@click.option("--json", "json_out", metavar="OUT", type=click.Path(dir_okay=False),
              help="Write everything (results, ceilings, device, versions, targets) as JSON.")
@click.option("--plot", "plot_out", metavar="OUT.png", type=click.Path(dir_okay=False),
              help="Write a bar chart: fraction of ceiling per unit for p2t, torch.compile and eager.")
@click.option("--tiny", is_flag=True,
              help="CPU mode: tiny shapes, Triton interpreter (TRITON_INTERPRET=1), perf_counter timing, torch.compile "
                   "with backend 'eager'. Exercises the code path; the numbers mean nothing.")
@click.option("--no-autotune", is_flag=True, help="Translate with fixed launch configurations (no autotuning).")
@click.option("--compile-backend", metavar="NAME",
              help="torch.compile backend (default: inductor on CUDA, eager on CPU; 'none' skips torch.compile).")
@click.option("--budget", type=float, metavar="SECONDS",
              help="Report units not started within SECONDS as skipped (keeps a run inside a time limit).")
def bench(file, suite_name, only, shapes, dtype, json_out, plot_out, tiny, no_autotune, compile_backend, budget):
    """Benchmark p2t's kernels against eager PyTorch and torch.compile.

    Each unit is translated, run on fresh random inputs next to eager PyTorch and torch.compile (all three
    must agree), and timed with triton.testing.do_bench (median). Memory-bound units are reported in GB/s and
    as a fraction of the measured copy bandwidth; matmul units in TFLOP/s and as a fraction of cuBLAS. The
    issue's targets are checked at the end.

    \b
    Examples:
      p2t bench                                    # the built-in suite (needs CUDA)
      p2t bench --only softmax,rmsnorm --json bench.json --plot bench.png
      p2t bench examples/rmsnorm.py --shapes x=16384x4096 --dtype bfloat16
      p2t bench --tiny --only ew_chain,matmul_1024_fp16   # CPU: interpreter, tiny shapes
      python -m p2t_core.bench.cli --tiny --json /tmp/b.json
    Without CUDA, --tiny sets TRITON_INTERPRET=1 for this process (it must be set before triton is imported).
    """
    from p2t_core.bench import harness, report, suite

    if file:
        from p2t_core.engine import parse_shapes

        if not shapes:
            _fail("FILE mode needs --shapes (e.g. --shapes x=4096x4096,w=4096)")
        try:
            with open(file, encoding="utf-8") as f:
                source = f.read()
        except (OSError, UnicodeDecodeError) as e:
            _fail(f"cannot read {file}: {e}")
        try:
            units = harness.file_units(source, file, parse_shapes(shapes), dtype, only)
        except P2TError as e:
            _fail(str(e), e.exit_code)
    else:
        try:
            units = suite.select(suite.get_suite(suite_name), only)
        except KeyError as e:
            _fail(e.args[0])
    if not units:
        _fail("no unit matches" + (f" --only {only}" if only else ""))

    try:
        run = harness.run_bench(units, tiny=tiny, autotune=not no_autotune, compile_backend=compile_backend,
                                budget_s=budget, echo=lambda text: click.echo(text, err=True))
    except RuntimeError as e:
        _fail(str(e))
    report.render(run)
    if json_out:
        report.write_json(run, json_out)
        click.echo(f"p2t: wrote {json_out}", err=True)
    if plot_out:
        try:
            report.plot(run, plot_out)
            click.echo(f"p2t: wrote {plot_out}", err=True)
        except ImportError:
            click.echo("p2t: --plot needs matplotlib (pip install 'p2t[plot]'); no plot written", err=True)
    failed = [r for r in run.results if r.status not in ("ok", "skipped") or r.agree is False]
    if failed:
        _fail(f"{len(failed)} unit(s) failed or disagreed: {', '.join(r.name for r in failed)}", 1)


if __name__ == "__main__":
    bench()
