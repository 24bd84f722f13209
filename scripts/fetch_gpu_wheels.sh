#!/usr/bin/env bash
# Fetch, on this machine, the wheels the GPU machine lacks (its image has no libcst or lark); every
# scripts/gpu_*.sh installs .whl/*.whl into /tmp/site.
#   bash scripts/fetch_gpu_wheels.sh     then name `.whl` in the device call's `carry`
# WITH_NUMPY=1 also fetches numpy 2.3.5: the image's numpy 2.5 breaks Triton 3.6's interpreter, which only a data
# build on the GPU machine uses. Its 16.6 MB wheel no longer fits the 64 MiB a call carries beside the 48 MB of
# shipped weights: build data here and carry it instead (docs/BENCHMARKS.md, "Model and training").
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
for spec in lark==1.3.1 libcst==1.9.0 pyyaml==6.0.3 ${WITH_NUMPY:+numpy==2.3.5}; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$spec"
done
ls -l .whl
