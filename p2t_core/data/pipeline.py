"""The synthetic data pipeline: example units → renderings → canonical prompts → verified (prompt, target) pairs.

`build(out_dir, pairs, workers, seed)`:

1. **Units** come from the plugins' `p2t_example_units(rng, count)` hook (built-in and third-party plugins
   alike; the built-in plugins implement it by calling the generators in `p2t_core.data.generators`),
   deduplicated by structure; everything is deterministic for a seed. A `UnitFilter` (`--families`, `--min-ops`)
   drops the units it does not accept before they are rendered. Only without plugins
   (`use_plugins=False`, or when no plugin implements the hook) are the generators called directly.
2. **Renderings**: each unit in every style it admits (`render.applicable_styles`), with surface variation
   seeded by (seed, unit, style); each is canonicalized (`canonical.canonicalize`), and renderings are
   deduplicated by `canonical_hash`: the first occurrence wins. `pairs` is the number of distinct
   renderings to attempt; the failures are counted by reason, so `pairs = written + failed`.
3. **Target**: the design lowers a pair's target from the op graph that generated it, not from its
   rendering. The compiler exposes `compile_unit_source` only, so the pipeline compiles the deterministic
   torch-style rendering of the same unit (`render.target_source`: a function, or for the `module` style
   a torch-style Module class), with the parameters' ranks from the unit (`shapes=`), and uses that module
   as the target of *every* styling of the unit. A rendering the frontend cannot read (NumPy, unusual
   spellings) still gets a target. The verifier's signature is built from the unit (`unit_signature`):
   its size variables say which dims are shared, which the compiler cannot know from unannotated code.
4. **Verification**: every pair's target is verified against the pair's own rendering as the reference
   (NumPy renderings: against the torch rendering, since the verifier calls references with torch
   tensors), float32 only, small shapes, in one long-lived `p2t_core.verify.batch` worker per pipeline
   worker process: the target runs once per input set and its outputs are compared with each rendering's
   reference outputs on the same inputs (see `verify_batch`). Failures are never dropped silently: they
   are counted by reason (`unsupported`, `compile_error`, `compiler_crash`, `verification_failed`, `timeout`, ...).
5. **Cache**: one JSON file per pair under `cache_dir/<key[:2]>/<key>.json`, key = sha256(rendering,
   target source, compiler fingerprint, fingerprint of the plugins the unit's family and ops belong to).
   A plugin's fingerprint is the hash of its source file(s), so editing one plugin rebuilds only the pairs
   that use it. Entries are written atomically (tmp file + `os.replace`) as each pair completes and carry
   the sha256 of their own content: an entry that fails its check is rebuilt, never used. Interrupting a
   build loses nothing already verified; the next build resumes from the cache. Transient failures
   (timeouts, crashes of the verifier, a missing compiler) are not cached. Stages 1-2 are cached too: the
   candidate list of a request, with each unit's target sources, lives in `cache_dir/candidates/<key>.jsonl`,
   key = sha256(seed, pairs, the generator and renderer sources, the plugins' sources), with the sha256 of its
   content in its first line. A pair entry is two lines: `{"key", "sha256"}`, then the entry's JSON (the sha256
   is of those bytes, so checking an entry costs no re-serialization).
6. **Splits**: compositional held-out first (a seed-chosen set of unordered op pairs; a unit with any of
   them goes to `valid_compositional.jsonl`, so no training unit contains a held-out combination), then a
   random held-out share of units (`valid_random.jsonl`), the rest `train.jsonl`. All stylings of a unit
   land in the same split. `manifest.json` holds counts, file sha256s, versions, seed and failures.

Work runs in `workers` spawned processes (`workers <= 1`: in this process); each task is a batch of units,
so a worker compiles a unit's target once and verifies all of its renderings in one batch.
`compile_fn` and `verify_fn` can be injected (tests use fakes); they must be picklable module-level
functions when `workers > 1`.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import itertools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

from p2t_core.data import examples as ex
from p2t_core.data.canonical import canonical_hash, canonicalize
from p2t_core.data.generators import generate_units
from p2t_core.data.render import (
    applicable_styles,
    forward_tensors,
    held_init,
    held_tensors,
    render,
    size_args,
    target_source,
    unit_entry,
)

GENERATOR_VERSION = "3"  # 2: targets compiled with the unit's ranks, batch verifier; 3: two-line cache entries
SPLITS = ("train", "valid_random", "valid_compositional")
RANDOM_HOLDOUT = 0.02
COMPOSITIONAL_HOLDOUT = 0.05  # at most this share of units is held out by op combination
VERIFY_DTYPES = ("float32",)
NOT_CACHED = {"timeout", "no_compiler", "verify_crash", "worker_died"}
SMALL_SIZES = (3, 5, 4, 7, 6, 2, 9, 8)
VERIFY_TIMEOUT_S = 30.0  # per case (and per candidate load) in the batch verifier
FORKED_LOOKUP_MIN = 2000  # candidates below which forking cache readers costs more than it saves


# --- fingerprints ---------------------------------------------------------------------------------

def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(set(map(Path, paths))):
        h.update(str(p.name).encode())
        h.update(b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def _plugin_files(plugin) -> list[Path]:
    mod = plugin if inspect.ismodule(plugin) else inspect.getmodule(type(plugin))
    if mod is None:
        return []
    if hasattr(mod, "__path__"):  # a package: all its Python files
        return [p for d in mod.__path__ for p in Path(d).rglob("*.py")]
    try:
        f = inspect.getsourcefile(mod)
    except TypeError:
        f = None
    return [Path(f)] if f else []


def compiler_fingerprint() -> str:
    """Hash of the compiler's and verifier's sources (p2t_core, except this data package)."""
    root = Path(__file__).resolve().parents[1]
    files = [p for p in root.rglob("*.py") if "data" not in p.relative_to(root).parts[:1]]
    return _hash_files(files)


def data_fingerprint() -> str:
    """Hash of the generator/renderer sources (recorded in the manifest)."""
    return _hash_files(Path(__file__).resolve().parent.glob("*.py"))


@dataclass
class Fingerprints:
    compiler: str
    plugins: dict[str, str] = field(default_factory=dict)  # plugin name -> hash of its source
    op_owner: dict[str, str] = field(default_factory=dict)  # op name -> plugin name

    def relevant(self, unit: ex.ExampleUnit) -> list[str]:
        """The plugins a unit's pairs depend on: the owners of its ops and the plugin named like its family.
        An op no plugin claims makes the unit depend on every plugin (conservative)."""
        if any(op not in self.op_owner for op in unit.ops):
            return sorted(self.plugins)
        names = {self.op_owner[op] for op in unit.ops}
        if unit.family in self.plugins:
            names.add(unit.family)
        return sorted(n for n in names if n in self.plugins)

    def for_unit(self, unit: ex.ExampleUnit) -> str:
        text = "\n".join(f"{n}={self.plugins[n]}" for n in self.relevant(unit))
        return hashlib.sha256(text.encode()).hexdigest()


def _load_plugins():
    try:
        from p2t_core.plugins import default_plugins

        return default_plugins()
    except Exception:  # plugins not importable yet (or broken): the built-in generators still work
        return None


def default_fingerprints(plugins=None) -> Fingerprints:
    plugins = plugins if plugins is not None else _load_plugins()
    fp = Fingerprints(compiler_fingerprint())
    if plugins is None:
        return fp
    for plugin in plugins.pm.get_plugins():
        name = plugins.pm.get_name(plugin)
        fp.plugins[name] = _hash_files(_plugin_files(plugin))
    for op_name, op in plugins.registry.ops.items():
        if op.plugin:
            fp.op_owner[op_name] = op.plugin
    return fp


# --- units and candidates -------------------------------------------------------------------------

def hook_units(pm, rng: random.Random, count: int) -> list[ex.ExampleUnit]:
    """Units from every plugin implementing `p2t_example_units` (third-party plugins join automatically)."""
    if pm is None:
        return []
    results = [[u for u in (result or []) if isinstance(u, ex.ExampleUnit)]
               for result in pm.hook.p2t_example_units(rng=rng, count=count)]
    # Interleaved in proportion (unit i of a plugin returning n sits at i / n), so any prefix, i.e. a small
    # build, mixes the plugins' families in the shares they return.
    order = sorted((i / len(r), j, i) for j, r in enumerate(results) for i in range(len(r)))
    return [results[j][i] for _, j, i in order]


def iter_units(seed: int, pm=None, chunk: int = 32):
    """Deterministic stream of units for `seed`: each round the plugins' units (the `p2t_example_units` hook);
    the built-in generators directly only when there is no plugin manager or no plugin implements the hook."""
    seen: set[str] = set()
    builtin = pm is None
    for r in itertools.count():
        units = [] if builtin else hook_units(pm, random.Random(f"{seed}:hook:{r}"), chunk)
        if not units:
            if not builtin and r == 0:
                builtin = True
            if builtin:
                units = generate_units(random.Random(f"{seed}:builtin:{r}"), chunk)
        for u in units:
            k = u.key()
            if k not in seen:
                seen.add(k)
                yield u


@dataclass
class Candidate:
    unit: ex.ExampleUnit
    style: str
    source: str
    prompt: str
    hash: str
    targets: dict[str, str] = field(default_factory=dict)  # the unit's target sources by kind (shared)
    key: str = ""

    @property
    def target(self) -> str:
        return self.targets[target_kind(self.style)]

    @property
    def meta(self) -> dict:
        return {"family": self.unit.family, "style": self.style, "ops": list(self.unit.ops),
                "ranks": tensor_ranks(self.unit, self.style), "dtypes": list(VERIFY_DTYPES)}


@dataclass(frozen=True)
class UnitFilter:
    """The generated units a build keeps: e.g. only long elementwise chains, the units the model fails most
    (docs/BENCHMARKS.md). It rejects units after they are generated, so the kept ones follow the generators'
    own distribution, conditioned on the filter. `min_ops` counts distinct op kinds (`ExampleUnit.ops`)."""

    families: tuple[str, ...] = ()
    min_ops: int = 0

    def __call__(self, unit: ex.ExampleUnit) -> bool:
        return (not self.families or unit.family in self.families) and len(unit.ops) >= self.min_ops

    @property
    def active(self) -> bool:
        return bool(self.families) or self.min_ops > 0

    def as_dict(self) -> dict:
        return {"families": list(self.families), "min_ops": self.min_ops}


def make_candidates(seed: int, pairs: int, pm=None, stats: Counter | None = None,
                    keep: UnitFilter = UnitFilter()) -> list[Candidate]:
    """`pairs` distinct (by canonical hash) renderings of the units `keep` accepts, deterministic for `seed`."""
    stats = stats if stats is not None else Counter()
    out: list[Candidate] = []
    seen: set[str] = set()
    for unit in iter_units(seed, pm, chunk=max(8, min(256, pairs // 4))):
        stats["units"] += 1
        if stats["units"] > 50 * pairs + 1000:
            break
        if not keep(unit):
            continue
        try:
            styles = applicable_styles(unit)
            targets = unit_targets(unit, styles)
        except Exception as e:  # a plugin's malformed unit: counted, not fatal
            stats[f"bad_unit:{type(e).__name__}"] += 1
            continue
        for style in styles:
            try:
                source = render(unit, style, random.Random(f"{seed}:{unit.key()}:{style}"))
                prompt = canonicalize(source)
            except Exception as e:
                stats[f"render_error:{type(e).__name__}"] += 1
                continue
            h = canonical_hash(prompt)
            if h in seen:
                stats["duplicates"] += 1
                continue
            seen.add(h)
            out.append(Candidate(unit, style, source, prompt, h, targets))
            if len(out) >= pairs:
                return out
    return out


def _seal(key: str, body: bytes) -> bytes:
    """A cache file: a header line `{"key", "sha256"}`, then `body`, whose bytes the sha256 is of."""
    return json.dumps({"key": key, "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n" + body


def _unseal(data: bytes, key: str) -> bytes | None:
    """The body of a sealed file, or None when its header names another key or its hash does not match."""
    header, body = data.split(b"\n", 1)
    head = json.loads(header)
    return body if head.get("key") == key and hashlib.sha256(body).hexdigest() == head.get("sha256") else None


def _candidates_key(seed: int, pairs: int, fps: Fingerprints, keep: UnitFilter = UnitFilter()) -> str:
    """What a candidate list depends on: the request (with its unit filter), the generator/renderer sources and
    the plugins' sources (their example hooks make the units)."""
    parts = [GENERATOR_VERSION, str(seed), str(pairs), data_fingerprint(), sys.version.split()[0],
             *(f"{n}={h}" for n, h in sorted(fps.plugins.items()))]
    if keep.active:  # unfiltered requests keep the keys of caches built before filters existed
        parts.append(json.dumps(keep.as_dict(), sort_keys=True))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _candidates_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "candidates" / f"{key}.jsonl"


