"""`p2t verify CANDIDATE.py --reference SRC.py`: check a Triton module against the Python it replaces.

The candidate is any module in the generated-module contract (DESIGN.md): written by hand, by another
tool, or by p2t itself. Flow:

1. the unit: `-f NAME`, or the only unit (top-level function or `torch.nn.Module` class) of SRC.py;
2. unless `--trusted`, the static gates of `p2t_core.postprocess.check_candidate` on the candidate's raw
   text, BEFORE any of it is imported or run: grammar (the allowed module subset), then semantics (allowed
   imports/names/attributes, no dunders, no monkeypatching, kernel launches matching kernel signatures,
   the math in Triton kernels); then (always) a static signature check: the unit exists in the candidate
   with the reference's parameter names (Module classes: `__init__` and `forward`);
3. the unit's signature (tensor ranks, size variables, scalars), from the compiler's frontend on the
   REFERENCE: the full compiler first, the frontend alone if the compiler refuses the unit, and `--shapes`
   as the last resort (each tensor parameter gets its own size variables, bound to the given sizes);
4. `p2t_core.verify.verify`: differential testing in a separate worker process (fresh temp cwd and HOME,
   an environment reduced to PATH/LANG/PYTHONPATH/TRITON_*, a new session, `--timeout` seconds per step
   after the imports (a hang is killed), an address-space limit (RLIMIT_AS) of `--memory-mb` MiB above
   the worker's imports), random inputs inside guard bands, poisoned outputs, several
   shapes/dtypes/layouts. A crash or timeout fails the case; the rest run in a fresh worker.

Exit codes: 0 every check passed; 1 a check failed or the candidate was rejected; 2 unusable input
(missing file, unknown unit, syntax error in the reference, bad --shapes). Errors are one line on stderr.

`--trusted` skips step 3: the candidate's code then RUNS (in the worker only, never in this process),
contained by the process limits alone (timeout, memory limit, clean environment, temp cwd). It is not a
filesystem or network jail: trusted code can read and write whatever your user can.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import click

from p2t_core.errors import P2TError

__all__ = ["verify_cmd", "main", "UsageProblem"]

BACKENDS = ("auto", "cuda", "interpret", "aot")
DTYPES = ("float32", "float16", "bfloat16", "float64")


class UsageProblem(Exception):
    """Unusable input: exit code 2, one line."""


class Rejected(Exception):
    """The candidate failed a static gate: exit code 1."""

    def __init__(self, stage: str, messages: list[str]):
        super().__init__(stage)
        self.stage, self.messages = stage, list(messages)


# ------------------------------------------------------------------------------------------------ reading


def _read_text(path: str, what: str) -> str:
    p = Path(path)
    if not p.exists():
        raise UsageProblem(f"{what} {path}: no such file")
    if p.is_dir():
        raise UsageProblem(f"{what} {path}: is a directory")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UsageProblem(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageProblem(f"{what} {path} is not UTF-8 text (byte {e.start})") from None


def _parse_reference(source: str, path: str) -> ast.Module:
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as e:
        raise UsageProblem(f"{path}:{e.lineno or 0}:{e.offset or 0}: syntax error in the reference: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise UsageProblem(f"{path}: cannot parse the reference ({type(e).__name__})") from None


def _is_module_class(node: ast.ClassDef) -> bool:
    for b in node.bases:
        text = ast.unparse(b)
        if text == "Module" or text.endswith(".Module"):
            return True
    return False


def reference_units(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.ClassDef]:
    """The translation units of a reference file: public top-level functions and nn.Module classes."""
    units: dict[str, ast.FunctionDef | ast.ClassDef] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and not stmt.name.startswith("_"):
            units[stmt.name] = stmt
        elif isinstance(stmt, ast.ClassDef) and _is_module_class(stmt):
            units[stmt.name] = stmt
    return units


def pick_unit(units: dict, name: str | None, path: str) -> str:
    if name:
        if name not in units:
            listed = ", ".join(units) or "none"
            raise UsageProblem(f"{path}: no unit named {name!r} (units in this file: {listed})")
        return name
    if len(units) == 1:
        return next(iter(units))
    if not units:
        raise UsageProblem(f"{path}: no translation unit (a top-level function or an nn.Module class)")
    raise UsageProblem(f"{path} has {len(units)} units ({', '.join(units)}); choose one with -f NAME")


# ------------------------------------------------------------------------------------------------ signature


def parse_shape_spec(spec: str | None) -> dict[str, tuple[int, ...]]:
    """`x=4x8,w=8` -> {"x": (4, 8), "w": (8,)}; `s=` is a 0-d tensor."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (spec or "").replace(" ", "").split(",")):
        name, eq, dims = item.partition("=")
        if not eq or not name.isidentifier():
            raise UsageProblem(f"bad --shapes item {item!r}; expected NAME=4x8 (comma-separated)")
        try:
            sizes = tuple(int(d) for d in dims.split("x")) if dims else ()
        except ValueError:
            raise UsageProblem(f"bad --shapes item {item!r}; sizes are integers joined by 'x', e.g. x=4x8") from None
        if any(s < 0 for s in sizes):
            raise UsageProblem(f"bad --shapes item {item!r}; sizes must be >= 0")
        if name in shapes:
            raise UsageProblem(f"--shapes gives {name} twice")
        shapes[name] = sizes
    return shapes


