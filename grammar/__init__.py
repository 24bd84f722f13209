"""The lark grammar of the Triton-module subset that p2t engines may return.

`parse_module(source)` is the first gate of the post-processor (see `p2t_core.postprocess`): a
module that does not parse here is never imported, compiled or executed. It returns the lark
parse tree, or raises `GrammarError(line, col, message)` with a readable message; it never lets a
lark exception, `RecursionError` or `UnicodeDecodeError` escape, whatever the input.

Besides the LALR grammar (`module.lark`, loaded relative to this package), `parse_module`
enforces a size cap, plain-text input (no NUL or other control characters, no bidirectional
overrides), a nesting-depth cap, and finally that the text is valid Python syntax (through
`ast.parse`, which only parses; nothing is compiled or run), so later stages see the same
structure the grammar saw.
"""

from __future__ import annotations

import ast
import re
import threading
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

__all__ = ["GrammarError", "parse_module", "GRAMMAR_PATH", "MAX_SOURCE_BYTES", "MAX_DEPTH"]

GRAMMAR_PATH = Path(__file__).with_name("module.lark")

#: Largest module accepted, in bytes of UTF-8 (a generated module is a few kB).
MAX_SOURCE_BYTES = 1_000_000
#: Deepest nesting accepted (statements, brackets and operator chains counted together).
MAX_DEPTH = 100

# C0 controls other than tab/newline/CR, DEL, C1 controls, and Unicode bidi/line-separator
# characters ("Trojan source"): never needed in a generated module, anywhere.
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_FORBIDDEN_KEYWORDS = {
    "try": "'try' statements are not allowed",
    "except": "'try/except' is not allowed",
    "finally": "'try/finally' is not allowed",
    "with": "'with' statements are not allowed",
    "global": "'global' is not allowed",
    "nonlocal": "'nonlocal' is not allowed",
    "del": "'del' is not allowed",
    "yield": "'yield' (generators) is not allowed",
    "await": "'await' is not allowed",
    "async": "'async' is not allowed",
    "raise": "'raise' is only allowed as raise ValueError(\"message\") (or RuntimeError, TypeError, IndexError)",
    "from": "'from ... import' is not allowed; only 'import math', 'import torch', 'import triton', "
    "'import triton.language as tl'",
    "break": "'break' is not allowed",
    "import": "'import' is only allowed at the top level of the module",
    "class": "classes are only allowed undecorated at the top level, deriving from torch.nn.Module",
    "def": "nested function definitions are not allowed",
}

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "DEC_NUMBER": "a number",
    "HEX_NUMBER": "a number",
    "FLOAT_NUMBER": "a number",
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "end of block",
    "$END": "end of input",
}


