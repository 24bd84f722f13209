#!/usr/bin/env bash
# Latency of one LLM translation on a GPU with the verifier's compile-ahead off and on, in one call; the GPU tests of
# the verifier first.
#
#   OUT=... DATA=.gpudata/lat7 N=12 [TESTS=0] [RUNS="ahead_cold ahead_warm"] bash scripts/gpu_latency.sh
#   (TESTS=0: skip the GPU tests; RUNS: some of the four runs, in order)
#
# Up to four runs of scripts/llm_latency.py on the same N units (greedy, one candidate, the shipped weights, CUDA
# verification), in one Triton cache that starts empty: kernels compiled ahead (cold cache, then warm), then as the
# cases launch them (--no-precompile, warm cache), then translations back to back (--no-wait-worker: no waiting for
# a ready worker; the last job's worker serves the next): $OUT/latency_{ahead_cold,ahead_warm,onebyone_warm,
# backtoback_warm}.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/p2t_latency_out}
mkdir -p "$OUT"
# shellcheck source=/dev/null
source scripts/gpu_env.sh
[ "${TESTS:-1}" = 1 ] && python3 -m pytest -q -p no:cacheprovider tests/verify/test_precompile.py tests/verify/test_gpu.py 2>&1 | tail -15
rm -rf /tmp/p2t_cache_latency
for run in ${RUNS:-ahead_cold ahead_warm onebyone_warm backtoback_warm}; do
    case $run in
        onebyone_warm) flag="--no-precompile" ;;
        backtoback_warm) flag="--no-wait-worker" ;;
        *) flag="" ;;
    esac
    XDG_CACHE_HOME=/tmp/p2t_cache_latency timeout 240 python3 scripts/llm_latency.py --weights model/weights \
        --data "${DATA:-.gpudata/lat7}" --n "${N:-12}" --backend cuda $flag \
        --json "$OUT/latency_$run.json" > "$OUT/latency_$run.log" 2>&1
    echo "== $run: exit $?"
    grep -v '^{\|^}\|^  ' "$OUT/latency_$run.log" | tail -"${N:-12}"
    grep '"median' "$OUT/latency_$run.log"
done
