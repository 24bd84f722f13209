#!/usr/bin/env bash
# Build the pair corpus on the GPU machine's CPU cores, then train the 50m model on it, in one 10-minute job.
#
#   OUT=/some/dir PAIRS=20000 STEPS=400 scripts/gpu_data_train.sh
#
# Environment (all optional):
#   PAIRS         pairs to build (default 20000)           STEPS        training steps (default 400)
#   WORKERS       build worker processes (default 14)      SEED         corpus seed (default 0)
#   BACKEND       verifier backend for the build (default interpret; see below)
#   BUILD_BUDGET  seconds for the build (default 240)      TRAIN_BUDGET seconds for training (default 270)
#   EVAL_LIMIT    held-out units per split to evaluate (default 8; 0: none; see the eval below), EVAL_BUDGET
#                 seconds per split (60),
#   EVAL_BACKEND  verifier backend of the eval (default cuda)
#   WORK          local scratch (default /tmp/p2t_gpu_work): dataset, cache, run directory
#   PRESET        model preset (default 50m; `tiny` for a CPU smoke test with P2T_NO_GPU_ENV=1)
#   CONFIG        optional JSON/TOML overriding the preset (`p2t train --config`), e.g. {"model": {"context": 4096}}
#   PACK_DATA     1: after the build, pack the data directory as $WORK/data.tar.xz (xz on every core) and copy it into
#                 $OUT (12 MB for 100k pairs), so later calls on the warm machine (DATA_TAR=$WORK/data.tar.xz) and
#                 evals elsewhere read the same corpus; STEPS=0 then makes the call a build only
#   DATA_TAR      a tarball of a data directory built elsewhere (train/valid JSONL + manifest.json, e.g. built on a
#                 CPU machine and carried, xz: 317 MB of JSONL pack into 5 MB): unpacked instead of building
#                 (with the 48 MB of weights also carried, a seeded sample: scripts/sample_corpus.py ... --tar)
#   TOKENIZER     a tokenizer.json to train with (`p2t train --tokenizer`) instead of training one here
#   CORPUS_SKIP   also run the compiler's differential corpus on CUDA (scripts/gpu_corpus.py --skip CORPUS_SKIP) in
#                 the background while the tokenizer loads and the model compiles (it uses CPU cores, little GPU)
#   LATENCY_N     after the export, time LLM translations of this many valid_random units (scripts/llm_latency.py)
#   INIT_WEIGHTS  start from these weights (`p2t train --init-weights`: an int8 export or a checkpoint), fresh
#                 optimizer and schedule, e.g. to continue a run whose machine (and optimizer state) was lost
#   COMPILE_WAIT  seconds to wait for the first logged step with torch.compile before restarting without it (180)
#   STOP_AFTER    end the run (with a checkpoint) after this step, the schedule still set by STEPS (`--stop-after`)
#   REUSE_DATA    1: train on the corpus an earlier call on this (still warm) machine left in $DATA, no build and no
#                 DATA_TAR: the whole corpus built here in one call (STEPS=0, PAIRS=200000), trained on in the next
#                 (a carried tarball holds at most a ~52k-pair sample beside the weights)
#   PROFILE_MODES before training, `scripts/train_profile.py --modes PROFILE_MODES` on the training pairs (its tables in
#                 logs.tar.gz, profile/), e.g. "padded,least" times both micro-batch cuts in one process; bounded by
#                 PROFILE_BUDGET seconds (220), PROFILE_ARGS added to its arguments (e.g. "--passes 2 --timed 40").
#                 It tokenizes the corpus into the cache the training run then reads
#   RESUME        1: continue the run in $WORK/run (`--resume`): a run longer than one 10-minute job is STEPS=N
#                 STOP_AFTER=M in one call, then RESUME=1 STEPS=N in the next call on the same (still warm) machine,
#                 which trains on the data the first call left in $DATA (no DATA_TAR needed, no build)
#
# Verification backend: `interpret`. Each pair is verified on tiny shapes (rows 3..7, last dim 9..17), which the
# Triton interpreter runs in ~10-25 ms per pair (measured on a 2-core CPU, p2t_core/data/README.md); the cuda
# backend would JIT-compile every unit's kernels for real (hundreds of ms per new kernel, and every unit is
# new), so interpreting on 14 CPU cores is faster. The build hides the GPU from its workers.
#
# Time box (the job's limit is 10 minutes): setup ~0.5 min, build <= BUILD_BUDGET, training <= TRAIN_BUDGET
# (torch.compile's first compile ~1 min of it), export and packing ~0.5 min. A build still running at its
# budget is interrupted (SIGINT: every verified pair is already in the cache) and re-run with PAIRS = the
# number of cached pairs, which then writes the splits from the cache (a small remainder is computed).
# Training is bounded by `timeout -s INT` too: at the signal the run finishes its step, checkpoints it and exits
# (model/train.py, StopRequest), so a run cut by TRAIN_BUDGET loses no steps and RESUME=1 continues from there. The
# newest checkpoint is exported either way.
#
# $OUT receives at most 8 files, none over 16 MiB:
#   logs.tar.gz         this script's log, build/stats/train/eval output (eval_*.json), data manifest.json + stats, train_log.jsonl,
#                       loss.png, the run's config, timings.json
#   weights/            the newest checkpoint as int8 shards + quantized.json + tokenizer.json (<= 6 files), the
#                       format `model/weights` ships; copy them there only if `p2t eval` shows they beat the
#                       shipped ones
# Not the dataset itself (rebuild it with the same PAIRS and SEED: it is deterministic).
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-/tmp/p2t_gpu_out}
PAIRS=${PAIRS:-20000}
STEPS=${STEPS:-400}
PRESET=${PRESET:-50m}
WORKERS=${WORKERS:-14}
SEED=${SEED:-0}
BACKEND=${BACKEND:-interpret}
BUILD_BUDGET=${BUILD_BUDGET:-240}
TRAIN_BUDGET=${TRAIN_BUDGET:-270}
WORK=${WORK:-/tmp/p2t_gpu_work}
DATA=$WORK/data
RUN=$WORK/run
LOGS=$WORK/logs
mkdir -p "$OUT" "$DATA" "$LOGS"
LOG=$LOGS/gpu_data_train.log
exec > >(tee -a "$LOG") 2>&1