def tensor_ranks(unit: ex.ExampleUnit, style: str) -> list[int]:
    """The ranks of the tensors the rendering's entry takes (`render.forward_tensors`): the `# ranks:` line of the
    model's prompt, as the engine writes it from the signature."""
    return [p.rank for p in forward_tensors(unit, style)]


def target_kind(style: str) -> str:
    """The target of a `module` rendering is a Module class; every other rendering's is a function."""
    return "module" if style == "module" else "torch"


def unit_targets(unit: ex.ExampleUnit, styles) -> dict[str, str]:
    """Target sources by kind: those of the renderings' styles, and the torch one (the NumPy renderings'
    reference)."""
    return {kind: target_source(unit, kind) for kind in sorted({"torch", *map(target_kind, styles)})}


def save_candidates(cache_dir: Path, key: str, cands: list[Candidate], stats: Counter) -> None:
    """One file per request: a header line (key, sha256 of the rest), then a line per unit (with its target
    sources) and a line per candidate."""
    units: dict[str, int] = {}
    lines = []
    for c in cands:
        uk = c.unit.key()
        if uk not in units:
            units[uk] = len(units)
            lines.append(json.dumps({"unit": ex.to_json(c.unit), "targets": c.targets}))
        lines.append(json.dumps({"u": units[uk], "style": c.style, "source": c.source, "prompt": c.prompt,
                                 "hash": c.hash}))
    lines.append(json.dumps({"stats": dict(stats)}))
    path = _candidates_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, _seal(key, "\n".join(lines).encode()))


