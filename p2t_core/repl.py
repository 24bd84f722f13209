"""`p2t repl`: an interactive session. Paste or type a function (the input ends on a blank line) and get its
Triton module, highlighted, with the verification report; `:help` lists the commands.

Interactive use needs a terminal (prompt_toolkit; history in `~/.local/share/p2t/history`, or `$P2T_HISTORY`).
With stdin not a terminal (`p2t repl < f.py`, a pipe) the whole of stdin is one source: it is translated and
the module printed, as `p2t translate` would, for scripting. `python -m p2t_core.repl` runs the same command.
A bad input prints one error line and the session goes on; Ctrl-C cancels the input, Ctrl-D quits.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

PROMPT, CONTINUATION = ">>> ", "... "
ENGINES = ("compiler", "llm", "auto")
BACKENDS = ("auto", "cuda", "interpret", "aot")

HELP = """\
Type or paste a Python function or nn.Module class; a blank line ends it. The Triton module and the
verification report follow. Commands:
  :engine compiler|llm|auto   the translation engine (llm/auto need p2t_core.llm and its weights)
  :verify on|off              differential verification of each translation (default on)
  :backend auto|cuda|interpret|aot   where verification runs
  :shapes x=4x8,w=8           parameter shapes for ranks, verification and :bench (`:shapes` alone clears)
  :graph                      the op graph of the last unit
  :kernels                    the fused kernel groups of the last unit
  :bench                      time the last unit, translated vs eager (needs CUDA)
  :save PATH                  write the last module to PATH
  :load PATH                  translate a file
  :help                       this text
  :quit                       leave (or Ctrl-D)"""


def history_path() -> Path:
    """`$P2T_HISTORY`, else `$XDG_DATA_HOME/p2t/history` (default `~/.local/share/p2t/history`)."""
    if os.environ.get("P2T_HISTORY"):
        return Path(os.environ["P2T_HISTORY"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "p2t" / "history"


@dataclass
class Session:
    """The state and commands of a session, independent of the terminal (the tests drive it through a pty)."""

    out: object  # a rich Console for results
    err: object  # a rich Console for reports and errors
    engine: str = "compiler"
    verify: bool = True
    backend: str = "auto"
    shapes: dict = field(default_factory=dict)
    shapes_text: str = ""
    last_source: str | None = None
    last_module: str | None = None
    last_unit: object = None  # the last CompiledUnit (compiler engine), for :graph, :kernels, :bench
    done: bool = False

    # -- output ---------------------------------------------------------------------------------------------
    def error(self, message: str) -> None:
        self.err.print(f"p2t: {message}", style="red", markup=False, highlight=False)

    def info(self, message: str) -> None:
        self.err.print(f"p2t: {message}", markup=False, highlight=False)

    def show_module(self, text: str) -> None:
        from rich.syntax import Syntax

        self.out.print(Syntax(text, "python", theme="monokai", background_color="default", word_wrap=False))

    # -- input ----------------------------------------------------------------------------------------------
    def handle(self, text: str) -> None:
        """One input: a `:command` or a source. Never raises (except KeyboardInterrupt)."""
        from p2t_core.errors import P2TError

        text = text.strip("\n")
        if not text.strip():
            return
        try:
            if text.lstrip().startswith(":"):
                self.command(text.strip())
            else:
                self.translate(with_imports(text + "\n"), "<repl>")
        except P2TError as e:
            self.error(str(e))
        except RecursionError:
            self.error("input nested too deeply")
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a bug in p2t: one line, and the session goes on
            self.error(f"internal error ({type(e).__name__}: {e}); please report it with the input")

    def command(self, line: str) -> None:
        name, _, arg = line[1:].partition(" ")
        name, arg = name.strip().lower(), arg.strip()
        handler = getattr(self, f"cmd_{name}", None)
        if handler is None:
            self.error(f"unknown command :{name}; :help lists the commands")
            return
        handler(arg)

    # -- translation ----------------------------------------------------------------------------------------
    def translate(self, source: str, path: str) -> None:
        if self.engine != "compiler":
            llm = self._llm()
            if llm is not None:
                return self._translate_llm(llm, source, path)
        from p2t_core.engine import compile_units
        from p2t_core.translate import verify_units

        start = time.perf_counter()
        result = compile_units(source, path, shapes=self.shapes or None)
        for e in result.errors:
            self.error(str(e))
        if not result.units:
            return
        names = ", ".join(u.name for u in result.units)
        kernels = sum(u.n_kernels for u in result.units)
        self.info(f"translated {names} with the compiler engine ({kernels} kernel(s), "
                  f"{time.perf_counter() - start:.2f} s)")
        self.show_module(result.module_source)
        self.last_source, self.last_module, self.last_unit = source, result.module_source, result.units[-1]
        if not self.verify:
            self.info("verification off (:verify on): the module is unverified")
            return
        start = time.perf_counter()
        ok = verify_units(source, result, backend=self.backend, shapes=self.shapes or None,
                          echo=lambda t: self.err.print(t, markup=False, highlight=False))
        self.info(f"verification {'PASSED' if ok else 'FAILED'} ({time.perf_counter() - start:.1f} s)")
        if not ok:
            self.error("do not use this module: it does not match the Python")

    def _llm(self):
        try:
            from p2t_core.llm import translate_with_llm
        except (ImportError, AttributeError) as e:
            self.error(f"the LLM engine is not available ({e}); using the compiler")
            self.engine = "compiler"
            return None
        return translate_with_llm

    def _translate_llm(self, translate_with_llm, source: str, path: str) -> None:
        from p2t_core.translate import verify_units

        start = time.perf_counter()
        result = translate_with_llm(source, path, engine=self.engine, shapes=self.shapes or None,
                                    backend=self.backend, progress=self.info)
        if result.llm_unavailable:
            self.error(f"LLM engine: {result.llm_unavailable}")
        for line in result.report().splitlines():
            self.info(line)
        if not result.module_source:
            return
        self.info(f"translated with the {self.engine} engine ({time.perf_counter() - start:.2f} s)")
        self.show_module(result.module_source)
        comp = result.compiler
        self.last_source, self.last_module = source, result.module_source
        self.last_unit = comp.units[-1] if comp is not None and comp.units else None
        if comp is not None and comp.units and self.verify:  # LLM units were verified to be chosen
            ok = verify_units(source, comp, backend=self.backend, shapes=self.shapes or None,
                              echo=lambda t: self.err.print(t, markup=False, highlight=False))
            self.info(f"verification of the compiler's units {'PASSED' if ok else 'FAILED'}")

    # -- commands -------------------------------------------------------------------------------------------
    def cmd_help(self, arg: str) -> None:
        self.out.print(HELP, markup=False, highlight=False)

    def cmd_quit(self, arg: str) -> None:
        self.done = True

    cmd_exit = cmd_q = cmd_quit
    cmd_h = cmd_help

    def cmd_engine(self, arg: str) -> None:
        if arg not in ENGINES:
            self.error(f"engine is {self.engine}; give one of {', '.join(ENGINES)}")
            return
        self.engine = arg
        if arg != "compiler" and self._llm() is None:
            return
        self.info(f"engine {self.engine}")

    def cmd_verify(self, arg: str) -> None:
        if arg not in ("on", "off"):
            self.error(f"verification is {'on' if self.verify else 'off'}; give on or off")
            return
        self.verify = arg == "on"
        self.info(f"verification {arg}")

    def cmd_backend(self, arg: str) -> None:
        if arg not in BACKENDS:
            self.error(f"backend is {self.backend}; give one of {', '.join(BACKENDS)}")
            return
        self.backend = arg
        self.info(f"verification backend {arg}")

    def cmd_shapes(self, arg: str) -> None:
        from p2t_core.engine import parse_shapes

        self.shapes = parse_shapes(arg)
        self.shapes_text = arg
        self.info(f"shapes {arg}" if arg else "shapes cleared (ranks inferred, sizes chosen by the verifier)")

    def _need_unit(self):
        if self.last_unit is None:
            self.error("no translated unit yet (or the last one came from the LLM engine): translate one first")
        return self.last_unit

    def cmd_graph(self, arg: str) -> None:
        if self._need_unit():
            self.out.print(self.last_unit.graph.dump(), markup=False, highlight=False)

    def cmd_kernels(self, arg: str) -> None:
        if self._need_unit():
            self.out.print(f"{self.last_unit.name}: {self.last_unit.n_kernels} kernel(s)", markup=False,
                           highlight=False)
            self.out.print(self.last_unit.schedule.describe(), markup=False, highlight=False)

    def cmd_save(self, arg: str) -> None:
        if not arg:
            self.error("give a path: :save PATH")
            return
        if self.last_module is None:
            self.error("nothing to save yet: translate a unit first")
            return
        try:
            Path(arg).expanduser().write_text(self.last_module)
        except OSError as e:
            self.error(f"cannot write {arg}: {e.strerror}")
            return
        self.info(f"wrote {arg}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            self.error("give a path: :load PATH")
            return
        try:
            source = Path(arg).expanduser().read_bytes().decode("utf-8")
        except OSError as e:
            self.error(f"cannot read {arg}: {e.strerror}")
            return
        except UnicodeDecodeError as e:
            self.error(f"{arg}: not UTF-8 text (byte {e.start})")
            return
        self.translate(source, arg)

    def cmd_bench(self, arg: str) -> None:
        import torch

        if not torch.cuda.is_available():
            self.error(":bench needs CUDA (a GPU): eager and Triton timings on CPU mean nothing")
            return
        unit = self._need_unit()
        if unit is None:
            return
        from p2t_core.bench.harness import run_bench
        from p2t_core.bench.suite import BenchUnit

        shapes = bench_shapes(unit.signature, self.shapes)
        text = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())
        self.info(f"benchmarking {unit.name} on {text} (float32; set sizes with :shapes)")
        run = run_bench([BenchUnit(unit.name, "repl", self.last_source, unit.name, shapes, "float32", "memory")],
                        compile_backend="none", echo=lambda t: None)
        r = run.results[0] if getattr(run, "results", None) else None
        if r is None or r.status != "ok" or r.p2t_ms is None:
            self.error(f"bench failed: {r.status if r else 'no result'} {r.message if r else ''}".strip())
            return
        speedup = r.eager_ms / r.p2t_ms if r.eager_ms and r.p2t_ms else float("nan")
        self.out.print(f"{unit.name}: p2t {r.p2t_ms * 1e3:.1f} us, eager {r.eager_ms * 1e3:.1f} us, "
                       f"{speedup:.2f}x ({r.kernels} kernel(s); triton.testing.do_bench median)", markup=False,
                       highlight=False)


IMPORTS = "import math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def with_imports(source: str) -> str:
    """A typed unit without imports gets the usual ones (torch, F, nn, math) appended, so its line numbers
    in error messages stay those the user typed; a source with any import is left alone."""
    if any(line.lstrip().startswith(("import ", "from ")) for line in source.splitlines()):
        return source
    return source + "\n\n" + IMPORTS


def bench_shapes(signature, shapes: dict) -> dict[str, tuple[int, ...]]:
    """Shapes for :bench: the user's, else sizes giving about 2**24 elements for the largest tensor."""
    from p2t_core.signature import TensorParam

    params = [p for p in signature.params if isinstance(p, TensorParam)]
    rank = max((len(p.dims) for p in params), default=1) or 1
    size = max(1, int(round(2 ** (24 / rank))))
    out = {}
    for p in params:
        out[p.name] = tuple(shapes.get(p.name) or (d if isinstance(d, int) else size for d in p.dims))
    return out