if [ -z "${P2T_NO_GPU_ENV:-}" ]; then  # (set P2T_NO_GPU_ENV=1 where p2t is installed, e.g. a local smoke test)
    # shellcheck source=/dev/null
    source scripts/gpu_env.sh
fi
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/p2t_inductor_cache}

echo "# gpu_data_train.sh $(date -Is) in $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
echo "# PAIRS=$PAIRS STEPS=$STEPS PRESET=$PRESET WORKERS=$WORKERS SEED=$SEED BACKEND=$BACKEND BUILD_BUDGET=$BUILD_BUDGET TRAIN_BUDGET=$TRAIN_BUDGET"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
nproc

if [ -n "${CORPUS_SKIP:-}" ]; then
    (timeout 400 python3 scripts/gpu_corpus.py --backend cuda --jobs 8 --skip "$CORPUS_SKIP" \
        --json "$OUT/corpus_cuda.json" > "$LOGS/corpus.log" 2>&1; echo "corpus exit code $?" >> "$LOGS/corpus.log") &
    CORPUS_PID=$!
fi

t0=$(date +%s.%N)
build() {  # build N [budget]: the corpus into $DATA (cache $DATA/cache), the GPU hidden from the workers
    CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 timeout -s INT "$2" \
        python3 -m p2t_core.cli data build --out "$DATA" --pairs "$1" --workers "$WORKERS" --seed "$SEED" \
        --backend "$BACKEND" > >(tee -a "$LOGS/build.log") 2>&1
}
if [ -n "${RESUME:-}" ] && [ ! -e "$RUN/latest" ]; then  # before any build: a fresh machine has nothing to resume
    echo "RESUME=1 but $RUN has no checkpoint (a fresh machine?): stopping"
    exit 3
fi
if { [ -n "${RESUME:-}" ] || [ -n "${REUSE_DATA:-}" ]; } && [ -s "$DATA/train.jsonl" ]; then
    echo "training on the data already in $DATA"  # a warm machine keeps it and its token cache
    rc=0
elif [ -n "${DATA_TAR:-}" ]; then
    tar -C "$DATA" -xJf "$DATA_TAR"
    rc=$?
else
    build "$PAIRS" "$BUILD_BUDGET"
    rc=$?
fi
if [ -z "${DATA_TAR:-}" ] && { [ "$rc" -ne 0 ] || [ ! -s "$DATA/train.jsonl" ]; }; then
    cached=$(find "$DATA/cache" -name '*.json' | wc -l)
    echo "build stopped (rc $rc) at its budget with $cached cached pairs: writing the splits from the cache"
    if [ "$cached" -gt 0 ]; then
        build "$cached" 120
    fi
