#!/usr/bin/env bash
# Run the p2t benchmark suite (`p2t bench`, issue 3) on a GPU machine, from the source tree.
#
#   OUT=/some/dir scripts/gpu_bench.sh [extra `p2t bench` options, e.g. --only softmax,matmul --no-autotune]
#
# Writes $OUT/bench.log (everything printed), $OUT/bench.json (results, ceilings, device, versions, targets)
# and $OUT/bench.png (fraction of ceiling per unit). Exit code: that of the bench (1 when a unit failed or
# disagreed; the files are written anyway).
#
# The GPU machine has Python 3.12, torch (CUDA) and triton but not libcst and lark: carry their wheels in
# .whl/ (also pluggy, click, rich, matplotlib if missing; the preflight below says which). The repository
# is not pip-installed there, so the packages are imported from the source tree through /tmp/p2tpath,
# symlinks with the installed names (pyproject's package-dir): p2t_core, p2t_plugins -> plugins/,
# p2t_grammar -> grammar/, p2t_model -> model/. Without the package metadata there are no `p2t` entry
# points, and p2t_core.plugins.default_plugins falls back to registering the four built-in plugins.
#
# Time: the full suite (24 units) takes about 4-6 minutes on an H100, most of it torch.compile's first
# compilation of each unit (a few seconds each, plus ~20-60 s the first time for inductor's warm-up).
# BENCH_BUDGET (default 420 s) is passed as --budget: units not started by then are reported as skipped,
# so the run stays inside a 10-minute limit. Use --only to run a part.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-/tmp/p2t_bench_out}
mkdir -p "$OUT"
BENCH_BUDGET=${BENCH_BUDGET:-420}

# shellcheck source=/dev/null
source scripts/gpu_env.sh  # the carried wheels, the source tree as packages, the inductor cache

{
    echo "# gpu_bench.sh $(date -Is) in $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
    python3 - <<'EOF'
import importlib, sys
missing = []
for name in ("torch", "triton", "libcst", "lark", "pluggy", "click", "rich"):
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
try:
    importlib.import_module("matplotlib")
except ImportError:
    print("preflight: matplotlib missing: no plot will be written", flush=True)
if missing:
    sys.exit(f"preflight: missing {', '.join(missing)}: carry their wheels in .whl/")
import torch, triton
print(f"preflight: python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, "
      f"cuda available: {torch.cuda.is_available()}", flush=True)
EOF
} 2>&1 | tee "$OUT/bench.log"

set +e
python3 -m p2t_core.bench.cli --json "$OUT/bench.json" --plot "$OUT/bench.png" --budget "$BENCH_BUDGET" "$@" 2>&1 \
    | tee -a "$OUT/bench.log"
rc=${PIPESTATUS[0]}
set -e
echo "# gpu_bench.sh: exit code $rc; files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$OUT/bench.log"
exit "$rc"