def _scalar_kind(annotation: ast.expr | None, default: ast.expr | None):
    ann = ast.unparse(annotation) if annotation is not None else None
    value = None
    if default is not None:
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError, TypeError, RecursionError):
            value = None
    if ann in ("int", "float", "bool"):
        return ann, value if isinstance(value, int | float | bool) else None
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int | float):
        return ("int" if isinstance(value, int) else "float"), value
    return None


def signature_from_shapes(node: ast.FunctionDef | ast.ClassDef, shapes: dict[str, tuple[int, ...]]):
    """A Signature read from the reference's def and --shapes alone (when the frontend cannot infer one)."""
    from p2t_core.signature import InitArg, ScalarParam, Signature, TensorParam

    def params_of(fn: ast.FunctionDef, skip_self: bool):
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise UsageProblem(f"{fn.name}: '*', '**' and keyword-only parameters are not supported")
        args = a.args[1:] if skip_self else a.args
        defaults = [None] * (len(args) - len(a.defaults)) + list(a.defaults)
        return list(zip(args, defaults[-len(args):] if args else [], strict=True))

    init_args = []
    if isinstance(node, ast.ClassDef):
        methods = {s.name: s for s in node.body if isinstance(s, ast.FunctionDef)}
        if "forward" not in methods:
            raise UsageProblem(f"class {node.name} has no forward method")
        fn = methods["forward"]
        for arg, default in params_of(methods["__init__"], True) if "__init__" in methods else []:
            kind = _scalar_kind(arg.annotation, default)
            if arg.arg in shapes and len(shapes[arg.arg]) == 1:
                init_args.append(InitArg(arg.arg, "int", shapes[arg.arg][0]))
            elif kind is not None and (kind[1] is not None or default is None):
                init_args.append(InitArg(arg.arg, kind[0], kind[1]))
            else:
                raise UsageProblem(f"{node.name}.__init__ argument {arg.arg!r}: give its value with --shapes "
                                   f"{arg.arg}=N or a scalar default")
        params_list = params_of(fn, True)
    else:
        params_list = params_of(node, False)
    params, bindings = [], {}
    for arg, default in params_list:
        if arg.arg in shapes:
            dims = tuple(f"{arg.arg}_{i}" for i in range(len(shapes[arg.arg])))
            bindings.update(zip(dims, shapes[arg.arg], strict=True))
            params.append(TensorParam(arg.arg, dims))
            continue
        kind = _scalar_kind(arg.annotation, default)
        if kind is None:
            raise UsageProblem(f"the shape of tensor parameter {arg.arg!r} is unknown; give it with --shapes "
                               f"{arg.arg}=4x8")
        params.append(ScalarParam(arg.arg, kind[0], kind[1]))
    unknown = set(shapes) - {p.name for p in params} - {a.name for a in init_args}
    if unknown:
        raise UsageProblem(f"--shapes names {', '.join(sorted(unknown))}, not parameters of {node.name}")
    kind = "module" if isinstance(node, ast.ClassDef) else "function"
    return Signature(unit=node.name, kind=kind, params=tuple(params), init_args=tuple(init_args)), bindings