def _console(stderr: bool):
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    return Console(stderr=stderr, no_color=no_color, soft_wrap=True, highlight=False)


def _key_bindings():
    """Enter submits a `:command`, or a source at a blank line once it has a `def` or `class` (a blank line
    after the imports does not end it; two blank lines always do); otherwise it adds a line, indented like
    the previous one (one level deeper after a `:`). A paste inserts its text as is."""
    import re

    from prompt_toolkit.key_binding import KeyBindings

    unit = re.compile(r"^(async\s+def|def|class)\s", re.M)

    kb = KeyBindings()

    @kb.add("enter")
    def _(event):
        buf = event.current_buffer
        text = buf.document.text
        lines = text.split("\n")
        blank = len(lines) > 1 and not lines[-1].strip()
        if (not text.strip() or text.lstrip().startswith(":") or (blank and unit.search(text))
                or (blank and not lines[-2].strip())):
            buf.validate_and_handle()
            return
        last = lines[-1]
        indent = last[: len(last) - len(last.lstrip())]
        if last.rstrip().endswith(":"):
            indent += "    "
        buf.insert_text("\n" + indent)

    return kb


def interactive(session: Session) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.lexers import PygmentsLexer
    from pygments.lexers.python import PythonLexer

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    prompt = PromptSession(history=history, multiline=True, key_bindings=_key_bindings(),
                           lexer=PygmentsLexer(PythonLexer), prompt_continuation=lambda w, n, soft: CONTINUATION,
                           enable_history_search=False)
    session.out.print("p2t repl: type or paste a function, end it with a blank line; :help, Ctrl-D quits",
                      markup=False, highlight=False)
    while not session.done:
        try:
            text = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            session.out.print("(cancelled)", markup=False, highlight=False)
            continue
        except EOFError:
            break
        try:
            session.handle(text)
        except KeyboardInterrupt:
            session.error("interrupted")


