"""Spawning the worker: clean environment, fresh temp cwd, timeouts, crash handling and restarts."""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import p2t_core

# Importing torch and triton in a fresh worker takes a few seconds; this is not the candidate's time.
STARTUP_TIMEOUT_S = 120.0
# How a timeout during the CUDA worker's compile-ahead (p2t_core.verify.precompile) is reported.
PRECOMPILE_STEP = "running the launchers to compile their kernels ahead"
# Restarts after a worker dies mid-way (crash or timeout) before the remaining cases are given up.
MAX_RESTARTS = 2


def triton_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "p2t" / "triton"


def worker_env(backend: str, home: str) -> dict[str, str]:
    """Only what the worker needs; nothing else is inherited (secrets stay out)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": home,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": str(Path(p2t_core.__file__).resolve().parent.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "P2T_WORKER_KIND": backend,  # a CUDA worker warms CUDA and Triton up while it waits for its job
    }
    cache = triton_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        env["TRITON_CACHE_DIR"] = str(cache)
    except OSError:
        env["TRITON_CACHE_DIR"] = str(Path(home) / "triton-cache")
    if backend in ("interpret", "aot"):  # the sm_90 compile worker runs with backend "compile"
        env["TRITON_INTERPRET"] = "1"
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def death_message(rc: int, stderr_text: str) -> str:
    """Why a worker exited before its job was done: its exit code or signal, the candidate's line where faulthandler's
    dump names one (candidate.py, or cand_N.py in a batch worker), else the last lines it wrote on stderr."""
    if rc >= 0:
        return f"worker exited with code {rc}: " + " | ".join(stderr_text.strip().splitlines()[-3:])
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        name = f"signal {-rc}"
    hint = " (possibly out of memory)" if -rc in (signal.SIGKILL, signal.SIGABRT) else ""
    where = re.search(r'File "[^"]*(?:candidate|cand_\d+)\.py", line (\d+)', stderr_text)  # the innermost first
    at = f" at candidate line {where.group(1)}" if where else ""
    return f"worker crashed (signal {-rc}) [{name}]{at}{hint}"


class WorkerDied(Exception):
    pass


class _Worker:
    """A worker process in a fresh temp directory (its HOME and cwd), importing torch and triton and waiting for its
    job, with the threads that drain its pipes from the start (a reused worker keeps them across jobs)."""

    def __init__(self, backend: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="p2t-verify-")
        home = os.path.join(self.tmp.name, "home")
        self.work = os.path.join(self.tmp.name, "work")
        os.mkdir(home)
        os.mkdir(self.work)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2t_core.verify.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.work, env=worker_env(backend, home), start_new_session=True, close_fds=True,
        )
        self.lines, self.err_tail, self.threads = drain_pipes(self.proc)
        self.jobs = 0  # jobs it has been given
        self.memory_limit_mb: int | None = None  # set by its first job; a worker's limits are set once

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            _kill(self.proc)
        self.tmp.cleanup()


# Workers started ahead of their job, by job backend ("interpret", "aot", "cuda", "compile").
_spares: dict[str, _Worker] = {}
_spares_lock = threading.Lock()
_keep_warm: set[str] = set()  # backends whose spare is replaced when the job that took it ends (prestart's keep_warm)
# Keep-warm backends whose worker serves the next job too, when its last job ended cleanly: a fresh worker takes
# seconds to be ready (imports; on CUDA its warm-up), a verification on a GPU well under one. Not "aot", whose
# cases and sm_90 compiles are two workers.
REUSABLE = frozenset({"cuda", "interpret"})
# A reused worker retires after this many jobs (what candidates leave behind: allocator caches, modules).
MAX_JOBS_PER_WORKER = 32


def prestart(backend: str, *, keep_warm: bool = False) -> None:
    """Start the worker(s) that verifying with `backend` (resolved, not "auto") will need, so that their imports of
    torch and triton (seconds; the bulk of a first verification) overlap the caller's own work, such as
    decoding a model's candidate. The next job of that backend takes the worker; one never taken is killed at
    exit. The worker gets its job as any other, so the sandbox is the same. `keep_warm`: from now on, each job that
    takes a spare starts the next one when it ends (not before: a CUDA spare's warm-up beside a running job slowed
    that job's cases on the H200), so a process that verifies one candidate after another (the LLM engine) finds
    one started, and ready if its imports and warm-up (seconds) fit in the time between two verifications."""
    for kind in _spare_kinds(backend):
        with _spares_lock:
            if keep_warm:
                _keep_warm.add(kind)
            if kind not in _spares or not _spares[kind].alive():
                _spares[kind] = _Worker(kind)


def _spare_kinds(backend: str) -> tuple[str, ...]:
    """The workers verifying with `backend` takes: an aot verification also takes a compile worker."""
    return ("aot", "compile") if backend == "aot" else (backend,)


def wait_for_spare(backend: str, timeout_s: float = 120.0) -> bool:
    """Wait until the spare workers verifying with `backend` needs have done everything they do before their job
    (imports; on CUDA the warm-up) and return True, or False if one is missing or not ready within `timeout_s`. For
    measuring a verification that finds its workers ready, as one translation after the engine's start does."""
    from p2t_core.verify.worker import WARM_MARKER

    deadline = time.monotonic() + timeout_s
    for kind in _spare_kinds(backend):
        while True:
            with _spares_lock:
                spare = _spares.get(kind)
            if spare is None or not spare.alive() or time.monotonic() >= deadline:
                return False
            if os.path.exists(os.path.join(spare.work, WARM_MARKER)):
                break
            time.sleep(0.02)
    return True


def _take(backend: str) -> _Worker:
    with _spares_lock:
        spare = _spares.pop(backend, None)
    if spare is not None and spare.alive():
        return spare
    if spare is not None:
        spare.close()
    return _Worker(backend)


@atexit.register
def _discard_spares() -> None:
    with _spares_lock:
        spares = list(_spares.values())
        _spares.clear()
        _keep_warm.clear()
    for spare in spares:
        spare.close()


def drain_pipes(proc: subprocess.Popen) -> tuple[queue.Queue, list[bytes], list[threading.Thread]]:
    """Daemon threads that read a worker's pipes so it never blocks on a full one: its stdout lines go to the
    queue (None once it closes), the last 16 chunks of its stderr to the list (for the message when it dies)."""
    lines: queue.Queue = queue.Queue()
    err_tail: list[bytes] = []

    def read_out():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def read_err():
        for chunk in iter(lambda: proc.stderr.read(4096), b""):
            err_tail.append(chunk)
            if len(err_tail) > 16:
                del err_tail[0]

    threads = [threading.Thread(target=fn, daemon=True) for fn in (read_out, read_err)]
    for t in threads:
        t.start()
    return lines, err_tail, threads


def run_job(job: dict, timeout_s: float):
    """Run one worker over `job` (a prestarted or reused one where there is one); yield its events. Raises
    WorkerDied(reason) on a timeout, crash or bad exit.

    `timeout_s` bounds each step after startup: loading the candidate, each case, each compile.
    """
    backend = job["backend"]
    worker = _take(backend)
    if worker.jobs and worker.memory_limit_mb != job.get("memory_limit_mb"):  # a reused worker keeps its first limit
        worker.close()
        worker = _Worker(backend)
    worker.memory_limit_mb = job.get("memory_limit_mb")
    reuse = backend in REUSABLE and backend in _keep_warm and worker.jobs + 1 < MAX_JOBS_PER_WORKER
    worker.jobs += 1
    proc, lines = worker.proc, worker.lines
    clean = False
    try:
        try:
            proc.stdin.write((json.dumps({**job, "reuse": reuse}) + "\n").encode())
            proc.stdin.flush()
            if not reuse:
                proc.stdin.close()
        except BrokenPipeError:
            pass
        budget = STARTUP_TIMEOUT_S
        deadline = time.monotonic() + budget
        step = "starting"
        restarted = False
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
                timed_out = remaining <= 0
            except queue.Empty:
                timed_out, line = True, None
            if timed_out:
                _kill(proc)
                raise WorkerDied(f"timeout after {budget:g} s" + ("" if step == "case" else f" ({step})"))
            if line is None:  # stdout closed: the worker exited
                rc = proc.wait()
                for t in worker.threads:
                    t.join(timeout=1)
                raise WorkerDied(death_message(rc, b"".join(worker.err_tail).decode(errors="replace")))
            event = json.loads(line)
            yield event
            kind = event["event"]
            if kind == "restart":
                restarted = True
            if kind == "done":
                if not reuse:
                    proc.wait(timeout=30)
                clean = not restarted
                return
            if kind in ("ready", "loaded", "precompile", "case", "start", "kernel"):
                budget = timeout_s
                step = {"ready": "loading the candidate", "start": "case",
                        "precompile": PRECOMPILE_STEP}.get(kind, "case")
                if job.get("mode") == "compile" and kind != "ready":
                    budget = max(timeout_s, 60.0)  # one sm_90 compile: about a second, the first slower
                    step = "sm_90 compile"
                deadline = time.monotonic() + budget
    finally:
        with _spares_lock:
            kept = reuse and clean and worker.alive() and backend not in _spares
            if kept:
                _spares[backend] = worker
        if not kept:
            worker.close()
            with _spares_lock:
                if backend in _keep_warm and backend not in _spares:
                    _spares[backend] = _Worker(backend)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
