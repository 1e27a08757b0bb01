#!/usr/bin/env bash
# One call on a lent GPU machine (CONTRIBUTING.md "Running the GPU job on a lent GPU machine"): the jest suite
# with SPARSE_KERNELS_REQUIRE_GPU=1 and the load test through scripts/gpu-ci.sh, then the benchmarks named in
# BENCH_OPS while DEADLINE (seconds, default 540) allows; everything into $OUT/r.tgz. Limits: TT (tests, 300 s),
# LT (load test, 120 s). Needs .gpu/ (bash ../shared/gpu/pack.sh), dist/ and build-lead-cuda/Release carried.
set -u
T0=$(date +%s)
source .gpu/env.sh
export SPARSE_KERNELS_BINARY=$PWD/build-lead-cuda/Release/sparse_kernels.node
R=/tmp/r; mkdir -p $R
nvidia-smi > $R/nvidia-smi.txt 2>&1
GPU_CI_TEST_TIMEOUT=${TT:-300} GPU_CI_LOADTEST_TIMEOUT=${LT:-120} OUT=$R/tests bash scripts/gpu-ci.sh --no-build --skip-bench
for op in ${BENCH_OPS:-}; do
  left=$(( ${DEADLINE:-540} - ($(date +%s) - T0) ))
  echo "seconds left: $left"
  [[ $left -gt 60 ]] || break
  GPU_CI_BENCH_TIMEOUT=$((left - 15)) OUT=$R/bench-$op bash scripts/gpu-ci.sh --no-build --skip-tests --skip-loadtest --ops "$op"
done
rm -f $R/*.tgz
tar czf $OUT/r.tgz --exclude="*.u8" --exclude="*.bin" -C /tmp r
cp $R/tests/gpu-ci.log $OUT/tests-gpu-ci.log 2>/dev/null
grep -h "FAILED\|jest:\|loadtest\|p50\|errors" $R/tests/gpu-ci.log | tail -60