def batch(session: Session, source: str) -> int:
    """Non-interactive: stdin is one source. The module goes to stdout, reports to stderr; the exit code is
    that of `p2t translate` (2: not translated, 1: verification failed)."""
    from p2t_core.engine import compile_units
    from p2t_core.errors import P2TError
    from p2t_core.translate import verify_units

    if not source.strip():
        session.error("no input on stdin")
        return 2
    try:
        result = compile_units(source, "<stdin>", shapes=session.shapes or None)
        for e in result.errors:
            session.error(str(e))
        if result.errors or not result.units:
            return 2
        session.info(f"translated {', '.join(u.name for u in result.units)} "
                     f"({sum(u.n_kernels for u in result.units)} kernel(s), {result.seconds:.2f} s)")
        if session.verify:
            ok = verify_units(source, result, backend=session.backend, shapes=session.shapes or None,
                              echo=lambda t: session.err.print(t, markup=False, highlight=False))
            if not ok:
                session.error("verification failed; nothing written")
                return 1
        else:
            session.info("verification skipped: the module is unverified")
    except P2TError as e:
        session.error(str(e))
        return e.exit_code
    except Exception as e:
        session.error(f"internal error ({type(e).__name__}: {e}); please report it with the input")
        return 3
    sys.stdout.write(result.module_source)
    return 0