def load_candidates(cache_dir: Path, key: str) -> tuple[list[Candidate], Counter] | None:
    """The cached candidate list, or None when missing or failing its hash (then it is made again)."""
    try:
        body = _unseal(_candidates_path(cache_dir, key).read_bytes(), key)
        if body is None:
            return None
        units: list[tuple[ex.ExampleUnit, dict[str, str]]] = []
        cands: list[Candidate] = []
        stats: Counter = Counter()
        for line in body.split(b"\n"):
            o = json.loads(line)
            if "unit" in o:
                units.append((ex.from_json(o["unit"]), o["targets"]))
            elif "stats" in o:
                stats.update(o["stats"])
            else:
                unit, targets = units[o["u"]]
                cands.append(Candidate(unit, o["style"], o["source"], o["prompt"], o["hash"], targets))
        return cands, stats
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def unit_signature(unit: ex.ExampleUnit, style: str = "torch"):
    """The `Signature` the verifier needs, built from the unit (used when the compiler gives none)."""
    from p2t_core.signature import InitArg, ModuleTensor, ScalarParam, Signature, TensorParam

    scalars = unit.scalar_params
    if style == "module":  # held tensors are the module's own, sized by constructor arguments (render.py)
        held = held_tensors(unit)
        tensors = tuple(TensorParam(p.name, tuple(p.dims)) for p in forward_tensors(unit, style))
        sizes = tuple(InitArg(a, "int", None, d) for p in held for a, d in zip(size_args(unit, p), p.dims, strict=True))
        return Signature(unit_entry(unit, style), "module", tensors, len(unit.outputs),
                         init_args=sizes + tuple(InitArg(p.name, p.kind, p.default) for p in scalars),
                         module_tensors=tuple(ModuleTensor(p.name, tuple(p.dims), held_init(p)) for p in held))
    params = tuple(TensorParam(p.name, tuple(p.dims)) if p.is_tensor else ScalarParam(p.name, p.kind, p.default)
                   for p in unit.params)
    return Signature(unit.name, "function", params, len(unit.outputs))


