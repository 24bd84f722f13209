#!/usr/bin/env bash
# The controlled comparisons of the training issue, in one GPU call: three runs of the 50m model at equal
# steps on the same data, tokenizer and seed, launched together on one GPU (the steps, not the clock, are
# compared, so sharing the GPU changes nothing but the wall time):
#   muon_24x4   Muon + AdamW, micro-batch 24 x 4 accumulation (the default)
#   adamw_24x4  AdamW alone (train.optimizer "adamw"), 24 x 4
#   muon_96x1   Muon + AdamW, one true batch of 96
#   packed_24x4 Muon + AdamW, 24 x 4, each micro-batch's pairs packed end to end (train.pack true) instead of
#               padded: with COMPILE=true SEQUENTIAL=1 RUNS="muon_24x4 packed_24x4" it measures what packing does
#               to throughput (each run alone on the GPU) and that the loss curve is the same
#
#   OUT=... DATA_TAR=.gpudata/data.tar.xz TOKENIZER=.gpudata/tokenizer.json STEPS=250 bash scripts/gpu_compare.sh
#
# $OUT/compare.tar.gz holds each run's train_log.jsonl and output; plot them with scripts/plot_compare.py.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/p2t_compare_out}
STEPS=${STEPS:-250}
BUDGET=${BUDGET:-480}
WORK=${WORK:-/tmp/p2t_compare}
mkdir -p "$OUT" "$WORK/data" "$WORK/logs"
if [ -z "${P2T_NO_GPU_ENV:-}" ]; then
    # shellcheck source=/dev/null
    source scripts/gpu_env.sh
fi
tar -C "$WORK/data" -xJf "$DATA_TAR"
common='"max_steps": '"$STEPS"', "warmup_steps": 50, "eval_interval": 25, "eval_batches": 10, "ckpt_interval": 100000, "log_interval": 5, "compile": '"${COMPILE:-false}"
declare -A runs=(
    [muon_24x4]='{"model": {"context": 2048, "vocab_size": 4352}, "train": {'"$common"', "optimizer": "muon", "micro_batch": 24, "grad_accum": 4}}'
    [adamw_24x4]='{"model": {"context": 2048, "vocab_size": 4352}, "train": {'"$common"', "optimizer": "adamw", "micro_batch": 24, "grad_accum": 4}}'
    [packed_24x4]='{"model": {"context": 2048, "vocab_size": 4352}, "train": {'"$common"', "optimizer": "muon", "micro_batch": 24, "grad_accum": 4, "pack": true}}'
    [muon_96x1]='{"model": {"context": 2048, "vocab_size": 4352}, "train": {'"$common"', "optimizer": "muon", "micro_batch": 96, "grad_accum": 1}}'
)
# The model is the one scripts/train_gpu.json trains (context 2048, the pair-format-2 tokenizer's 4,352-token
# vocabulary). At the earlier context 3072 and vocabulary 8192 the true batch of 96 without torch.compile held
# ~108 GB (fp32 logits of 96 x 3072 x 8192 among them) and could not share an H200: SEQUENTIAL=1 runs the runs
# one after another (RUNS picks which).
RUNS=${RUNS:-muon_24x4 adamw_24x4 muon_96x1}
for name in $RUNS; do
    echo "${runs[$name]}" > "$WORK/logs/$name.json"
    timeout -s INT "$BUDGET" python3 -m p2t_model.cli --data "$WORK/data" --out "$WORK/$name" ${PRESET:+--preset "$PRESET"} \
        --config "$WORK/logs/$name.json" ${TOKENIZER:+--tokenizer "$TOKENIZER"} --quiet > "$WORK/logs/$name.log" 2>&1 &
    if [ -n "${SEQUENTIAL:-}" ]; then wait; fi
done
wait
for name in $RUNS; do
    cp "$WORK/$name/train_log.jsonl" "$WORK/logs/$name.jsonl" 2>/dev/null
    tail -3 "$WORK/logs/$name.log"
done
tar -C "$WORK" -czf "$OUT/compare.tar.gz" logs
ls -l "$OUT"
