"""The `p2t` command line. Errors go to stderr as one line each, with exit code 2 for unusable input,
1 for a failed verification, and never a traceback."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from p2t_core.errors import P2TError, SourceError

BACKENDS = ("auto", "cuda", "interpret", "aot")


def fail(message: str, code: int = 2):
    click.echo(f"p2t: {message}", err=True)
    sys.exit(code)


def read_source(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(f"not UTF-8 text (byte {e.start})", path=path) from None


class CleanErrors(click.Group):
    """Turns P2TError into its one-line message and any other exception into a one-line internal error."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except P2TError as e:
            fail(str(e), e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except RecursionError:
            fail("input nested too deeply")
        except Exception as e:  # a bug in p2t: say so in one line, without a traceback
            fail(f"internal error ({type(e).__name__}: {e}); please report it with the input", 3)


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="p2t")
def main():
    """p2t: translate Python tensor functions into fast, verified Triton kernels.

    \b
    Example:
      p2t translate examples/activation.py -o activation_triton.py
    """


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-f", "--function", "unit", metavar="NAME", help="Translate only this unit (function or Module class).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the module here (default: stdout).")
@click.option("--engine", type=click.Choice(["auto", "compiler", "llm"]), default="auto", show_default=True,
              help="compiler; llm (the trained model); auto: compiler, then the LLM where the compiler refuses.")
@click.option("--no-verify", is_flag=True, help="Skip differential verification (the output is then unverified).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Where verification runs: cuda, interpret (CPU), aot (interpret + sm_90 compile).")
@click.option("--shapes", metavar="SPEC", help="Parameter shapes for ranks and verification, e.g. 'x=4x8x16,w=16'.")
@click.option("--dtypes", default="float32,float16,bfloat16", show_default=True, help="Dtypes to verify.")
@click.option("--skip-unsupported", is_flag=True, help="Translate what is supported; report the rest.")
@click.option("--seed", type=int, help="Seed of the verification inputs (default: fresh).")
@click.option("--no-autotune", is_flag=True, help="Fixed launch configurations (faster first call).")
@click.option("--candidates", "k", type=click.IntRange(1), default=4, show_default=True,
              help="LLM engine: candidates decoded per unit (the greedy one, then samples decoded together).")
def translate(file, unit, output, engine, no_verify, backend, shapes, dtypes, skip_unsupported, seed, no_autotune,
              k):
    """Translate the units of FILE into one Triton module.

    \b
    Examples:
      p2t translate examples/activation.py
      p2t translate examples/rmsnorm.py -f RMSNorm -o rmsnorm_triton.py --shapes x=8x4096
    The module goes to stdout (or -o); the verification report goes to stderr.
    """
    from p2t_core.engine import compile_units, parse_shapes
    from p2t_core.translate import verify_units

    source = read_source(file)
    shape_map = parse_shapes(shapes)
    if engine in ("llm", "auto"):
        from p2t_core.llm.cli import run_translate

        run_translate(source, file, unit=unit, engine=engine, output=output, no_verify=no_verify, backend=backend,
                      shapes=shape_map, dtypes=tuple(dtypes.split(",")), skip_unsupported=skip_unsupported,
                      seed=seed, autotune=not no_autotune, k=k)
        return
    start = time.perf_counter()
    result = compile_units(source, file, unit=unit, shapes=shape_map, autotune=not no_autotune)
    for err in result.errors:
        click.echo(f"p2t: {err}", err=True)
    if result.errors and not skip_unsupported:
        fail(f"{len(result.errors)} unit(s) not translated; nothing written (--skip-unsupported to write the rest)")
    if not result.units:
        fail("no unit could be translated")
    click.echo(f"p2t: translated {', '.join(u.name for u in result.units)} with the compiler engine "
               f"({sum(u.n_kernels for u in result.units)} kernel(s), {time.perf_counter() - start:.2f} s)", err=True)
    if not no_verify:
        ok = verify_units(source, result, backend=backend, dtypes=tuple(dtypes.split(",")), shapes=shape_map,
                          seed=seed, echo=lambda text: click.echo(text, err=True))
        if not ok:
            fail("verification failed; nothing written", 1)
    else:
        click.echo("p2t: verification skipped (--no-verify): the module is unverified", err=True)
    if output:
        Path(output).write_text(result.module_source)
        click.echo(f"p2t: wrote {output}", err=True)
    else:
        click.echo(result.module_source, nl=False)


@main.command()
@click.option("--plugin", "plugin_name", metavar="NAME", help="Run this plugin's validation cases.")
@click.option("--all", "run_all", is_flag=True, help="Run every plugin's cases.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the results as JSON.")
def validate(plugin_name, run_all, backend, json_out):
    """Run plugins' validation cases: translate, check the kernel count, verify.

    \b
    Examples:
      p2t validate --plugin softmax
      p2t validate --all --backend aot
    """
    from rich.console import Console
    from rich.table import Table

    from p2t_core.plugins import default_plugins
    from p2t_core.translate import run_validation

    plugins = default_plugins()
    if not run_all and not plugin_name:
        fail("give --plugin NAME or --all")
    names = plugins.names() if run_all else [plugin_name]
    for name in names:
        if plugins.plugin(name) is None:
            fail(f"no plugin named {name!r} (installed: {', '.join(plugins.names())})")
    table = Table(title=f"p2t validate ({backend})")
    for col in ("plugin", "case", "kernels", "result", "time", "detail"):
        table.add_column(col)
    rows, failed = [], 0
    with Console(stderr=True).status("validating...") as status:
        for name in names:
            for row in run_validation(plugins, name, backend=backend):
                status.update(f"validated {name}:{row['case']}")
                rows.append(row)
                failed += not row["passed"]
                table.add_row(name, row["case"], str(row["kernels"]), "[green]pass" if row["passed"] else "[red]FAIL",
                              f"{row['seconds']:.1f}s", row["detail"])
    Console().print(table)
    click.echo(f"{len(rows) - failed} passed, {failed} failed")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))
    sys.exit(1 if failed else 0)


@main.command("plugins")
def plugins_cmd():
    """List the installed plugins and the ops each registers.

    \b
    Example:
      p2t plugins
    """
    from rich.console import Console
    from rich.table import Table

    from p2t_core.plugins import default_plugins

    plugins = default_plugins()
    table = Table(title="p2t plugins")
    for col in ("plugin", "op", "kind", "Python spellings"):
        table.add_column(col)
    for op in sorted(plugins.registry.ops.values(), key=lambda o: (o.plugin, o.name)):
        table.add_row(op.plugin, op.name, op.kind, ", ".join(op.spellings))
    Console(width=160).print(table)


def _register_subcommands():
    """Commands that live beside their subsystems (verification, benchmarks, data pipeline, training)."""
    from p2t_model.cli import train

    from p2t_core.bench.cli import bench
    from p2t_core.data.cli import data
    from p2t_core.llm.cli import eval_cmd
    from p2t_core.repl import repl
    from p2t_core.suggest import suggest
    from p2t_core.verify_cli import verify_cmd

    for command in (verify_cmd, bench, data, train, eval_cmd, repl, suggest):
        main.add_command(command)


_register_subcommands()

if __name__ == "__main__":
    main()