class GrammarError(ValueError):
    """The text is outside the allowed module subset. `line`/`col` are 1-based (0 when unknown)."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(line, col, message)
        self.line, self.col, self.message = int(line or 0), int(col or 0), message

    def __str__(self) -> str:
        return f"line {self.line}, col {self.col}: {self.message}"


class ModuleIndenter(Indenter):
    """Turns `_NL` tokens into `_INDENT`/`_DEDENT`; newlines inside brackets are dropped."""

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB", "LBRACE"]
    CLOSE_PAREN_types = ["RPAR", "RSQB", "RBRACE"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token):
        if self.paren_level > 0:
            return
        yield token
        indent = len(token.rsplit("\n", 1)[1])  # spaces only: the _NL terminal admits no tabs
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, " " * indent, token)
            return
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, "", token)
        if indent != self.indent_level[-1]:
            raise GrammarError(token.end_line or 0, indent + 1, "indentation does not match any outer level")

    def _process(self, stream):
        token = None
        for token in stream:
            if token.type == self.NL_type:
                yield from self.handle_NL(token)
            else:
                yield token
            if token.type in self.OPEN_PAREN_types:
                self.paren_level += 1
            elif token.type in self.CLOSE_PAREN_types:
                self.paren_level -= 1
                if self.paren_level < 0:
                    raise GrammarError(token.line or 0, token.column or 0, "unbalanced closing bracket")
        while len(self.indent_level) > 1:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, "", token) if token else Token(self.DEDENT_type, "")


_lock = threading.Lock()


@cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=ModuleIndenter(),
        start="start",
        propagate_positions=False,
        maybe_placeholders=False,
    )


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of input (truncated module?)"
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "_INDENT":
        return "indentation"
    if tok.type == "_DEDENT":
        return "end of block"
    return repr(str(tok))


def _describe_expected(expected) -> str:
    words = sorted({_TERMINAL_WORDS.get(t, None) or _literal_of(t) for t in expected})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


@cache
def _literal_of(terminal: str) -> str:
    for t in _parser().terminals:
        if t.name == terminal:
            if t.pattern.type == "str":
                return repr(t.pattern.value)
            break
    return terminal


def _word_at(text: str, pos: int) -> str:
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[pos:])
    return m.group(0) if m else ""


def _line_at(text: str, pos) -> str:
    if not isinstance(pos, int):
        return ""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start: end if end >= 0 else len(text)]


def _translate(exc: Exception, text: str) -> GrammarError:
    if isinstance(exc, GrammarError):
        return exc
    if isinstance(exc, UnexpectedCharacters):
        ch = exc.char
        word = _word_at(text, exc.pos_in_stream)
        if word != "raise" and _line_at(text, exc.pos_in_stream).lstrip().startswith("raise "):
            return GrammarError(exc.line, exc.column, _FORBIDDEN_KEYWORDS["raise"])
        if word in _FORBIDDEN_KEYWORDS:
            return GrammarError(exc.line, exc.column, _FORBIDDEN_KEYWORDS[word])
        if ch == "\t":
            return GrammarError(exc.line, exc.column, "tab characters are not allowed; indent with spaces")
        if ch == "\\":
            return GrammarError(exc.line, exc.column, "backslash line continuation is not allowed")
        if ch in "\"'":
            return GrammarError(exc.line, exc.column, "unterminated or malformed string")
        if ch == ";":
            return GrammarError(exc.line, exc.column, "';' is not allowed; one statement per line")
        if ch in "$?!`":
            return GrammarError(exc.line, exc.column, f"unexpected character {ch!r}")
        if word and word in {"True", "False", "None", "and", "or", "not", "in", "is", "if", "else", "for",
                             "lambda", "return", "pass", "assert", "elif", "as"}:
            return GrammarError(exc.line, exc.column, f"unexpected keyword {word!r} here")
        if ch == ":" and text[exc.pos_in_stream: exc.pos_in_stream + 2] == ":=":
            return GrammarError(exc.line, exc.column, "':=' (walrus) is not allowed")
        if ord(ch) > 127:
            return GrammarError(exc.line, exc.column, f"non-ASCII character {ch!r} outside strings and comments")
        return GrammarError(exc.line, exc.column, f"unexpected {ch!r}")
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line, col = getattr(tok, "line", None) or exc.line, getattr(tok, "column", None) or exc.column
        # the indenter always accepts _NL; the cached-launcher decorator is left out of the hints
        expected = set(exc.expected or ()) - {"_NL", "_P2T_FAST_LAUNCH"}
        if tok.type == "$END":
            return GrammarError(line, col, "unexpected end of input (truncated module?)")
        start = getattr(tok, "start_pos", None)
        word = _word_at(text, start) if isinstance(start, int) else ""
        if _line_at(text, start).lstrip().startswith("raise "):
            return GrammarError(line, col, _FORBIDDEN_KEYWORDS["raise"])
        if tok.type == "STAR" and isinstance(start, int) and "**" in text[max(start - 1, 0): start + 2]:
            return GrammarError(line, col, "'**' parameters and '**' unpacking are not allowed")
        if word in _FORBIDDEN_KEYWORDS:
            return GrammarError(line, col, _FORBIDDEN_KEYWORDS[word])
        if isinstance(start, int) and text[start: start + 2] == ":=":
            return GrammarError(line, col, "':=' (walrus) is not allowed")
        end = getattr(tok, "end_pos", None)
        if tok.type in ("_DEDENT", "_INDENT", "_NL") and isinstance(end, int) and text[end: end + 1] == "\t":
            return GrammarError(line, col, "tab characters are not allowed; indent with spaces")
        if tok.type == "_DEDENT":
            return GrammarError(line, col, "unexpected end of block (unclosed bracket or truncated module?)")
        if expected and expected <= {"LPAR", "MINUS", "FALSE", "NONE", "TRUE", "DEC_NUMBER", "HEX_NUMBER",
                                     "FLOAT_NUMBER", "STRING", "LONG_STRING"}:
            return GrammarError(line, col, "default values must be literal constants")
        if expected == {"TRITON"} and "AT" not in expected:
            return GrammarError(line, col, f"decorator {str(tok)!r} is not allowed; only @triton.jit, "
                                "@triton.autotune(...) and @triton.heuristics(...)")
        if "MATH" in expected and "TORCH" in expected:
            return GrammarError(line, col, f"import of {str(tok)!r} is not allowed; only 'import math', "
                                "'import torch', 'import triton', 'import triton.language as tl'")
        if expected & {"JIT", "AUTOTUNE", "HEURISTICS"} or (expected == {"TRITON"} and tok.type == "NAME"):
            return GrammarError(line, col, f"decorator {str(tok)!r} is not allowed; only @triton.jit, "
                                "@triton.autotune(...) and @triton.heuristics(...)")
        if expected & {"NN", "MODULE"} or (expected == {"TORCH"} and str(tok) != "torch"):
            return GrammarError(line, col, "a class must derive from exactly torch.nn.Module")
        if expected == {"LANGUAGE"} or expected == {"AS"} or expected == {"TL"}:
            return GrammarError(line, col, "only 'import triton.language as tl' is allowed")
        if tok.type in ("STRING", "LONG_STRING") and exc.pos_in_stream and text[exc.pos_in_stream - 1].isalpha():
            return GrammarError(line, col, "string prefixes are not allowed (no f-strings, r/b/u strings)")
        if tok.type == "_INDENT":
            return GrammarError(line, col, "unexpected indentation")
        if tok.type == "AT":
            return GrammarError(line, col, "decorators are only allowed on top-level functions (triton.jit, "
                                "triton.autotune, triton.heuristics)")
        if tok.type == "STAR" and expected & {"NAME"} and "RPAR" in expected:
            return GrammarError(line, col, "'*' and '**' parameters are not allowed")
        if tok.type == "__ANON_0" or str(tok) == "**":
            return GrammarError(line, col, f"unexpected {str(tok)!r}; '**' unpacking is not allowed")
        return GrammarError(line, col, f"unexpected {_describe_token(tok)}; expected {_describe_expected(expected)}")
    if isinstance(exc, UnexpectedEOF):
        return GrammarError(0, 0, "unexpected end of input (truncated module?)")
    if isinstance(exc, UnexpectedInput):
        return GrammarError(getattr(exc, "line", 0), getattr(exc, "column", 0), str(exc).splitlines()[0])
    if isinstance(exc, DedentError):
        m = re.search(r"line (\d+)", str(exc))
        return GrammarError(int(m.group(1)) if m else 0, 1, "indentation does not match any outer level")
    return GrammarError(0, 0, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


# Operator-chain rules: lark keeps them flat, Python's ast nests them one level per operator.
_CHAIN_RULES = {"or_test", "and_test", "expr", "xor_expr", "and_expr", "shift_expr", "arith_expr", "term"}


def _check_depth(tree: Tree) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if node.data in _CHAIN_RULES:
            depth += len(node.children) // 2
        if depth > MAX_DEPTH:
            line = _first_line(node)
            raise GrammarError(line, 0, f"nesting deeper than {MAX_DEPTH} levels")
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))


def _first_line(node: Tree) -> int:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Token):
            return n.line or 0
        stack.extend(reversed(n.children))
    return 0


def normalize_source(source: str | bytes) -> str:
    """The text the gates look at: UTF-8 decoded, newlines normalized to '\\n', ending in one.

    Raises GrammarError for non-text input, oversized input, or control characters.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        if len(raw) > MAX_SOURCE_BYTES:
            raise GrammarError(0, 0, f"module is larger than {MAX_SOURCE_BYTES} bytes")
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GrammarError(0, 0, f"not UTF-8 text (bad byte at offset {e.start})") from None
    if not isinstance(source, str):
        raise GrammarError(0, 0, f"expected module text, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_BYTES or len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise GrammarError(0, 0, f"module is larger than {MAX_SOURCE_BYTES} bytes")
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    m = _BAD_CHARS.search(text)
    if m is None:
        m = re.search("[\ud800-\udfff]", text)
    if m is not None:
        line = text.count("\n", 0, m.start()) + 1
        col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        raise GrammarError(line, col, f"control or invisible character {m.group(0)!r} is not allowed (binary data?)")
    if not text.strip():
        raise GrammarError(1, 1, "empty module")
    if not text.endswith("\n"):
        text += "\n"
    return text


def parse_module(source: str | bytes) -> Tree:
    """Parse a candidate module against the allowed subset; raise GrammarError if it is outside it."""
    text = normalize_source(source)
    try:
        with _lock:
            tree = _parser().parse(text)
    except GrammarError:
        raise
    except (LarkError, DedentError) as e:
        raise _translate(e, text) from None
    except RecursionError:  # pragma: no cover - the LALR parser is iterative; belt and braces
        raise GrammarError(0, 0, "nesting too deep") from None
    _check_depth(tree)
    try:
        ast.parse(text, mode="exec")
    except SyntaxError as e:
        raise GrammarError(e.lineno or 0, e.offset or 0, f"invalid Python: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as e:
        raise GrammarError(0, 0, f"invalid Python: {type(e).__name__}") from None
    return tree