def small_shapes(signature) -> list[dict[str, int]]:
    """Two small bindings of the signature's size variables (distinct sizes, so a swapped dim shows)."""
    names = list(signature.size_vars)
    out = []
    for shift in (0, 3):
        b = {}
        for i, n in enumerate(names):
            b[n] = max(SMALL_SIZES[(i + shift) % len(SMALL_SIZES)], signature.min_sizes.get(n, 1))
        out.append(b)
    return out


# --- cache ------------------------------------------------------------------------------------------

def cache_key(source: str, target_src: str, compiler_fp: str, plugin_fp: str) -> str:
    h = hashlib.sha256()
    for part in (GENERATOR_VERSION, source, target_src, compiler_fp, plugin_fp):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _entry_file(cache_dir, key: str) -> str:
    # a plain string: pathlib's parsing was a tenth of a warm rebuild's 50k lookups
    return os.path.join(cache_dir, key[:2], key + ".json")


def entry_path(cache_dir: Path, key: str) -> Path:
    return Path(_entry_file(cache_dir, key))


def write_entry(cache_dir: Path, key: str, entry: dict) -> None:
    """The entry's JSON, sealed (`_seal`), written through a temp file, fsync and a rename."""
    path = entry_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_seal(key, json.dumps(entry, sort_keys=True).encode()))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_entry(cache_dir: Path, key: str) -> dict | None:
    """The cached entry, or None when missing or corrupt (bad JSON, wrong key, content hash mismatch)."""
    try:
        with open(_entry_file(cache_dir, key), "rb") as f:
            body = _unseal(f.read(), key)
        if body is None:
            return None
        entry = json.loads(body)
        return entry if isinstance(entry, dict) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- the work (runs in workers) ------------------------------------------------------------------------

def _default_compile(source: str, unit: str, shapes: dict | None = None):
    from p2t_core.engine import compile_unit_source

    return compile_unit_source(source, unit, shapes=shapes)


