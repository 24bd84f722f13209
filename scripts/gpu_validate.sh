#!/usr/bin/env bash
# One call on the GPU machine: every plugin's validation cases, the examples and the differential corpus of
# tests/compiler (scripts/gpu_corpus.py), verified on CUDA.
#   device run: bash scripts/gpu_validate.sh   (carry .whl, made by scripts/fetch_gpu_wheels.sh)
. scripts/gpu_env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/device.txt"
python3 -m p2t_core.cli validate --all --backend cuda --json "$OUT/validate_cuda.json" 2>&1 | tee "$OUT/validate.log"
for f in examples/*.py; do
  python3 -m p2t_core.cli translate "$f" --backend cuda -o /tmp/p2t_out.py 2>&1 | grep -E "^p2t:|FAIL|PASSED|FAILED"
done 2>&1 | tee "$OUT/examples.log"
python3 scripts/gpu_corpus.py --backend cuda --jobs 8 --json "$OUT/corpus_cuda.json" 2>&1 | tee "$OUT/corpus.log"
