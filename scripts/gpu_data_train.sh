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
#   WORK          local scratch (default /tmp/p2t_gpu_work): dataset, cache, run directory
#   PRESET        model preset (default 50m; `tiny` for a CPU smoke test with P2T_NO_GPU_ENV=1)
#   CONFIG        optional JSON/TOML overriding the preset (`p2t train --config`), e.g. {"model": {"context": 4096}}
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
# Training is bounded by `timeout` too; the newest checkpoint is exported either way.
#
# $OUT receives at most 8 files, none over 16 MiB:
#   logs.tar.gz         this script's log, build/stats/train output, data manifest.json + stats, train_log.jsonl,
#                       loss.png, the run's config, timings.json
#   weights.tar.part-*  the exported model (weights-only checkpoint, bf16: ~100 MB) split into <= 7 parts;
#                       reassemble: cat weights.tar.part-* | tar -x  (gives weights/, loadable with
#                       p2t_model.checkpoint.load_model; the bf16 tensors load into the fp32 model)
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

t0=$(date +%s.%N)
build() {  # build N [budget]: the corpus into $DATA (cache $DATA/cache), the GPU hidden from the workers
    CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 timeout -s INT "$2" \
        python3 -m p2t_core.cli data build --out "$DATA" --pairs "$1" --workers "$WORKERS" --seed "$SEED" \
        --backend "$BACKEND" > >(tee -a "$LOGS/build.log") 2>&1
}
build "$PAIRS" "$BUILD_BUDGET"
rc=$?
if [ "$rc" -ne 0 ] || [ ! -s "$DATA/train.jsonl" ]; then
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

t2=$(date +%s.%N)
if [ -s "$DATA/train.jsonl" ]; then
    timeout -s INT "$TRAIN_BUDGET" python3 -m p2t_model.cli --data "$DATA" --out "$RUN" --preset "$PRESET" \
        --max-steps "$STEPS" ${CONFIG:+--config "$CONFIG"} --quiet > >(tee "$LOGS/train.log") 2>&1
    echo "train exit code $?"
fi
t3=$(date +%s.%N)

# Export the newest checkpoint (weights only), as bf16 so that it fits in 7 parts of 16 MB.
if [ -e "$RUN/latest" ] || compgen -G "$RUN/step_*" >/dev/null; then
    python3 - "$RUN" "$WORK/export" "$WORK/weights" <<'EOF'
import sys
from pathlib import Path

import torch

from p2t_model.checkpoint import export_model, load_checkpoint, load_weights, save_checkpoint
from p2t_model.model import MinimalLLM

run, full, small = sys.argv[1:4]
export_model(run, full)  # the fp32 weights-only checkpoint
ck = load_checkpoint(full)
model = MinimalLLM(ck["model_config"])
load_weights(model, ck["weights"])
model.to(torch.bfloat16)
dst = Path(small)
save_checkpoint(dst.parent, dst.name, model=model, tokenizer=ck["tokenizer"], model_cfg=ck["model_config"],
                step=ck["step"], history=ck.get("history"), with_rng=False, update_latest=False)
print(f"exported step {ck['step']} to {dst} (bf16)")
EOF
    if [ -d "$WORK/weights" ]; then
        tar -C "$WORK" -cf - weights | split -b 16000000 -d -a 1 - "$OUT/weights.tar.part-"
        ls -l "$OUT"/weights.tar.part-* 2>/dev/null
    fi
    cp "$RUN/train_log.jsonl" "$RUN/loss.png" "$LOGS/" 2>/dev/null || true
    cp "$RUN"/*.json "$LOGS/" 2>/dev/null || true
else
    echo "no checkpoint to export"
fi
t4=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$DATA" "$LOGS/timings.json" <<'EOF'
import json, sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:6])
try:
    man = json.load(open(f"{sys.argv[6]}/manifest.json"))
except OSError:
    man = {}
written = man.get("written", 0)
out = {"build_s": t1 - t0, "train_s": t3 - t2, "export_s": t4 - t3, "pairs_written": written,
       "pairs_per_s": written / max(t1 - t0, 1e-9), "failures": man.get("failures")}
json.dump(out, open(sys.argv[7], "w"), indent=2)
print(json.dumps(out))
EOF
tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs
ls -l "$OUT"