def unit_shapes(unit: ex.ExampleUnit) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of the tensor parameters (default sizes): the compiler takes the ranks from them."""
    sizes = ex.bind_sizes(unit)
    return {p.name: tuple(sizes[d] if isinstance(d, str) else d for d in p.dims) for p in unit.tensor_params}


_VERIFIER = None  # this process's long-lived batch verifier (one per pipeline worker process)


def batch_verifier(backend: str):
    global _VERIFIER
    if _VERIFIER is None or _VERIFIER.backend != (backend if backend != "auto" else _VERIFIER.backend):
        from p2t_core.verify.batch import BatchVerifier

        close_verifier()
        _VERIFIER = BatchVerifier(backend, timeout_s=VERIFY_TIMEOUT_S)
        atexit.register(close_verifier)
    return _VERIFIER


def close_verifier() -> None:
    global _VERIFIER
    if _VERIFIER is not None:
        _VERIFIER.close()
        _VERIFIER = None


def _default_verify(reference_source, candidate_source, signature, **kw):
    from p2t_core.verify import verify

    return verify(reference_source, candidate_source, signature, **kw)


def classify_compile_error(e: BaseException) -> str:
    from p2t_core.errors import P2TError, UnsupportedError

    if isinstance(e, UnsupportedError):
        return "unsupported"
    if isinstance(e, P2TError):
        return "compile_error"
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, (ImportError, AttributeError)) and "p2t_core.engine" in str(e):
        return "no_compiler"
    return "compiler_crash"


def classify_report(report) -> str:
    text = " ".join([str(getattr(report, "error", "") or "")]
                    + [str(getattr(c, "message", "")) for c in getattr(report, "cases", []) or []]).lower()
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "died" in text or "signal" in text:
        return "worker_died"
    return "verification_failed"


def _message(report) -> str:
    if getattr(report, "error", None):
        return str(report.error)[:500]
    for c in getattr(report, "cases", []) or []:
        if getattr(c, "status", "") == "fail":
            return str(c.message)[:500]
    return ""


def run_task(task: dict, compile_fn: Callable | None, verify_fn: Callable | None, cache_dir: str,
             backend: str) -> list[tuple[str, dict]]:
    """Compile one unit's target once and verify each of its pairs; write every entry as it completes."""
    compile_fn = compile_fn or _default_compile
    unit = ex.from_json(task["unit"])
    style_kind = task["target_style"]
    done: list[tuple[str, dict]] = []

    def finish(pair: dict, entry: dict) -> None:
        entry = {**pair["meta"], "source": pair["source"], "prompt": pair["prompt"], "hash": pair["hash"],
                 **entry}
        if entry.get("reason") not in NOT_CACHED:
            write_entry(Path(cache_dir), pair["key"], entry)
        done.append((pair["key"], entry))

    t0 = time.perf_counter()
    try:
        entry = unit_entry(unit, style_kind)
        if "shapes" in inspect.signature(compile_fn).parameters:
            compiled = compile_fn(task["target_source"], entry, shapes=unit_shapes(unit))
        else:
            compiled = compile_fn(task["target_source"], entry)
        target = compiled.module_source
        signature = unit_signature(unit, style_kind) if verify_fn is None else \
            (getattr(compiled, "signature", None) or unit_signature(unit, style_kind))
        n_kernels = int(getattr(compiled, "n_kernels", 0) or 0)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - every compiler failure is counted by reason
        reason = classify_compile_error(e)
        for pair in task["pairs"]:
            finish(pair, {"status": "fail", "reason": reason, "message": f"{type(e).__name__}: {e}"[:500],
                          "compile_s": time.perf_counter() - t0})
        return done
    compile_s = time.perf_counter() - t0
    base = {"target": target, "n_kernels": n_kernels, "compile_s": compile_s}

    def record(pair: dict, report, verify_s: float) -> None:
        if getattr(report, "passed", False):
            finish(pair, {**base, "status": "ok", "verify_s": verify_s})
        else:
            finish(pair, {**base, "status": "fail", "reason": classify_report(report), "message": _message(report),
                          "verify_s": verify_s})

    if verify_fn is None:  # the batch verifier: the target runs once per input set for all the renderings
        from p2t_core.verify.batch import verify_batch

        t1 = time.perf_counter()
        try:
            reports = verify_batch([(pair["reference"], target, signature) for pair in task["pairs"]],
                                   backend=backend, dtypes=VERIFY_DTYPES, seed=int(task["pairs"][0]["key"][:8], 16),
                                   verifier=batch_verifier(backend))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001
            for pair in task["pairs"]:
                finish(pair, {**base, "status": "fail", "reason": "verify_crash",
                              "message": f"{type(e).__name__}: {e}"[:500]})
            return done
        per = (time.perf_counter() - t1) / max(len(reports), 1)
        for pair, report in zip(task["pairs"], reports, strict=True):
            record(pair, report, per)
        return done

    shapes = small_shapes(signature)
    for pair in task["pairs"]:
        t1 = time.perf_counter()
        try:
            report = verify_fn(pair["reference"], target, signature, backend=backend, dtypes=VERIFY_DTYPES,
                               shapes=shapes, seed=int(pair["key"][:8], 16))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001
            finish(pair, {**base, "status": "fail", "reason": "verify_crash",
                          "message": f"{type(e).__name__}: {e}"[:500]})
            continue
        record(pair, report, time.perf_counter() - t1)
    return done


def run_batch(tasks: list[dict], compile_fn, verify_fn, cache_dir: str, backend: str) -> list[tuple[str, dict]]:
    out = []
    for task in tasks:
        out += run_task(task, compile_fn, verify_fn, cache_dir, backend)
    return out


# --- splits -----------------------------------------------------------------------------------------

def op_pairs(ops) -> set[tuple[str, str]]:
    return set(itertools.combinations(sorted(set(ops)), 2))


def choose_heldout_combos(units: list[ex.ExampleUnit], seed: int,
                          share: float = COMPOSITIONAL_HOLDOUT) -> list[tuple[str, str]]:
    """Unordered op pairs to hold out: picked in seeded random order while the units they capture stay
    within `share` of all units (so a very common pair such as (add, mul) is never chosen)."""
    by_pair: dict[tuple[str, str], set[str]] = {}
    keys = {}
    for u in units:
        k = u.key()
        keys[k] = u
        for p in op_pairs(u.ops):
            by_pair.setdefault(p, set()).add(k)
    budget = int(share * len(keys))
    order = sorted(by_pair)
    random.Random(f"{seed}:compositional").shuffle(order)
    chosen, captured = [], set()
    for p in order:
        new = by_pair[p] - captured
        if new and len(captured) + len(new) <= budget:
            chosen.append(p)
            captured |= new
    return sorted(chosen)


