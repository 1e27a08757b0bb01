#!/usr/bin/env bash
# A second call: the benchmarks in BENCH_OPS (default "pbs attention") while DEADLINE (default 540 s) allows,
# then compute-sanitizer (TOOL: memcheck | racecheck | initcheck | synccheck, default memcheck) over the jest
# files in SAN (e.g. "test/spmm/spmm.gpu.test.ts"), until the deadline; everything into $OUT/r2.tgz.
set -u
T0=$(date +%s)
source .gpu/env.sh
export SPARSE_KERNELS_BINARY=$PWD/build-lead-cuda/Release/sparse_kernels.node
R=/tmp/r2; mkdir -p $R
for op in ${BENCH_OPS:-pbs attention}; do
  left=$(( ${DEADLINE:-540} - ($(date +%s) - T0) ))
  [[ $left -gt 60 ]] || break
  GPU_CI_BENCH_TIMEOUT=$((left - 10)) OUT=$R/bench-$op bash scripts/gpu-ci.sh --no-build --skip-tests --skip-loadtest --ops "$op"
done
left=$(( ${DEADLINE:-540} - ($(date +%s) - T0) ))
if [[ -n "${SAN:-}" && $left -gt 60 ]]; then
  SPARSE_KERNELS_REQUIRE_GPU=1 timeout $((left - 10)) compute-sanitizer --tool "${TOOL:-memcheck}" --target-processes all --error-exitcode 99 \
    node node_modules/.bin/jest --ci --runInBand $SAN > $R/sanitizer-${TOOL:-memcheck}.log 2>&1
  echo "${TOOL:-memcheck} exit $?" | tee -a $R/sanitizer-${TOOL:-memcheck}.log
  tail -25 $R/sanitizer-${TOOL:-memcheck}.log
fi
rm -f $R/*.tgz
tar czf $OUT/r2.tgz --exclude='*.u8' --exclude='*.bin' -C /tmp r2
grep -h "===\|peer \|: pbs\|ms$" $R/*/gpu-ci.log | tail -80
