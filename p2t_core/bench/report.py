"""Rendering a benchmark run: the rich table, geometric-mean speedups, the issue's target checks, JSON, a plot."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from p2t_core.bench.harness import BenchRun, UnitResult

SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def geomean(values) -> float | None:
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _ok(r: UnitResult) -> bool:
    return r.status == "ok" and bool(r.agree)


def fused_units(results: list[UnitResult]) -> list[UnitResult]:
    """Fused elementwise and normalization units: those the suite tags "fused" (several eager kernels, one p2t
    kernel). A user file's units carry no tags, so this geomean and its target are n/a there."""
    return [r for r in results if "fused" in r.tags]


def summary(run: BenchRun) -> dict:
    ok = [r for r in run.results if _ok(r)]
    return {
        "geomean_vs_compile": geomean(r.speedup_vs_compile for r in ok),
        "geomean_vs_eager": geomean(r.speedup_vs_eager for r in ok),
        "geomean_vs_eager_fused": geomean(r.speedup_vs_eager for r in fused_units(ok)),
        "units": len(run.results),
        "ok": len(ok),
        "disagree": sum(1 for r in run.results if r.status == "ok" and r.agree is False),
        "failed": [r.name for r in run.results if r.status not in ("ok", "skipped")],
        "skipped": [r.name for r in run.results if r.status == "skipped"],
        "compile_failed": [r.name for r in run.results if r.compile_error],
    }


@dataclass
class Target:
    name: str
    status: str  # "met" | "missed" | "n/a"
    detail: str

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def targets(run: BenchRun) -> list[Target]:
    """The targets of issue 3, each met / missed / n/a (n/a: no unit of the kind ran). A unit that failed or
    disagreed counts as missing a target that covers it."""
    out: list[Target] = []
    res = run.results
    ran = [r for r in res if r.status != "skipped"]

    def check(name, units, good, describe):
        if not units:
            out.append(Target(name, "n/a", "no such unit ran"))
            return
        bad = [r for r in units if not (_ok(r) and good(r))]
        detail = "; ".join(describe(r) for r in (bad or units)[:6]) + (" …" if len(bad or units) > 6 else "")
        out.append(Target(name, "missed" if bad else "met", ("below: " if bad else "") + detail))

    memory = [r for r in ran if r.kind == "memory"]
    check("memory-bound units >= 0.90 of copy bandwidth", memory,
          lambda r: (r.frac.get("p2t") or 0) >= 0.90, lambda r: f"{r.name} {_fmt(r.frac.get('p2t'))}")
    check("memory-bound units none slower than 0.95x torch.compile",
          [r for r in memory if r.compile_ms is not None or r.status != "ok"],
          lambda r: (r.speedup_vs_compile or 0) >= 0.95, lambda r: f"{r.name} {_fmt(r.speedup_vs_compile)}x")
    check("matmul fp16/bf16 at 4096 >= 0.95 of cuBLAS",
          [r for r in ran if "matmul4096" in r.tags and r.dtype in ("float16", "bfloat16")],
          lambda r: (r.frac.get("p2t") or 0) >= 0.95, lambda r: f"{r.name} {_fmt(r.frac.get('p2t'))}")
    check("fused-epilogue matmul faster than eager", [r for r in ran if "fused_epilogue" in r.tags],
          lambda r: (r.speedup_vs_eager or 0) > 1.0, lambda r: f"{r.name} {_fmt(r.speedup_vs_eager)}x")
    s = summary(run)
    for name, key, goal in (("geomean speedup vs torch.compile >= 1.0", "geomean_vs_compile", 1.0),
                            ("geomean speedup vs eager on fused elementwise/normalization >= 2x",
                             "geomean_vs_eager_fused", 2.0)):
        v = s[key]
        if v is None:
            out.append(Target(name, "n/a", "no unit with both timings"))
        else:
            out.append(Target(name, "met" if v >= goal else "missed", f"{v:.2f}x"))
    return out


def to_json(run: BenchRun) -> dict:
    data = run.to_json()
    data["summary"] = summary(run)
    data["targets"] = [t.as_dict() for t in targets(run)]
    return data


def write_json(run: BenchRun, path: str) -> None:
    def clean(v):  # JSON has no inf / nan
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with open(path, "w") as f:
        json.dump(clean(to_json(run)), f, indent=2, sort_keys=False)
        f.write("\n")


# -- the table --------------------------------------------------------------------------------------------------

def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v >= 0.01 else f"{v:.4f}"


