"""Post-processing of candidate modules: the safety boundary before anything is imported or run.

Every module an engine returns (the LLM's candidates, or a file a user hands to `p2t verify`
without `--trusted`) goes through `check_candidate(source)` BEFORE any of it is imported,
compiled or executed:

1. **grammar** (`p2t_grammar.parse_module`): the text must be inside the lark grammar of the
   allowed module subset (size cap, plain text, nesting cap, valid Python syntax);
2. **semantics** (`p2t_core.postprocess.safety.check_semantics`): allowed imports, names and
   attribute paths only, no dunders, no monkeypatching, kernel launches consistent with kernel
   signatures, launchers that launch kernels and leave the math to them.

`check_candidate` returns a `CheckResult`; `result.ok` is True only when both stages pass, and
otherwise `result.stage` is `"grammar"` or `"semantics"` and `result.messages` says why.

What comes after (chained by the LLM engine / `p2t verify`, not here): 3. **compile** the
accepted text (ahead-of-time for sm_90, and JIT where a GPU exists) and 4. **verify** it
differentially against the reference in the sandboxed worker of `p2t_core.verify`. Only a
candidate that passed all four may be returned to a user. A candidate that passes 1 and 2 is
*not* trusted to be correct or bounded: out-of-bounds stores, huge allocations, and long loops
are left to the verifier's guard bands, worker process and timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from p2t_grammar import GrammarError, parse_module

from p2t_core.postprocess.safety import Violation, check_semantics

__all__ = ["CheckResult", "check_candidate", "check_semantics", "Violation", "GrammarError", "parse_module"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of the static gates: `ok`, or the failing `stage` with readable `messages`."""

    ok: bool
    stage: str | None = None          # None when ok, else "grammar" or "semantics"
    messages: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return "ok"
        return f"{self.stage} check failed:\n" + "\n".join(f"  {m}" for m in self.messages)


# Callers check candidates from threads (`p2t eval --jobs N`). CPython 3.11's `ast.parse` is not thread-safe: its
# AST constructor keeps one recursion counter per interpreter, and two parses at once can fail with "SystemError:
# AST constructor recursion depth mismatch" (python/cpython#106905). A check takes milliseconds: they take turns.
_ONE_AT_A_TIME = threading.Lock()


def check_candidate(source: str | bytes) -> CheckResult:
    """Run the grammar, then the semantic check, on a candidate module's text. Never executes it. Thread-safe."""
    with _ONE_AT_A_TIME:
        return _check(source)


def _check(source: str | bytes) -> CheckResult:
    try:
        parse_module(source)
    except GrammarError as e:
        return CheckResult(False, "grammar", (str(e),))
    text = source.decode("utf-8") if isinstance(source, bytes | bytearray) else source
    violations = check_semantics(text)
    if violations:
        return CheckResult(False, "semantics", tuple(str(v) for v in violations), tuple(violations))
    return CheckResult(True)
