"""`p2t data build|stats`: the synthetic pair corpus (registered in the `p2t` CLI as the `data` group)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("data")
def data():
    """Build and inspect the (canonical Python, Triton module) pair corpus.

    \b
    Examples:
      p2t data build --out data/pairs --pairs 20000 --workers 8 --seed 0
      p2t data stats data/pairs
    """


@data.command("build")
@click.option("--out", "out_dir", default="data/pairs", show_default=True, type=click.Path(file_okay=False),
              help="Output directory (train/valid JSONL, manifest.json).")
@click.option("--pairs", default=1000, show_default=True, type=click.IntRange(1),
              help="Distinct renderings to attempt (written + failed).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0),
              help="Worker processes for compile+verify (0 or 1: in this process).")
@click.option("--seed", default=0, show_default=True, type=int, help="Generation seed (same seed, same corpus).")
@click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False),
              help="Content-addressed cache directory [default: OUT/cache].")
@click.option("--backend", default="interpret", show_default=True,
              type=click.Choice(["auto", "interpret", "cuda", "aot"]), help="Verifier backend.")
@click.option("--no-plugins", is_flag=True, help="Only the built-in generators (skip plugins' example hooks).")
@click.option("--heldout-from", "heldout_from", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An earlier build's manifest.json: hold out its op combinations (comparable validation splits "
                   "across corpus sizes) instead of choosing them for this corpus.")
@click.option("--families", default=None, metavar="F1,F2",
              help="Keep only units of these families (e.g. elementwise,multi_output) [default: all].")
@click.option("--min-ops", default=0, show_default=True, type=click.IntRange(0),
              help="Keep only units with at least this many distinct op kinds: a corpus of the long chains the "
                   "model fails most, to add to a training set.")
def build_cmd(out_dir, pairs, workers, seed, cache_dir, backend, no_plugins, heldout_from, families, min_ops):
    """Generate units, render them in six styles, compile and verify each pair, write the splits.

    \b
    Example:
      p2t data build --out data/pairs --pairs 5000 --workers 4 --seed 1 --cache ~/.cache/p2t-data
      p2t data build --out data/big --pairs 100000 --heldout-from data/pairs/manifest.json
      p2t data build --out data/long --pairs 20000 --families elementwise,multi_output --min-ops 7 \\
          --heldout-from data/pairs/manifest.json
    Interrupting loses nothing already verified: run the same command again to resume.
    """
    from p2t_core.data.generators import FAMILIES
    from p2t_core.data.pipeline import UnitFilter, build

    kept = tuple(f.strip() for f in families.split(",") if f.strip()) if families else ()
    for family in sorted(set(kept) - set(FAMILIES)):  # a plugin's family is fine; a typo would match nothing
        click.echo(f"warning: --families: {family!r} is not a built-in family ({', '.join(FAMILIES)}); "
                   "only a plugin's units can match it", err=True)
    heldout = None
    if heldout_from:
        try:
            heldout = json.loads(Path(heldout_from).read_text())["heldout_combinations"]
        except (ValueError, KeyError) as e:
            raise click.BadParameter(f"not a build manifest ({e})", param_hint="--heldout-from") from e
    try:
        summary = build(out_dir, pairs=pairs, workers=workers, seed=seed, cache_dir=cache_dir, backend=backend,
                        use_plugins=not no_plugins, heldout=heldout, keep=UnitFilter(kept, min_ops))
    except KeyboardInterrupt:
        click.echo("interrupted: verified pairs are cached; rerun the command to resume", err=True)
        sys.exit(130)
    if summary.written == 0:
        click.echo("error: no pair was written (see the failures above)", err=True)
        sys.exit(1)


@data.command("stats")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--tokenizer", default=None, type=click.Path(exists=True),
              help="tokenizer.json: lengths in tokens of the text the model is trained on, instead of bytes.")
def stats_cmd(data_dir, tokenizer):
    """Counts by split, family and style; failures; length percentiles (p50..p99, max).

    \b
    Example:
      p2t data stats data/pairs --tokenizer model/weights/tokenizer.json
    """
    from rich.console import Console

    from p2t_core.data.pipeline import stats

    Console().print(stats(data_dir, tokenizer))