def render(run: BenchRun, console=None) -> None:
    """Print the table, the geometric means and the target checks."""
    import sys

    from rich.console import Console
    from rich.table import Table

    # A log (`| tee bench.log`) is not a terminal: give the table room instead of rich's 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    meta = run.meta
    title = (f"p2t bench on {meta.get('device')} — torch {meta.get('torch')}, triton {meta.get('triton')}"
             f"\nceilings: {run.ceilings.describe()}")
    table = Table(title=title, title_justify="left", show_lines=False)
    for col, justify in (("unit", "left"), ("family", "left"), ("dtype", "left"), ("shape", "left"),
                         ("p2t ms", "right"), ("eager ms", "right"), ("compile ms", "right"),
                         ("GB/s | TFLOP/s", "right"), ("of ceiling", "right"), ("of same-size copy", "right"),
                         ("vs eager", "right"),
                         ("vs compile", "right"), ("agree", "center")):
        table.add_column(col, justify=justify, overflow="fold")
    notes = []
    for r in run.results:
        if r.status != "ok":
            agree = "[red]✗[/]" if r.status != "skipped" else "[yellow]skip[/]"
            notes.append(f"{r.name}: {r.status}: {r.message}")
        else:
            agree = "[green]✓[/]" if r.agree else "[red]✗[/]"
            if not r.agree:
                notes.append(f"{r.name}: disagree: {r.message}")
        if r.compile_error:
            notes.append(f"{r.name}: torch.compile failed: {r.compile_error}")
        if r.kind == "matmul":
            rate = f"{_fmt(r.tflops.get('p2t'), '.1f')} TF"
        else:
            rate = f"{_fmt(r.gbps.get('p2t'), '.0f')} GB/s"
        frac = r.frac.get("p2t")
        table.add_row(r.name, r.family, SHORT.get(r.dtype, r.dtype), r.shape, _ms(r.p2t_ms), _ms(r.eager_ms),
                      _ms(r.compile_ms) if not r.compile_error else "[red]fail[/]", rate if r.p2t_ms else "-",
                      _fmt(frac), _fmt(r.frac_same.get("p2t")),
                      _fmt(r.speedup_vs_eager, ".2f") + ("x" if r.speedup_vs_eager else ""),
                      _fmt(r.speedup_vs_compile, ".2f") + ("x" if r.speedup_vs_compile else ""), agree)
    console.print(table)
    if meta.get("tiny"):
        console.print("[yellow]tiny mode: Triton interpreter / tiny shapes; the timings exercise the code path and "
                      f"mean nothing. torch.compile backend: {meta.get('compile_backend')}.[/]")
    if meta.get("compile_backend") == "none":
        console.print("[yellow]torch.compile skipped (--compile-backend none).[/]")
    for note in notes:
        console.print(f"  [dim]{note}[/]", highlight=False)
    s = summary(run)
    console.print(f"geomean speedup vs torch.compile: {_fmt(s['geomean_vs_compile'])}x; vs eager: "
                  f"{_fmt(s['geomean_vs_eager'])}x; vs eager on fused elementwise/normalization units: "
                  f"{_fmt(s['geomean_vs_eager_fused'])}x  ({s['ok']}/{s['units']} units ok and agreeing)")
    console.print("targets (issue 3)" + (" (tiny mode: not meaningful)" if meta.get("tiny") else "") + ":")
    for t in targets(run):
        color = {"met": "green", "missed": "red"}.get(t.status, "yellow")
        console.print(f"  [{color}]{t.status:>6}[/]  {t.name}: {t.detail}", highlight=False)


# -- the plot ---------------------------------------------------------------------------------------------------

def plot(run: BenchRun, path: str) -> None:
    """Per unit, the fraction of its ceiling reached by p2t, torch.compile and eager (horizontal bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in run.results if r.status == "ok"]
    names = [f"{r.name} ({'cuBLAS' if r.kind == 'matmul' else 'copy'})" for r in rows]
    fig_h = max(2.5, 0.42 * len(rows) + 1.6)
    fig, ax = plt.subplots(figsize=(11, fig_h))
    height = 0.27
    for k, (who, color) in enumerate((("p2t", "#1f77b4"), ("compile", "#ff7f0e"), ("eager", "#7f7f7f"))):
        ys = [i + (k - 1) * height for i in range(len(rows))]
        vals = [r.frac.get(who) or 0.0 for r in rows]
        ax.barh(ys, vals, height=height, color=color, label={"compile": "torch.compile"}.get(who, who))
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("fraction of ceiling (memory-bound: copy bandwidth; matmul: cuBLAS)")
    tiny = " [tiny CPU mode: meaningless numbers]" if run.meta.get("tiny") else ""
    ax.set_title(f"p2t bench on {run.meta.get('device')}{tiny}\nceilings: {run.ceilings.describe()}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
