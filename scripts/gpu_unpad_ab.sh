#!/usr/bin/env bash
# Why does a full training run with `train.unpad` train slower than its 30-step profile? One GPU call that runs the
# real `p2t train` loop on the same carried data once per config, one after another, then the fresh-step profile.
# (Written for unpad; it compares any configs, e.g. CONFIGS="scripts/train_cg.json scripts/train_least8.json".)
#
#   OUT=$OUT DATA_TAR=.gpudata/mixlong.tar.xz bash scripts/gpu_unpad_ab.sh
#
# GPU_TESTS (optional): pytest node ids run first (e.g. the CUDA-graph gradient test before a cuda_graphs run), their
# summary printed; a failure is reported and the runs go on.
# Environment (optional): CONFIGS (space-separated config files, default scripts/train_unpad.json and its twin without
# unpad, scripts/train_least8.json), STEPS per run (200), RUN_BUDGET seconds per run (190), PROFILE_MODES for
# scripts/train_profile.py --fresh afterwards (e.g. "unpad-least8,least8"; default none), PROFILE_BUDGET (150),
# PROFILE_ARGS added to its arguments (e.g. "--warmup 15 --timed 30").
# CONFIGS="" PROFILE_MODES=... runs the profile alone (on a warm machine: the data of the last call). FROM_STEP (60):
# the first step of the summary's medians (the ones before hold the compile and the warm-up).
# Keep the call's limit ~60 s above the sum of the budgets plus the tokenizing: the logs are packed after each run and
# after the profile, and a call stopped before that returns nothing of it (thirty-second session: a profile lost).
# Every run starts from the shipped weights with the same seed, so each sees the same steps of the same data.
# Per run, in $OUT/ab.tar.gz: the train log (TORCH_LOGS=recompiles,graph_breaks: every recompilation and why),
# train_log.jsonl, and the GPU's utilization sampled every 100 ms (nvidia-smi), which tells a GPU-bound step from a
# host-bound one. The summary (median tokens/s and MFU over logged steps >= 60, median GPU utilization) is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${P2T_NO_GPU_ENV:-}" ]; then
    # shellcheck source=/dev/null
    source scripts/gpu_env.sh
fi
OUT=${OUT:-/tmp/p2t_ab_out}
WORK=${WORK:-/tmp/p2t_ab_work}
STEPS=${STEPS:-200}
CONFIGS=${CONFIGS-scripts/train_unpad.json scripts/train_least8.json}
INIT_WEIGHTS=${INIT_WEIGHTS-model/weights}  # empty: from scratch
PRESET=${PRESET:-50m}  # tiny: a CPU smoke test of this script (with P2T_NO_GPU_ENV=1)
mkdir -p "$OUT" "$WORK/data" "$WORK/logs"
if [ -n "${GPU_TESTS:-}" ]; then
    # shellcheck disable=SC2086
    python3 -m pytest -q -p no:cacheprovider $GPU_TESTS > "$WORK/logs/gpu_tests.log" 2>&1
    echo "GPU tests exit code $?"; tail -3 "$WORK/logs/gpu_tests.log"
fi
if [ ! -s "$WORK/data/train.jsonl" ]; then  # a warm machine keeps the data and its token cache from the last call
    tar -C "$WORK/data" -xJf "$DATA_TAR"
fi
# Tokenized once into the data's token cache before the runs (~100 s for 70k pairs), so no run pays it alone
first=${CONFIGS%% *}
python3 - "$WORK/data" "${first:-scripts/train_least8.json}" "$PRESET" <<'PY'
import sys, time
from p2t_model.config import load_config_file, merge, preset
from p2t_model.data import SPLITS, load_split
from p2t_model.tokenizer import P2TTokenizer
model_cfg, _ = merge(*preset(sys.argv[3]), load_config_file(sys.argv[2]))
tokenizer, start = P2TTokenizer.load("model/weights/tokenizer.json"), time.perf_counter()
for split in SPLITS:
    load_split(sys.argv[1], split, tokenizer, model_cfg.context, model_cfg.pair_format)
print(f"tokenized in {time.perf_counter() - start:.0f} s")
PY
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
for config in $CONFIGS; do
    name=$(basename "$config" .json)
    echo "# $name: $(date -Is)"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 100 \
        > "$WORK/logs/$name.gpu.csv" &
    smi=$!
    rm -rf "$WORK/run_$name"  # a warm machine keeps the last call's run, whose log this run would append to
    TORCH_LOGS=recompiles,graph_breaks timeout -s INT "${RUN_BUDGET:-190}" python3 -m p2t_model.cli \
        --data "$WORK/data" --out "$WORK/run_$name" --preset "$PRESET" --config "$config" --max-steps "$STEPS" \
        --tokenizer model/weights/tokenizer.json ${INIT_WEIGHTS:+--init-weights "$INIT_WEIGHTS"} --quiet \
        > "$WORK/logs/$name.log" 2>&1
    echo "exit code $?"
    kill "$smi" 2>/dev/null
    cp "$WORK/run_$name/train_log.jsonl" "$WORK/logs/$name.jsonl" 2>/dev/null
    grep -c "Recompiling" "$WORK/logs/$name.log" | sed "s/^/recompilations: /"
    tar -C "$WORK" -czf "$OUT/ab.tar.gz" logs  # after each run, so a call cut off by its limit keeps the runs it did
done
if [ -n "${PROFILE_MODES:-}" ]; then
    timeout -s INT "${PROFILE_BUDGET:-150}" python3 scripts/train_profile.py --data "$WORK/data" --out "$WORK/logs" \
        --tokenizer model/weights/tokenizer.json --modes "$PROFILE_MODES" --fresh \
        --warmup 25 --timed 40 --passes 2 --steps 2 --rows 25 ${PROFILE_ARGS:-} > "$WORK/logs/profile.log" 2>&1
    echo "profile exit code $?"; grep -E "ms/step|failed" "$WORK/logs/profile.log"
    tar -C "$WORK" -czf "$OUT/ab.tar.gz" logs
fi
python3 - "$WORK/logs" "${FROM_STEP:-60}" $CONFIGS <<'PY'
import csv, json, statistics, sys
from datetime import datetime
from pathlib import Path
logs, first = Path(sys.argv[1]), int(sys.argv[2])
for config in sys.argv[3:]:
    name = Path(config).stem
    path = logs / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if "tokens_per_s" in line] if path.exists() else []
    late = [r for r in rows if r["step"] >= first]
    if not late:
        print(f"{name}: no logged step >= {first}")
        continue
    start, end = late[0]["time"], late[-1]["time"]  # utilization while those steps ran (time.time(), local clock)
    with open(logs / f"{name}.gpu.csv") as f:
        util = [float(r[1]) for r in csv.reader(f) if len(r) > 1 and r[1].strip().isdigit()
                and start <= datetime.strptime(r[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp() <= end]
    print(f"{name}: {len(late)} logged steps >= {first} (last step {rows[-1]['step']}): median "
          f"{statistics.median(r['tokens_per_s'] for r in late):,.0f} tokens/s, "
          f"MFU {statistics.median(r['mfu'] for r in late):.1%}; GPU utilization over those steps: median "
          f"{statistics.median(util) if util else float('nan'):.0f}%, mean {statistics.fmean(util) if util else 0:.0f}% "
          f"({len(util)} samples)")
PY
tar -C "$WORK" -czf "$OUT/ab.tar.gz" logs
ls -l "$OUT"