def split_of(unit: ex.ExampleUnit, seed: int, heldout: set[tuple[str, str]],
             random_share: float = RANDOM_HOLDOUT) -> str:
    if op_pairs(unit.ops) & heldout:
        return "valid_compositional"
    h = int(hashlib.sha256(f"{seed}:{unit.key()}".encode()).hexdigest()[:8], 16)
    return "valid_random" if h / 2**32 < random_share else "train"


# --- build --------------------------------------------------------------------------------------------

@dataclass
class BuildSummary:
    out_dir: str
    requested: int = 0
    candidates: int = 0
    written: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    by_family: dict[str, int] = field(default_factory=dict)
    by_style: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    failures_by_family: dict[str, dict[str, int]] = field(default_factory=dict)
    cached: int = 0
    corrupt: int = 0
    computed: int = 0
    units: int = 0
    duplicates: int = 0
    heldout_combos: list = field(default_factory=list)
    render_s: float = 0.0
    work_s: float = 0.0
    duration_s: float = 0.0

    def table(self):
        from rich.table import Table

        t = Table(title=f"p2t data build → {self.out_dir}")
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("pairs written", str(self.written))
        for s in SPLITS:
            t.add_row(f"  {s}", str(self.splits.get(s, 0)))
        t.add_row("candidates (distinct canonical)", str(self.candidates))
        t.add_row("units generated / duplicate renderings", f"{self.units} / {self.duplicates}")
        t.add_row("from cache / computed / corrupt entries", f"{self.cached} / {self.computed} / {self.corrupt}")
        for k, v in sorted(self.by_family.items()):
            t.add_row(f"family {k}", str(v))
        for k, v in sorted(self.by_style.items()):
            t.add_row(f"style {k}", str(v))
        for k, v in sorted(self.failures.items()):
            t.add_row(f"[red]failed: {k}[/red]", str(v))
        t.add_row("held-out op combinations", ", ".join("+".join(p) for p in self.heldout_combos) or "-")
        t.add_row("time render+canonicalize / work / total",
                  f"{self.render_s:.1f} s / {self.work_s:.1f} s / {self.duration_s:.1f} s")
        return t


def verification_reference(c: Candidate) -> str:
    """The Python a pair's target is verified against: its own rendering, or for a NumPy rendering its torch
    twin (the verifier calls references with torch tensors). Rows keep it, so `p2t eval` checks the same way."""
    return c.targets["torch"] if c.style == "numpy" else c.source


def pair_row(c: Candidate, entry: dict) -> str:
    """The JSONL line of a verified pair."""
    return json.dumps({"id": f"{c.unit.family}-{c.hash[:16]}", "hash": c.hash, "prompt": c.prompt, "source": c.source,
                       "reference": verification_reference(c), "target": entry["target"], "family": c.unit.family,
                       "style": c.style, "ops": list(c.unit.ops),
                       "ranks": tensor_ranks(c.unit, c.style), "dtypes": list(VERIFY_DTYPES),
                       "n_kernels": entry.get("n_kernels", 0)}, sort_keys=True)


_LOOKUP: tuple[Path, list[Candidate]] | None = None  # what forked cache readers inherit


def _lookup_range(bounds: tuple[int, int]) -> list[tuple[dict | None, str | None]]:
    """Cache lookups of candidates [lo, hi): per candidate its entry, slimmed to the status fields when it
    holds a verified pair, whose JSONL line comes along (the target text is the bulk of the work)."""
    cache, cands = _LOOKUP
    out = []
    for c in cands[bounds[0]:bounds[1]]:
        e = read_entry(cache, c.key)
        if e is not None and e.get("status") == "ok":
            out.append(({"status": "ok", "n_kernels": e.get("n_kernels", 0)}, pair_row(c, e)))
        else:
            out.append((e, None))
    return out


def lookup_cache(cache: Path, cands: list[Candidate], workers: int) -> list[tuple[dict | None, str | None]]:
    """`_lookup_range` over every candidate: in forked processes when `workers > 1` and the platform forks
    (half the time of a warm rebuild is reading and re-serializing 50k cached targets), else here."""
    global _LOOKUP
    _LOOKUP = (cache, cands)
    try:
        if workers <= 1 or len(cands) < FORKED_LOOKUP_MIN or "fork" not in get_all_start_methods():
            return _lookup_range((0, len(cands)))
        step = -(-len(cands) // (4 * workers))
        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_lookup_range, [(i, i + step) for i in range(0, len(cands), step)])
        return [r for part in parts for r in part]
    finally:
        _LOOKUP = None


def _atomic_write(path: Path, text: str | bytes) -> str:
    """Write through a temp file and a rename; a file that already holds exactly these bytes is left alone (a
    warm rebuild into the same directory rewrites nothing). Returns the sha256 of the content."""
    data = text.encode() if isinstance(text, str) else text
    digest = hashlib.sha256(data).hexdigest()
    try:
        if path.stat().st_size == len(data) and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return digest
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return digest