fi
t1=$(date +%s.%N)
python3 -m p2t_core.cli data stats "$DATA" > >(tee "$LOGS/stats.txt") 2>&1
cp "$DATA/manifest.json" "$LOGS/data_manifest.json" 2>/dev/null || true
if [ ! -s "$DATA/train.jsonl" ]; then
    echo "no training data: stopping"
fi

if [ -n "${PACK_DATA:-}" ] && [ -s "$DATA/train.jsonl" ]; then
    tar -C "$DATA" -cf - manifest.json train.jsonl valid_random.jsonl valid_compositional.jsonl \
        | xz -T0 -6 > "$WORK/data.tar.xz" && cp "$WORK/data.tar.xz" "$OUT/" && ls -l "$WORK/data.tar.xz"
fi

if [ -n "${PROFILE_MODES:-}" ] && [ -s "$DATA/train.jsonl" ]; then
    timeout -s INT "${PROFILE_BUDGET:-220}" python3 scripts/train_profile.py --data "$DATA" --out "$LOGS/profile" \
        --modes "$PROFILE_MODES" --warmup 25 --timed 30 --steps 1 --rows 20 ${PROFILE_ARGS:-} \
        --tokenizer "${TOKENIZER:-model/weights/tokenizer.json}" > >(tee "$LOGS/profile.log") 2>&1
    echo "profile exit code $?"
fi

t2=$(date +%s.%N)
if [ -s "$DATA/train.jsonl" ] && [ "$STEPS" -gt 0 ]; then
    train_args=(--data "$DATA" --out "$RUN" --preset "$PRESET" --max-steps "$STEPS" ${CONFIG:+--config "$CONFIG"}
                ${TOKENIZER:+--tokenizer "$TOKENIZER"} ${STOP_AFTER:+--stop-after "$STOP_AFTER"}
                ${INIT_WEIGHTS:+--init-weights "$INIT_WEIGHTS"} --quiet)
    if [ -n "${RESUME:-}" ]; then
        if [ ! -e "$RUN/latest" ]; then
            echo "RESUME=1 but $RUN has no checkpoint (a fresh machine?): stopping"
            exit 3
        fi
        train_args+=(--resume)
    fi
    # Emptied here, not by tee: tee starts asynchronously, and a resumed run's check for "done: step" below could
    # otherwise read the previous call's log before tee truncates it (it did: a resumed run was stopped at once).
    : > "$LOGS/train.log"
    timeout -s INT "$TRAIN_BUDGET" python3 -m p2t_model.cli "${train_args[@]}" > >(tee -a "$LOGS/train.log") 2>&1 &
    TRAIN_PID=$!
    # torch.compile has failed to give a first step in minutes before (docs/TRAINING_RUN.md): if no step is
    # logged COMPILE_WAIT seconds after the model is built, restart without it for the rest of the budget rather
    # than lose the run. The clock starts when the model line is printed, after the data is tokenized: loading the
    # 200k corpus alone took ~115 s, and counting it once cost a run its compiled step (docs/BENCHMARKS.md).
    waited=0; loading=0
    while kill -0 "$TRAIN_PID" 2>/dev/null && [ ! -s "$RUN/train_log.jsonl" ] && [ "$waited" -lt "${COMPILE_WAIT:-180}" ]; do
        sleep 5
        if grep -q "^MinimalLLM: " "$LOGS/train.log"; then waited=$((waited + 5)); else loading=$((loading + 5)); fi
    done
    echo "data loaded in ~${loading} s; ${waited} s from the model to the first step (or the wait's end)"
    if kill -0 "$TRAIN_PID" 2>/dev/null && [ ! -s "$RUN/train_log.jsonl" ]; then
        echo "no step after ${waited} s with torch.compile: restarting without it"
        pkill -INT -P "$TRAIN_PID"; kill -INT "$TRAIN_PID"; wait "$TRAIN_PID"
        rm -rf "$RUN"
        timeout -s INT $((TRAIN_BUDGET - waited - loading)) python3 -m p2t_model.cli "${train_args[@]}" --no-compile \
            > >(tee -a "$LOGS/train.log") 2>&1
    else
        # A finished run waits at exit in inductor's atexit shutdown of its compile workers (subproc_pool:
        # process.wait(300), seen interrupted there by the budget): give it 20 s after the last checkpoint, then
        # interrupt it, so a long wait cannot eat the time the eval needs.
        while kill -0 "$TRAIN_PID" 2>/dev/null && ! grep -q "^done: step" "$LOGS/train.log"; do sleep 2; done
        for _ in $(seq 10); do kill -0 "$TRAIN_PID" 2>/dev/null || break; sleep 2; done
        if kill -0 "$TRAIN_PID" 2>/dev/null; then
            echo "training finished but its process did not exit: interrupting it"
            pkill -INT -P "$TRAIN_PID"; kill -INT "$TRAIN_PID"
        fi
        wait "$TRAIN_PID"
    fi
    echo "train exit code $?"
