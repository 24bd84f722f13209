"""Loaders for the hostile and good module corpora (shared with later sandbox/verifier tests).

Hostile files live in `hostile/*.txt`. Each starts with `# expect: grammar|semantics|sandbox`
(files that cannot carry a header, such as binary garbage, are listed in `hostile/EXPECT.txt`).
`sandbox` marks modules that pass the static checks on purpose (a huge allocation, an
out-of-bounds store without mask, a very long loop): the verifier's sandboxed worker has to
contain them, and a later test should run them there. Every file would create the file named by
the placeholder `MARKER_PATH` if it ever ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
HOSTILE_DIR = HERE / "hostile"
GOOD_DIR = HERE / "good"
MARKER = "MARKER_PATH"


@dataclass(frozen=True)
class HostileCase:
    name: str
    expect: str  # "grammar", "semantics" or "sandbox"
    text: str

    def with_marker(self, marker: Path | str) -> str:
        return self.text.replace(MARKER, str(marker))


def _expectations() -> dict[str, str]:
    table = {}
    for line in (HOSTILE_DIR / "EXPECT.txt").read_text().splitlines():
        if line.strip():
            name, expect = line.split()
            table[name] = expect
    return table


def hostile_cases() -> list[HostileCase]:
    table = _expectations()
    out = []
    for path in sorted(HOSTILE_DIR.glob("*.txt")):
        if path.name == "EXPECT.txt":
            continue
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        first = text.split("\n", 1)[0]
        if first.startswith("# expect: "):
            expect = first[len("# expect: "):].split()[0]
        else:
            expect = table[path.stem]
        out.append(HostileCase(path.stem, expect, text))
    return out


def sandbox_cases() -> list[HostileCase]:
    """The hostile modules that pass the static gates and must be contained by the verifier's worker."""
    return [c for c in hostile_cases() if c.expect == "sandbox"]


def good_modules() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(GOOD_DIR.glob("*.txt"))}
