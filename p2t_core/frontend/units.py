"""Find the translation units of a file: top-level functions and `torch.nn.Module` subclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

from p2t_core.errors import SourceError

MAX_SOURCE_BYTES = 2_000_000


@dataclass
class Unit:
    name: str
    kind: str  # "function" | "module"
    node: cst.FunctionDef | cst.ClassDef
    line: int
    original: cst.FunctionDef | cst.ClassDef | None = None  # the user's loop-style form, when rewritten


@dataclass
class ParsedFile:
    path: str
    source: str
    wrapper: MetadataWrapper
    units: list[Unit]
    # Loop-style units the loop normalizer refused, by unit name: their error is the unit's error.
    loop_errors: dict[str, SourceError] = field(default_factory=dict)

    def metadata(self):
        return self._meta

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        names = ", ".join(u.name for u in self.units) or "none"
        raise SourceError(f"no unit named {name!r} (units in this file: {names})", path=self.path)


def parse_file(source: str | bytes, path: str = "<input>") -> ParsedFile:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SourceError(f"not UTF-8 text (byte {e.start})", path=path) from None
    if "\x00" in source:
        raise SourceError("binary data (NUL byte) in the source", path=path)
    if len(source) > MAX_SOURCE_BYTES:
        raise SourceError(f"file too large ({len(source)} bytes; limit {MAX_SOURCE_BYTES})", path=path)
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        raise SourceError(f"syntax error: {e.message}", path=path, line=e.raw_line, col=e.raw_column + 1) from None
    except RecursionError:
        raise SourceError("expression nested too deeply", path=path) from None
    try:
        # Positions come from the user's text; loop-style units are rewritten into tensor style first, so
        # qualified names come from the rewritten module (unchanged units keep their node objects).
        originals = {st.name.value: st for st in module.body if m.matches(st, m.FunctionDef() | m.ClassDef())}
        user_module = module
        module, loop_errors = _normalize_loops(module, path)
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        if module is user_module:  # nothing rewritten: one batched pass gives both
            meta = dict(wrapper.resolve_many([PositionProvider, QualifiedNameProvider]))
        else:
            positions = MetadataWrapper(user_module, unsafe_skip_copy=True).resolve(PositionProvider)
            meta = {PositionProvider: positions, QualifiedNameProvider: wrapper.resolve(QualifiedNameProvider)}
    except RecursionError:
        raise SourceError("expression nested too deeply", path=path) from None
    units: list[Unit] = []
    for stmt in module.body:
        if m.matches(stmt, m.FunctionDef() | m.ClassDef()):
            pos = meta[PositionProvider].get(stmt)
            line = pos.start.line if pos else _line_of(source, stmt)
        if m.matches(stmt, m.FunctionDef()):
            if stmt.name.value.startswith("_"):  # private helpers are not units
                continue
            units.append(Unit(stmt.name.value, "function", stmt, line, _if_rewritten(originals, stmt)))
        elif m.matches(stmt, m.ClassDef()) and _is_module_class(stmt, meta[QualifiedNameProvider]):
            units.append(Unit(stmt.name.value, "module", stmt, line, _if_rewritten(originals, stmt)))
    parsed = ParsedFile(path, source, wrapper, units, loop_errors)
    parsed._meta = meta
    return parsed


def _normalize_loops(module: cst.Module, path: str) -> tuple[cst.Module, dict[str, SourceError]]:
    """Rewrite loop-style units; a unit whose loops cannot be rewritten keeps its error, not the file's."""
    from p2t_core.frontend.loops import normalize_loops

    try:
        return normalize_loops(module, path), {}
    except SourceError:
        pass
    imports = [s for s in module.body if m.matches(s, m.SimpleStatementLine(body=[m.Import() | m.ImportFrom()]))]
    body, errors = [], {}
    for stmt in module.body:
        if m.matches(stmt, m.FunctionDef() | m.ClassDef()):
            snippet = module.with_changes(body=[*imports, stmt])
            try:
                stmt = normalize_loops(snippet, path).body[-1]
            except SourceError as e:  # positions are in the snippet: move them to the unit's place in the file
                e.line += _line_of(module.code, stmt) - _line_of(snippet.code, stmt)
                errors[stmt.name.value] = e
        body.append(stmt)
    return module.with_changes(body=body), errors


def _if_rewritten(originals: dict, stmt):
    original = originals.get(stmt.name.value)
    return original if original is not None and original is not stmt else None


def _line_of(source: str, stmt) -> int:
    """The line of a rewritten unit's definition in the user's text."""
    keyword = "class" if m.matches(stmt, m.ClassDef()) else "def"
    for i, text in enumerate(source.splitlines(), 1):
        if text.startswith(f"{keyword} {stmt.name.value}"):
            return i
    return 1


def _is_module_class(cls: cst.ClassDef, qnames) -> bool:
    for base in cls.bases:
        names = {q.name for q in _force(qnames.get(base.value, ()))}
        if names & {"torch.nn.Module", "torch.nn.modules.module.Module"}:
            return True
    return False


def _force(value):
    """QualifiedNameProvider stores lazy values; call them to get the set."""
    return value() if callable(value) else value