def infer_signature(ref_source: str, ref_path: str, unit: str, node, shapes: dict[str, tuple[int, ...]]):
    """(signature, how, note): from the compiler, else the frontend alone, else --shapes."""
    ranks = {k: v for k, v in shapes.items()}
    notes = []
    try:
        from p2t_core.engine import compile_units

        t = compile_units(ref_source, ref_path, unit=unit, shapes=ranks or None, keep_going=False)
        return t.units[0].signature, "compiler", None
    except P2TError as e:
        notes.append(f"compiler: {e}")
    except Exception as e:  # a compiler bug must not stop the verification: fall back
        notes.append(f"compiler: internal error {type(e).__name__}")
    try:
        from p2t_core.frontend import build_unit, parse_file
        from p2t_core.plugins import default_plugins

        parsed = parse_file(ref_source, ref_path)
        _graph, sig = build_unit(parsed, parsed.unit(unit), default_plugins().registry,
                                 ranks={k: len(v) for k, v in shapes.items()})
        return sig, "frontend", notes[0]
    except P2TError as e:
        notes.append(f"frontend: {e}")
    except Exception as e:
        notes.append(f"frontend: internal error {type(e).__name__}")
    if not shapes:
        raise UsageProblem(f"cannot infer the signature of {unit} from the reference ({notes[-1]}); "
                           "give every tensor parameter's shape with --shapes x=4x8,w=8")
    sig, _bindings = signature_from_shapes(node, shapes)
    return sig, "shapes", "; ".join(notes)


def shape_bindings(sig, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    from p2t_core.signature import TensorParam
    from p2t_core.translate import bindings_from_shapes

    names = {p.name for p in sig.params} | {a.name for a in sig.init_args}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise UsageProblem(f"--shapes names {', '.join(unknown)}, not parameters of {sig.unit}")
    for p in sig.params:
        if p.name in shapes and not isinstance(p, TensorParam):
            raise UsageProblem(f"--shapes gives a shape for {p.name!r}, a scalar parameter of {sig.unit}")
    try:
        return bindings_from_shapes(sig, shapes)
    except P2TError as e:
        raise UsageProblem(str(e)) from None


# ------------------------------------------------------------------------------------------------ static gates


def _param_names(fn: ast.FunctionDef, skip_self: bool) -> list[str]:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args)]
    return names[1:] if skip_self else names


def check_unit_signature(candidate: str, unit: str, ref_node) -> list[str]:
    """The unit exists in the candidate under the same kind and parameter names as in the reference.

    Parses only (nothing is run). Returns problems; empty when the signatures agree.
    """
    try:
        tree = ast.parse(candidate)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return [f"candidate is not valid Python: {type(e).__name__}"]
    found = [s for s in tree.body if isinstance(s, ast.FunctionDef | ast.ClassDef) and s.name == unit]
    if not found:
        return [f"candidate does not define {unit} at the top level"]
    cand = found[-1]
    if type(cand) is not type(ref_node):
        want = "a function" if isinstance(ref_node, ast.FunctionDef) else "a class"
        return [f"{unit} is {want} in the reference but not in the candidate"]
    if isinstance(ref_node, ast.FunctionDef):
        pairs = [(unit, _param_names(ref_node, False), _param_names(cand, False))]
    else:
        rm = {s.name: s for s in ref_node.body if isinstance(s, ast.FunctionDef)}
        cm = {s.name: s for s in cand.body if isinstance(s, ast.FunctionDef)}
        pairs = []
        for meth in ("__init__", "forward"):
            if meth in rm:
                if meth not in cm:
                    return [f"candidate class {unit} has no {meth}"]
                pairs.append((f"{unit}.{meth}", _param_names(rm[meth], True), _param_names(cm[meth], True)))
    problems = []
    for name, want, got in pairs:
        if want != got:
            problems.append(f"{name} takes ({', '.join(got)}) in the candidate but ({', '.join(want)}) in the "
                            "reference; the call signature must be the reference's")
    return problems