def build(out_dir, pairs: int = 1000, workers: int = 1, seed: int = 0, cache_dir=None, *,
          compile_fn: Callable | None = None, verify_fn: Callable | None = None,
          fingerprints: Fingerprints | None = None, plugins=None, use_plugins: bool = True,
          backend: str = "interpret", batch_units: int = 4, progress: bool = True,
          quiet: bool = False, heldout: list | None = None, keep: UnitFilter = UnitFilter()) -> BuildSummary:
    """Build the pair corpus in `out_dir` (see the module docstring). `cache_dir` defaults to
    `out_dir/cache`. `plugins` (a `p2t_core.plugins.Plugins`) defaults to `default_plugins()`;
    `use_plugins=False` takes units from the built-in generators only. `heldout` fixes the held-out op
    combinations (e.g. an earlier build's, so a larger corpus keeps that build's compositional split out of its
    training set) instead of choosing them for this corpus. `keep` builds only the units it accepts (a corpus of
    hard units to add to a training set; its held-out splits then hold such units too). Returns a `BuildSummary`."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if use_plugins and plugins is None:
        plugins = _load_plugins()
    pm = plugins.pm if (use_plugins and plugins is not None) else None
    fps = fingerprints or default_fingerprints(plugins if use_plugins else None)
    summary = BuildSummary(str(out), requested=pairs)

    # 1-2: units, renderings, canonical forms, dedup
    t0 = time.perf_counter()
    gen_stats: Counter = Counter()
    ckey = _candidates_key(seed, pairs, fps, keep)
    loaded = load_candidates(cache, ckey)
    if loaded is None:
        cands = make_candidates(seed, pairs, pm, gen_stats, keep)
        save_candidates(cache, ckey, cands, gen_stats)
    else:
        cands, gen_stats = loaded
    summary.units, summary.duplicates, summary.candidates = gen_stats["units"], gen_stats["duplicates"], len(cands)
    unit_fp: dict[str, str] = {}
    for c in cands:
        uk = c.unit.key()
        if uk not in unit_fp:
            unit_fp[uk] = fps.for_unit(c.unit)
        c.key = cache_key(c.source, c.target, fps.compiler, unit_fp[uk])
    summary.render_s = time.perf_counter() - t0

    # 3-5: cache lookups; the misses grouped by (unit, target kind)
    entries: dict[str, dict] = {}
    row_text: dict[str, str] = {}
    tasks: dict[tuple[str, str], dict] = {}
    for c, (e, row) in zip(cands, lookup_cache(cache, cands, workers), strict=True):
        if e is not None:
            entries[c.key] = e
            if row is not None:
                row_text[c.key] = row
            summary.cached += 1
            continue
        if entry_path(cache, c.key).exists():
            summary.corrupt += 1
        kind = target_kind(c.style)
        task = tasks.setdefault((c.unit.key(), kind), {"unit": ex.to_json(c.unit), "target_style": kind,
                                                       "target_source": c.target, "pairs": []})
        reference = verification_reference(c)
        task["pairs"].append({"key": c.key, "source": c.source, "prompt": c.prompt, "hash": c.hash,
                              "reference": reference, "meta": c.meta})
    t0 = time.perf_counter()
    todo = list(tasks.values())
    n_todo = sum(len(t["pairs"]) for t in todo)
    bar = None
    if progress and n_todo:
        from tqdm import tqdm

        bar = tqdm(total=n_todo, desc="verify pairs", unit="pair", file=sys.stderr, disable=None)

    by_key = {c.key: c for c in cands}

    def collect(results):
        for key, entry in results:
            entries[key] = entry
            if entry.get("status") == "ok":
                row_text[key] = pair_row(by_key[key], entry)
            summary.computed += 1
        if bar is not None:
            bar.update(len(results))

    try:
        batches = [todo[i:i + batch_units] for i in range(0, len(todo), batch_units)]
        if workers <= 1:
            for b in batches:
                collect(run_batch(b, compile_fn, verify_fn, str(cache), backend))
        elif batches:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                try:
                    pending = {pool.submit(run_batch, b, compile_fn, verify_fn, str(cache), backend)
                               for b in batches}
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            try:
                                collect(f.result())
                            except Exception as e:  # a worker process died: its pairs are not cached
                                summary.failures[f"worker_died:{type(e).__name__}"] = \
                                    summary.failures.get(f"worker_died:{type(e).__name__}", 0) + 1
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
        close_verifier()
    summary.work_s = time.perf_counter() - t0

    # 6: splits and files
    ok = [c for c in cands if entries.get(c.key, {}).get("status") == "ok"]
    failures: Counter = Counter()
    fail_fam: dict[str, Counter] = {}
    for c in cands:
        e = entries.get(c.key)
        if e is None:
            reason = "not_run"
        elif e.get("status") == "ok":
            continue
        else:
            reason = e.get("reason", "unknown")
        failures[reason] += 1
        fail_fam.setdefault(c.unit.family, Counter())[reason] += 1
    units_ok = list({c.unit.key(): c.unit for c in ok}.values())
    heldout = (sorted(tuple(sorted(p)) for p in heldout) if heldout is not None
               else choose_heldout_combos(units_ok, seed))
    held = set(heldout)
    rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    for c in ok:
        rows[split_of(c.unit, seed, held)].append(row_text[c.key])
        summary.by_family[c.unit.family] = summary.by_family.get(c.unit.family, 0) + 1
        summary.by_style[c.style] = summary.by_style.get(c.style, 0) + 1
    files = {}
    for s in SPLITS:
        data = ("\n".join(rows[s]) + "\n").encode() if rows[s] else b""
        files[f"{s}.jsonl"] = _atomic_write(out / f"{s}.jsonl", data)
        summary.splits[s] = len(rows[s])
    summary.written = len(ok)
    summary.failures.update(failures)
    summary.failures_by_family = {k: dict(v) for k, v in sorted(fail_fam.items())}
    summary.heldout_combos = [list(p) for p in heldout]
    manifest = {
        "seed": seed, "requested": pairs, "candidates": len(cands), "written": len(ok),
        "counts": summary.splits, "by_family": summary.by_family, "by_style": summary.by_style,
        "failures": summary.failures, "failures_by_family": summary.failures_by_family,
        "files": files, "heldout_combinations": summary.heldout_combos,
        "random_holdout": RANDOM_HOLDOUT, "verify_dtypes": list(VERIFY_DTYPES), "backend": backend,
        "versions": {"generator": GENERATOR_VERSION, "data_sources": data_fingerprint(),
                     "compiler": fps.compiler, "plugins": fps.plugins},
    }
    if keep.active:
        manifest["unit_filter"] = keep.as_dict()
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    summary.duration_s = time.perf_counter() - t_start
    if not quiet:
        from rich.console import Console

        Console(stderr=True).print(summary.table())
    return summary


# --- stats --------------------------------------------------------------------------------------------

def _percentiles(values: list[int], qs=(50, 90, 95, 99)) -> dict[str, int]:
    if not values:
        return {f"p{q}": 0 for q in qs} | {"max": 0}
    v = sorted(values)
    out = {f"p{q}": v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] for q in qs}
    out["max"] = v[-1]
    return out


def stats_data(data_dir, tokenizer: str | None = None) -> dict:
    """Counts by split, family and style, failures (from the manifest) and length percentiles: bytes of the
    rows' prompt and target, or with a `tokenizer.json` tokens of the text the model is trained on (the current
    pair format, `p2t_core.llm.pairform`: what the context must hold)."""
    d = Path(data_dir)
    tok = None
    if tokenizer:
        from p2t_model.tokenizer import P2TTokenizer

        from p2t_core.llm.pairform import PAIR_FORMAT, pair_texts

        tok = P2TTokenizer.load(tokenizer)
    res: dict = {"splits": {}, "by_family": Counter(), "by_style": Counter(), "unit": "tokens" if tok else "bytes"}
    lengths: dict[str, list[int]] = {"prompt": [], "target": [], "pair": []}
    for s in SPLITS:
        path = d / f"{s}.jsonl"
        n = 0
        if path.exists():
            with open(path) as f:
                for line in f:
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    n += 1
                    res["by_family"][row["family"]] += 1
                    res["by_style"][row["style"]] += 1
                    if tok is not None:
                        prompt, target = pair_texts(row, PAIR_FORMAT)
                        lp, lt = len(tok.encode(prompt)), len(tok.encode(target))
                    else:
                        lp, lt = len(row["prompt"].encode()), len(row["target"].encode())
                    lengths["prompt"].append(lp)
                    lengths["target"].append(lt)
                    lengths["pair"].append(lp + lt)
        res["splits"][s] = n
    res["lengths"] = {k: _percentiles(v) for k, v in lengths.items()}
    manifest = d / "manifest.json"
    res["failures"] = json.loads(manifest.read_text()).get("failures", {}) if manifest.exists() else {}
    return res


def stats(data_dir, tokenizer: str | None = None):
    """A rich table of `stats_data`."""
    from rich.table import Table

    s = stats_data(data_dir, tokenizer)
    t = Table(title=f"p2t data stats: {data_dir}")
    t.add_column("what")
    t.add_column("value", justify="right")
    for k, v in s["splits"].items():
        t.add_row(f"split {k}", str(v))
    for k, v in sorted(s["by_family"].items()):
        t.add_row(f"family {k}", str(v))
    for k, v in sorted(s["by_style"].items()):
        t.add_row(f"style {k}", str(v))
    for k, v in sorted(s["failures"].items()):
        t.add_row(f"[red]failed: {k}[/red]", str(v))
    for k, p in s["lengths"].items():
        t.add_row(f"{k} length ({s['unit']}) p50/p90/p95/p99/max",
                  " / ".join(str(p[q]) for q in ("p50", "p90", "p95", "p99", "max")))
    return t
