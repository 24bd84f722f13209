#!/usr/bin/env python3
"""What pair formats 7 to 10 change on a corpus, and how the weights fared where the numbering parts (issue 5).

    python3 scripts/align_report.py DATA [--split valid_random --split valid_compositional] [--limit N]
                                         [--eval valid_random=EVAL.json ...] [--verify]

For each split: how many elementwise targets (families elementwise and multi_output) format 7 renames
(`p2t_core.llm.align`), how many count their values like the prompt already, and how many part but keep format 6's
names (several kernels, a reduction); other families' renamed targets apart. With `--eval SPLIT=FILE` (a
`p2t eval --json` file of that split): the greedy pass rate of those elementwise units by prompt length and by
whether prompt and kernel count their values alike (format 6), and for prompts of 6 or more lines the one-sided
Fisher exact p that the parting ones pass no less often. Over every family: how many targets format 8 names
otherwise than format 7, how many single-kernel targets store a value the prompt does not return in each, and how
many elementwise kernels (one kernel, no `tl.dot`) have a line spelling several of the prompt's (format 8), and how
many one-kernel targets load a parameter under another name than the prompt binds it to. Format 9 against 8 (the
spelled-out activations kept whole, `p2t_core.llm.spelled`): prompts and targets that change, elementwise kernels
with a line spelling several prompt lines, targets that spell one prompt line in several (`v3_1` names), and for each
activation kept whole the kernels that have one line for it or spell it out (`--spellings`).
Format 10 against 9 (a row kernel's values named after the prompt's locals, `align_row_kernel_names`): targets
changed by family, the row kernels whose numbering parted from the prompt's, and with `--eval` their greedy passes.
`--verify`: every target formats 7, 9 or 10 rename, restored to a module, through the verifier under the interpreter
(seed 1), a failing format-7 one with its format-6 twin. Prints the time `pair_texts` took per 1,000 rows in formats
6 and 7.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import re
import sys
import time
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2t_core.llm.align import _KERNEL, _LOAD, _loads_named_like_prompt, align_row_kernel_names  # noqa: E402
from p2t_core.llm.flatten import _fold  # noqa: E402
from p2t_core.llm.pairform import library_helpers, pair_texts, restore  # noqa: E402
from p2t_core.llm.spelled import LOOP_STYLE, match_spelling  # noqa: E402

ELEMENTWISE = ("elementwise", "multi_output")


def value_lines(text: str) -> int:
    return len(re.findall(r"^\s+v\d+ = ", text, re.M))


def fisher_less(a_pass: int, a_n: int, b_pass: int, b_n: int) -> float:
    """One-sided Fisher exact p of b_pass or fewer passes in group b, given the margins."""
    passes, n = a_pass + b_pass, a_n + b_n
    return sum(comb(b_n, x) * comb(a_n, passes - x) for x in range(0, b_pass + 1)) / comb(n, passes)


def stores_unreturned(prompt: str, target: str) -> bool | None:
    """Whether a one-kernel target stores a value the prompt does not return; None where that does not apply."""
    returned = re.findall(r"^    return (v\d+)$", prompt, re.M)
    stored = re.findall(r"tl\.store\(Out0_ptr \+ \w+, (v\d+)\.to", target)
    if not returned or not stored or target.count("@triton.jit") != 1:
        return None
    return stored[0] != returned[0]


def loads_named_otherwise(prompt: str, target: str) -> bool | None:
    """Whether a one-kernel target loads a parameter under another name than the prompt binds it to (`a0` for the
    prompt's `a1`); None where the kernel loads nothing."""
    kernels = list(_KERNEL.finditer(target))
    if len(kernels) != 1 or not _LOAD.search(kernels[0].group(3)):
        return None
    body = kernels[0].group(3)
    return _loads_named_like_prompt(body, prompt) != body


def spells_several(prompt: str, target: str) -> bool | None:
    """Whether an elementwise kernel (one kernel, no dot, no row loads) has fewer value lines than the prompt, every
    one named after a prompt local: a line spelling several of the prompt's; None where that does not apply."""
    if target.count("@triton.jit") != 1 or "tl.dot" in target or re.search(r"\bx\d+\b", target):
        return None
    prompt_values = re.findall(r"^    (v\d+) = ", prompt, re.M)
    kernel_values = re.findall(r"^    (v\d+) = ", target, re.M)
    if not prompt_values or not kernel_values:
        return None
    return len(kernel_values) < len(prompt_values) and set(kernel_values) <= set(prompt_values)


def splits_a_line(target: str) -> bool:
    """Whether a target spells one of the prompt's lines in several (the aligned names `v3_1, v3_2, v3`)."""
    return re.search(r"\bv\d+_\d+\b", target) is not None


def spellings_kept(prompt: str, target: str) -> list[tuple[str, str]]:
    """Each activation line format 9 kept whole in `prompt`, and whether the kernel has one line for it ("one"),
    spells it out ("split") or is not aligned ("other")."""
    out = []
    for name, text in re.findall(r"^\s+(v\d+) = (.+)$", prompt, re.M):
        spelling = match_spelling(ast.parse(text, mode="eval").body, _fold, LOOP_STYLE)
        if spelling is not None:
            kind = "split" if re.search(rf"^\s+{name}_1 = ", target, re.M) else \
                "one" if re.search(rf"^\s+{name} = ", target, re.M) else "other"
            out.append((spelling.op, kind))
    return out


def parts_from_prompt(target9: str, target10: str) -> bool:
    """Whether a row kernel's first-pass values, numbered v1001... (format 9), take other numbers from the prompt's
    locals (format 10): `v1005` named `v4`, or a `v2_1` on the way to one."""
    old = re.findall(r"^ +(v\w+) = ", target9, re.M)
    new = re.findall(r"^ +(v\w+) = ", target10, re.M)
    return any(a != b and re.fullmatch(r"v1\d{3}", a) and b != f"v{int(a[2:])}" for a, b in zip(old, new, strict=True))


def length_bucket(lines: int) -> str:
    return "<6" if lines < 6 else ("6-9" if lines < 10 else "10+")


def verify_target(row: dict, text: str) -> str | None:
    """The first failure of a model target (restored to a module) against the row's reference; None if it passes."""
    from p2t_core.llm.engine import check_and_verify
    from p2t_core.llm.evaluate import row_reference, row_signature, row_unit

    unit = row_unit(row)
    outcome, _, _ = check_and_verify(restore(text, unit, row["prompt"], 7), reference_source=row_reference(row),
                                     path="<align>", unit=unit, signature=row_signature(row, unit),
                                     backend="interpret", verify_dtypes=["float32"], timeout_s=60, seed=1, index=0)
    return None if outcome.stage is None else f"{outcome.stage}: {outcome.first_message[:160]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--split", action="append", help="splits to count (default: both held-out splits; train too)")
    ap.add_argument("--limit", type=int, help="the first N rows of each split")
    ap.add_argument("--eval", action="append", default=[], metavar="SPLIT=FILE")
    ap.add_argument("--verify", action="store_true", help="verify every renamed target (interpreter)")
    ap.add_argument("--spellings", action="store_true", help="format 9's kept activations against their kernels")
    args = ap.parse_args()
    verdicts = {}
    for item in args.eval:
        split, path = item.split("=", 1)
        verdicts[split] = {r["id"]: r["greedy_ok"] for r in json.loads(Path(path).read_text())["per_row"]}
    table = collections.defaultdict(lambda: [0, 0])  # (bucket, class) -> [passed, units]
    rows_table = collections.defaultdict(lambda: [0, 0])  # row kernels format 10 renames: class -> [passed, units]
    for split in args.split or ["valid_random", "valid_compositional"]:
        counts, seconds, rows, spellings = collections.Counter(), [0.0, 0.0], 0, collections.Counter()
        for line in open(args.data / f"{split}.jsonl"):
            if args.limit is not None and rows >= args.limit:
                break
            row, rows = json.loads(line), rows + 1
            t0 = time.perf_counter()
            prompt, target6 = pair_texts(row, 6)
            t1 = time.perf_counter()
            _, target7 = pair_texts(row, 7)
            seconds[0] += t1 - t0
            seconds[1] += time.perf_counter() - t1
            _, target8 = pair_texts(row, 8)
            counts["format 8 names otherwise than 7"] += target8 != target7
            for fmt, target in ((7, target7), (8, target8)):
                counts[f"stores a value not returned, format {fmt}"] += stores_unreturned(prompt, target) is True
                counts[f"one-kernel targets that store a value, format {fmt}"] += \
                    stores_unreturned(prompt, target) is not None
            otherwise = loads_named_otherwise(prompt, target6)
            counts["one-kernel targets with loads"] += otherwise is not None
            counts["loads named otherwise than the prompt's parameters (format 6)"] += otherwise is True
            prompt9, target9 = pair_texts(row, 9)
            counts["format 9 prompts changed"] += prompt9 != prompt
            counts["format 9 targets changed"] += target9 != target8
            for fmt, p, target in ((8, prompt, target8), (9, prompt9, target9)):
                several = spells_several(p, target)
                counts[f"elementwise kernels, format {fmt}"] += several is not None
                counts[f"elementwise kernels with a line spelling several prompt lines, format {fmt}"] += \
                    several is True
                counts[f"targets spelling a prompt line in several, format {fmt}"] += splits_a_line(target)
            target10 = align_row_kernel_names(prompt9, target9, library_helpers())  # pair_texts(row, 10)
            if target10 != target9:
                parting = parts_from_prompt(target9, target10)
                counts[f"format 10 targets changed, {row['family']}"] += 1
                counts["format 10 row kernels numbered otherwise than the prompt (format 9)"] += parting
                if args.verify:
                    failure = verify_target(row, target10)
                    counts["format 10 changed and verified" if failure is None else "format 10 changed, failing"] += 1
                    if failure is not None:
                        print(f"  {row['id']} (format 10): {failure}")
                ok = verdicts.get(split, {}).get(row["id"])
                if ok is not None:
                    cell = rows_table["parting" if parting else "alike"]
                    cell[0] += ok
                    cell[1] += 1
            if args.spellings and prompt9 != prompt:
                spellings.update(spellings_kept(prompt9, target9))
            if args.verify and target7 != target6:
                failure = verify_target(row, target7)
                counts["renamed and verified" if failure is None else "renamed, failing"] += 1
                if failure is not None:
                    twin = verify_target(row, target6)
                    print(f"  {row['id']}: {failure}\n    format 6: {twin or 'passes'}")
            if args.verify and target9 != target8:
                failure = verify_target(row, target9)
                counts["format 9 changed and verified" if failure is None else "format 9 changed, failing"] += 1
                if failure is not None:
                    print(f"  {row['id']} (format 9): {failure}")
            if row["family"] not in ELEMENTWISE:
                counts["other families renamed"] += target7 != target6
                continue
            alike = value_lines(prompt) == value_lines(target6)
            kind = "renamed" if target7 != target6 else ("alike" if alike else "parting, kept")
            counts[kind] += 1
            ok = verdicts.get(split, {}).get(row["id"])
            if ok is not None:
                cell = table[(length_bucket(value_lines(prompt)), "alike" if alike else kind)]
                cell[0] += ok
                cell[1] += 1
        print(f"{split} ({rows} rows): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"  pair_texts per 1,000 rows: format 6 {1000 * seconds[0] / rows:.1f} s, "
              f"format 7 {1000 * seconds[1] / rows:.1f} s")
        if spellings:
            ops = sorted({op for op, _ in spellings})
            print("  activations kept whole by format 9 (kernel: one line / spelled out / not aligned): " + ", ".join(
                f"{op} {spellings[op, 'one']}/{spellings[op, 'split']}/{spellings[op, 'other']}" for op in ops))
    if rows_table:
        print("greedy passes of the row-kernel units format 10 renames (format-9 numbering against the prompt's): "
              + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(rows_table.items())))
    if table:
        print("greedy passes of elementwise units (prompt lines, format-6 numbering):")
        for key in sorted(table):
            print(f"  {key[0]:>4} {key[1]:14s} {table[key][0]}/{table[key][1]}")
        long_alike = [sum(table[(b, "alike")][i] for b in ("6-9", "10+")) for i in (0, 1)]
        long_parting = [sum(table[(b, "renamed")][i] for b in ("6-9", "10+")) for i in (0, 1)]
        print(f"6+ lines: alike {long_alike[0]}/{long_alike[1]}, parting (renamed by format 7) "
              f"{long_parting[0]}/{long_parting[1]}, one-sided Fisher p = "
              f"{fisher_less(*long_alike, *long_parting):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