@click.command("repl")
@click.option("--engine", type=click.Choice(ENGINES), default="compiler", show_default=True,
              help="The engine to start with (:engine switches).")
@click.option("--no-verify", is_flag=True, help="Start with verification off (:verify on switches it back).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Where verification runs.")
@click.option("--shapes", metavar="SPEC", default="", help="Parameter shapes, e.g. 'x=4x8,w=8' (:shapes changes).")
def repl(engine, no_verify, backend, shapes):
    """An interactive session: paste a function, get its verified Triton module.

    \b
    Examples:
      p2t repl
      p2t repl --no-verify
      p2t repl < examples/rmsnorm.py > rmsnorm_triton.py   (stdin not a terminal: one translation)
    Input ends on a blank line; :help lists the commands (:graph, :kernels, :bench, :save, ...);
    history is kept in ~/.local/share/p2t/history ($P2T_HISTORY overrides).
    """
    from p2t_core.errors import P2TError

    session = Session(_console(False), _console(True), verify=not no_verify, backend=backend)
    try:
        session.cmd_shapes(shapes) if shapes else None
    except P2TError as e:
        session.error(str(e))
        sys.exit(2)
    if not sys.stdin.isatty():
        sys.exit(batch(session, sys.stdin.read()))
    if engine != "compiler":
        session.cmd_engine(engine)
    interactive(session)


def main():
    repl(prog_name="p2t repl")


if __name__ == "__main__":
    main()