fi
t3=$(date +%s.%N)

# Export the newest checkpoint as int8 shards (the shipped format: <= 15 MiB each, ~50 MB in all for the 50m
# model), straight into $OUT, so the weights come back whole (a bf16 export, ~100 MB, did not).
if [ -e "$RUN/latest" ] || compgen -G "$RUN/step_*" >/dev/null; then
    python3 -m p2t_model.quantize "$RUN" "$OUT/weights" || echo "int8 export failed"
    ls -l "$OUT/weights" 2>/dev/null
    cp "$RUN/train_log.jsonl" "$RUN/loss.png" "$LOGS/" 2>/dev/null || true
    cp "$RUN"/*.json "$LOGS/" 2>/dev/null || true
else
    echo "no checkpoint to export"
fi
if [ -n "${LATENCY_N:-}" ] && [ -f "$OUT/weights/quantized.json" ]; then
    timeout 120 python3 scripts/llm_latency.py --weights "$OUT/weights" --data "$DATA" --n "$LATENCY_N" \
        --backend cuda --json "$LOGS/latency.json" > >(tee "$LOGS/latency.log") 2>&1
fi
# Verified pass@1 on a seeded sample of each held-out split, time-boxed: greedy, one candidate, units decoded 64 at
# a time, verified on CUDA 8 at a time (the GPU is free once training is done). valid_random compares the
# checkpoint with its int8 export (--compare-quantized: one table); valid_compositional evaluates the int8 export
# (what would ship) only, to stay inside the job's 10 minutes.
if [ -d "$RUN" ] && [ "${EVAL_LIMIT:-8}" -gt 0 ]; then
    eval_args=(--data "$DATA" --limit "${EVAL_LIMIT:-8}" --batch 64 --jobs 8 --k 1 --samples 1 --temperature 0
               --backend "${EVAL_BACKEND:-cuda}")
    timeout -s INT "${EVAL_BUDGET:-60}" python3 -m p2t_core.cli eval --weights "$RUN" --compare-quantized \
        --split valid_random "${eval_args[@]}" --json "$LOGS/eval_valid_random.json" > >(tee -a "$LOGS/eval.log") 2>&1
    echo "eval valid_random exit code $?"
    if [ -f "$OUT/weights/quantized.json" ]; then
        timeout -s INT "${EVAL_BUDGET:-60}" python3 -m p2t_core.cli eval --weights "$OUT/weights" \
            --split valid_compositional "${eval_args[@]}" --json "$LOGS/eval_valid_compositional.json" \
            > >(tee -a "$LOGS/eval.log") 2>&1
        echo "eval valid_compositional exit code $?"
    fi
fi
t4=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$DATA" "$LOGS/timings.json" "${DATA_TAR:-}${RESUME:-}${REUSE_DATA:-}" <<'EOF'
import json, sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:6])
carried = bool(sys.argv[8])  # the data came as a tarball or was already there: t1 - t0 is no build
try:
    man = json.load(open(f"{sys.argv[6]}/manifest.json"))
except OSError:
    man = {}
written = man.get("written", 0)
out = {"unpack_s" if carried else "build_s": t1 - t0, "train_s": t3 - t2, "export_and_eval_s": t4 - t3,
       "pairs_written": written, "failures": man.get("failures")}
if not carried:
    out["pairs_per_s"] = written / max(t1 - t0, 1e-9)
json.dump(out, open(sys.argv[7], "w"), indent=2)
print(json.dumps(out))
EOF
if [ -n "${CORPUS_PID:-}" ]; then
    wait "$CORPUS_PID"
    cp "$LOGS/corpus.log" "$OUT/" 2>/dev/null
fi
tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs
ls -l "$OUT"
