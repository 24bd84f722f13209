#!/usr/bin/env bash
# Verified pass@1 of several weights on the same held-out units, in one GPU call: decoding on the GPU, verification
# with the aot backend (interpreter + sm_90 compile, where the interpreter passes its self-check on the machine's numpy:
# p2t_core/verify/interpreter_compat.py; else cuda) on the machine's CPU cores,
# which on a fresh machine is faster than JIT-compiling every candidate for CUDA in each worker (docs/BENCHMARKS.md,
# "Device time lost").
#
#   OUT=... DATA=/tmp/p2t_gpu_work/data WEIGHTS="new=/tmp/p2t_gpu_work/run shipped=model/weights" \
#       SPLITS="valid_random:256 valid_compositional:128" BUDGET=140 bash scripts/gpu_eval.sh
#
# Each NAME=DIR is evaluated on each SPLIT:LIMIT (a seeded sample of LIMIT rows, the same for every weights), greedy,
# one candidate; $OUT/eval_NAME_SPLIT.json is `p2t eval --json`. BUDGET bounds each evaluation (SIGINT: the JSON then
# holds the rows verified by then, a prefix of the sample, marked `interrupted`; compare_evals.py pairs the common
# prefix). JOBS verification workers (default: cores - 2).
#
# DEADLINE (epoch seconds, e.g. $(( $(date +%s) + 300 )) at the start of a call that trains first) shortens each
# evaluation's budget so that all of them end 10 s before it, each weights' JSON written (SIGINT), before the device
# call's own limit kills them unwritten. AGAINST=DIR compares each result with DIR/shipped_SPLIT_LIMIT.json
# (docs/evals: the shipped weights' verdicts on the same rows) by scripts/compare_evals.py, also without the rows
# DIR/targets_SPLIT_LIMIT.json finds ill-posed where that file exists. EVAL_ARGS go to every
# `p2t eval` as they are, e.g. "--seed 1 --check-targets" (another sample, its rows' own targets verified too).
# PACK=1 packs every eval_* file into $OUT/evals.tar.gz at the end: a device call returns at most 8 files, and one
# that trained first already holds logs.tar.gz and 6 weights files (the 12 loose files of such a call lost its weights).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/p2t_eval_out}
mkdir -p "$OUT"
if [ -z "${P2T_NO_GPU_ENV:-}" ]; then
    # shellcheck source=/dev/null
    source scripts/gpu_env.sh
fi
JOBS=${JOBS:-$(( $(nproc) - 2 ))}
# aot only where the interpreter can be trusted: unpatched, the image's numpy 2.5 made it raise in every matmul
# candidate, 20 false failures in 128 units (docs/BENCHMARKS.md); p2t eval refuses it where the self-check fails.
if [ -z "${BACKEND:-}" ]; then
    BACKEND=$(python3 -c 'from p2t_core.verify import interpreter_problem; print("cuda" if interpreter_problem() else "aot")')
    echo "verification backend: $BACKEND"
fi
# Split by split, every weights on one split before the next: a call cut short still leaves a paired comparison.
for split_limit in ${SPLITS:-valid_random:128}; do
    split=${split_limit%%:*}; limit=${split_limit#*:}
    for pair in $WEIGHTS; do
        name=${pair%%=*}; dir=${pair#*=}
        start=$(date +%s)
        budget=${BUDGET:-300}
        if [ -n "${DEADLINE:-}" ]; then
            left=$(( DEADLINE - start - 10 ))
            [ "$left" -lt "$budget" ] && budget=$left
            if [ "$budget" -lt 20 ]; then echo "$name $split $limit: skipped, the deadline is near"; continue; fi
        fi
        timeout -s INT "$budget" python3 -m p2t_core.cli eval --weights "$dir" --data "$DATA" --split "$split" \
            --limit "$limit" --batch "${BATCH:-32}" --jobs "$JOBS" --k 1 --samples 1 --temperature 0 \
            --backend "$BACKEND" --no-rescue ${EVAL_ARGS:-} --json "$OUT/eval_${name}_${split}.json" > "$OUT/eval_${name}_${split}.log" 2>&1
        echo "$name $split $limit: exit $? in $(( $(date +%s) - start )) s"
        grep -A3 "pass@1" "$OUT/eval_${name}_${split}.log" | head -4
        grep -A1 "^well-posed rows" "$OUT/eval_${name}_${split}.log"  # with EVAL_ARGS=--check-targets
        shipped=${AGAINST:-}/shipped_${split}_${limit}.json
        if [ -n "${AGAINST:-}" ] && [ -f "$shipped" ] && [ -f "$OUT/eval_${name}_${split}.json" ]; then
            targets=${AGAINST}/targets_${split}_${limit}.json  # the rows' own kernels checked (--check-targets)
            python3 scripts/compare_evals.py "$OUT/eval_${name}_${split}.json" "$shipped" --names "$name" shipped \
                $( [ -f "$targets" ] && echo --targets "$targets" )
        fi
    done
done
if [ -n "${PACK:-}" ]; then
    (cd "$OUT" && tar -czf evals.tar.gz eval_* && rm -f eval_*)
fi