# ------------------------------------------------------------------------------------------------ the command


def run_verify(candidate: str, reference: str, unit: str | None = None, *, backend: str = "auto",
               shapes: str | None = None, dtypes: str = "float32,float16,bfloat16", trusted: bool = False,
               timeout: float = 60.0, memory_mb: int = 8192, seed: int | None = None, contiguous_only: bool = False,
               echo=None) -> dict:
    """Do the work of `p2t verify`; return {"stage", "messages", "report", "exit_code"}.

    Raises UsageProblem for unusable input. Prints progress and the report through `echo(text, err)`.
    """
    echo = echo or (lambda text, err=False: click.echo(text, err=err))
    ref_source = _read_text(reference, "reference")
    cand_text = _read_text(candidate, "candidate") if trusted else None
    if not trusted:
        p = Path(candidate)
        if not p.is_file():
            raise UsageProblem(f"candidate {candidate}: " + ("is a directory" if p.is_dir() else "no such file"))
        try:
            cand_bytes = p.read_bytes()
        except OSError as e:
            raise UsageProblem(f"cannot read candidate {candidate}: {e.strerror}") from None
    if backend not in BACKENDS:
        raise UsageProblem(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    dtype_list = [d.strip() for d in dtypes.split(",") if d.strip()]
    bad = [d for d in dtype_list if d not in DTYPES]
    if bad or not dtype_list:
        raise UsageProblem(f"bad --dtypes {dtypes!r}; choose from {', '.join(DTYPES)}")
    if timeout <= 0:
        raise UsageProblem("--timeout must be positive")
    if memory_mb < 0:
        raise UsageProblem("--memory-mb must be >= 0 (0: no limit)")
    shape_map = parse_shape_spec(shapes)

    tree = _parse_reference(ref_source, reference)
    units = reference_units(tree)
    name = pick_unit(units, unit, reference)
    if not trusted:
        from p2t_core.postprocess import check_candidate

        result = check_candidate(cand_bytes)  # the raw bytes: nothing of the candidate is imported or run
        if not result.ok:
            raise Rejected(result.stage, list(result.messages))
        cand_text = cand_bytes.decode("utf-8")
    problems = check_unit_signature(cand_text, name, units[name])
    if problems:
        raise Rejected("signature", problems)

    sig, how, note = infer_signature(ref_source, reference, name, units[name], shape_map)
    if how != "compiler":
        echo(f"p2t: signature of {name} from the {how} ({note})", True)
    if how == "shapes":
        _sig, binding = signature_from_shapes(units[name], shape_map)
        case_shapes = [binding]
    else:
        case_shapes = [shape_bindings(sig, shape_map)] if shape_map else None

    from p2t_core.verify import verify

    try:
        report = verify(ref_source, cand_text, sig, backend=backend, dtypes=tuple(dtype_list), shapes=case_shapes,
                        seed=seed, timeout_s=float(timeout), memory_limit_mb=int(memory_mb),
                        noncontiguous=not contiguous_only)
    except ValueError as e:  # e.g. a --shapes binding the signature cannot use
        raise UsageProblem(str(e)) from None
    echo(report.render(), False)
    return {"stage": "verify", "messages": [report.summary()] + ([report.error] if report.error else []),
            "report": report.to_dict(), "exit_code": 0 if report.passed else 1}


def _write_json(path: str | None, payload: dict, echo) -> None:
    if not path:
        return
    data = {k: payload.get(k) for k in ("stage", "messages", "report")}
    try:
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
    except OSError as e:
        echo(f"p2t: cannot write {path}: {e.strerror}", True)


@click.command("verify", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option("--reference", "-r", required=True, type=click.Path(dir_okay=False), metavar="SRC.py",
              help="The Python file holding the reference unit.")
@click.option("-f", "--function", "unit", metavar="NAME",
              help="The unit to check (function or Module class); default: the reference's only unit.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: cuda if available, else interpret (TRITON_INTERPRET=1 on CPU); aot adds sm_90 compiles.")
@click.option("--shapes", metavar="SPEC", help="Parameter shapes to verify at, e.g. 'x=4x8,w=8' "
              "(default: generated edge cases); also gives the ranks when they cannot be inferred.")
@click.option("--dtypes", default="float32,float16,bfloat16", show_default=True, help="Dtypes to verify.")
@click.option("--trusted", is_flag=True, help="Skip the static gates: the candidate RUNS, contained only by the "
              "worker's process limits (timeout, memory, clean env), not by a filesystem jail.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), metavar="OUT",
              help="Also write {stage, messages, report} as JSON.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds per step in the worker (loading the candidate, each case).")
@click.option("--memory-mb", type=int, default=8192, show_default=True,
              help="Address space the worker may add beyond its imports, in MiB (0: no limit).")
@click.option("--seed", type=int, default=None, help="Seed of the random inputs (default: fresh, reported).")
@click.option("--contiguous-only", is_flag=True, help="Skip the strided and transposed input layouts.")
def verify_cmd(candidate, reference, unit, backend, shapes, dtypes, trusted, json_out, timeout, memory_mb, seed,
               contiguous_only):
    """Check that unit NAME of CANDIDATE (a Triton module) matches the unit of the same name in SRC.py.

    Unless --trusted, the candidate must pass the grammar and semantic checks before anything of it is
    imported or run; then it is tested differentially against the reference in a sandboxed worker.
    Exit code 0: every check passed; 1: a check failed or the candidate was rejected; 2: unusable input.

    \b
    Example:
      p2t verify examples/verify/softmax_triton.py --reference examples/verify/softmax_ref.py \\
          -f softmax --backend interpret --dtypes float32
    """
    def echo(text, err=False):
        click.echo(text, err=err)

    try:
        payload = run_verify(candidate, reference, unit, backend=backend, shapes=shapes, dtypes=dtypes,
                             trusted=trusted, timeout=timeout, memory_mb=memory_mb, seed=seed,
                             contiguous_only=contiguous_only, echo=echo)
    except UsageProblem as e:
        _write_json(json_out, {"stage": "input", "messages": [str(e)], "report": None}, echo)
        echo(f"p2t: {e}", True)
        sys.exit(2)
    except Rejected as e:
        _write_json(json_out, {"stage": e.stage, "messages": e.messages, "report": None}, echo)
        echo(f"p2t: candidate rejected by the {e.stage} check (nothing of it was run):", True)
        for m in e.messages:
            echo(f"  {m}", True)
        sys.exit(1)
    except KeyboardInterrupt:
        echo("p2t: interrupted", True)
        sys.exit(130)
    except Exception as e:  # a bug in p2t: one line, no traceback
        echo(f"p2t: internal error ({type(e).__name__}: {e}); please report it with the input", True)
        sys.exit(3)
    _write_json(json_out, payload, echo)
    sys.exit(payload["exit_code"])


def main(argv: list[str] | None = None) -> None:
    verify_cmd.main(args=argv, prog_name="p2t verify")


if __name__ == "__main__":
    main()
