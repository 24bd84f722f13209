#!/usr/bin/env bash
# Latency of one LLM translation on a GPU with the verifier's compile-ahead off and on, in one call; the GPU tests of
# the verifier first.
#
#   OUT=... DATA=.gpudata/lat7 N=12 bash scripts/gpu_latency.sh
#
# Four runs of scripts/llm_latency.py on the same N units (greedy, one candidate, the shipped weights, CUDA
# verification): kernels compiled as the cases launch them (--no-precompile) and ahead, each first with an empty
# Triton cache and then again with the cache that run left ($OUT/latency_{onebyone,ahead}_{cold,warm}.json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/p2t_latency_out}
mkdir -p "$OUT"
# shellcheck source=/dev/null
source scripts/gpu_env.sh
python3 -m pytest -q -p no:cacheprovider tests/verify/test_precompile.py tests/verify/test_gpu.py 2>&1 | tail -15
for temp in cold warm; do
    for variant in onebyone ahead; do
        flag=""
        [ "$variant" = onebyone ] && flag="--no-precompile"
        XDG_CACHE_HOME=/tmp/p2t_cache_$variant timeout 240 python3 scripts/llm_latency.py --weights model/weights \
            --data "${DATA:-.gpudata/lat7}" --n "${N:-12}" --backend cuda $flag \
            --json "$OUT/latency_${variant}_${temp}.json" > "$OUT/latency_${variant}_${temp}.log" 2>&1
        echo "== $variant $temp: exit $?"
        tail -n +1 "$OUT/latency_${variant}_${temp}.log" | grep -v '^{\|^}\|^  "' | tail -${N:-12}
        grep '"median' "$OUT/latency_${variant}_${temp}.log"
    done
done
