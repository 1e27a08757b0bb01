#!/usr/bin/env bash
# The GPU job: what .github/workflows/gpu.yml runs on a self-hosted GPU runner, and what we run on the H200
# (../shared/gpu/README.md) with the build made elsewhere. Steps:
#   1. build (unless --no-build): npm ci with the CUDA kernels for this machine's GPU
#   2. inspect: the backend must be CUDA
#   3. the whole jest suite with SPARSE_KERNELS_REQUIRE_GPU=1 (GPU tests fail instead of skipping)
#   4. the benchmark matrix of every op, each with the peers a user would pick instead (torch) in the same job
#   4b. with --sanitize: compute-sanitizer (memcheck, racecheck, initcheck, synccheck) over the GPU suite
#   4c. the example service's load test on the GPU (64 clients, 10,000 requests; docs/reliability.md)
#   5. a summary table; everything under $OUT (default bench/results/gpu-<date>), plus one tarball
# Step limits: GPU_CI_TEST_TIMEOUT, GPU_CI_BENCH_TIMEOUT (per op), GPU_CI_LOADTEST_TIMEOUT, in seconds.
# Options: --no-build  --quick (smaller benchmark matrix)  --skip-tests  --skip-bench  --ops "attention spmm ..."
#          --sanitize  --skip-loadtest
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}"
BUILD=1; QUICK=""; TESTS=1; BENCH=1; SANITIZE=0; LOADTEST=1; OPS="attention pbs spmm delta"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --quick) QUICK="--quick" ;;
    --skip-tests) TESTS=0 ;;
    --skip-bench) BENCH=0 ;;
    --sanitize) SANITIZE=1 ;;
    --skip-loadtest) LOADTEST=0 ;;
    --ops) OPS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)   # absolute: the summary below reads it from node
# Per-step wall-clock limits (seconds), so one hung step cannot eat a whole job: a hang shows as exit 124.
TEST_TIMEOUT="${GPU_CI_TEST_TIMEOUT:-3600}"; BENCH_TIMEOUT="${GPU_CI_BENCH_TIMEOUT:-3600}"; LOADTEST_TIMEOUT="${GPU_CI_LOADTEST_TIMEOUT:-1800}"
LOG="$OUT_DIR/gpu-ci.log"
status=0
step() { echo "=== [$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [[ $BUILD == 1 ]]; then
  step "npm ci (CUDA kernels for the local GPU)"
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  SPARSE_KERNELS_CUDA_ARCHS="${SPARSE_KERNELS_CUDA_ARCHS:-$arch}" npm ci --no-audit --no-fund 2>&1 | tee -a "$LOG" || exit 1
fi

step "nvidia-smi / inspect"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | tee -a "$LOG"
node dist/esm/cli/main.js inspect 2>&1 | tee -a "$LOG" "$OUT_DIR/inspect.txt"
grep -q '^backend: *cuda' "$OUT_DIR/inspect.txt" || { echo "the CUDA backend is not usable here" | tee -a "$LOG"; exit 1; }

if [[ $TESTS == 1 ]]; then
  step "jest, SPARSE_KERNELS_REQUIRE_GPU=1"
  SPARSE_KERNELS_REQUIRE_GPU=1 timeout "$TEST_TIMEOUT" node node_modules/.bin/jest --ci --json --outputFile="$OUT_DIR/jest.json" 2>&1 | tee -a "$LOG" "$OUT_DIR/jest.log" >/dev/null
  [[ ${PIPESTATUS[0]} == 0 ]] || status=1
  node -e "const r=require('$OUT_DIR/jest.json'); console.log('jest: '+r.numPassedTests+' passed, '+r.numFailedTests+' failed, '+r.numPendingTests+' skipped, '+r.numTotalTestSuites+' suites'); for (const s of r.testResults) for (const t of s.assertionResults) if (t.status==='failed') console.log('FAILED: '+t.fullName+'\n  '+(t.failureMessages[0]||'').split('\n').slice(0,6).join('\n  '))" 2>&1 | tee -a "$LOG"
fi

if [[ $SANITIZE == 1 ]]; then
  # One jest process (--runInBand) so the sanitizer sees every kernel; --target-processes all follows the
  # native-boundary child. Any report fails the step (--error-exitcode).
  for tool in memcheck racecheck initcheck synccheck; do
    step "compute-sanitizer --tool $tool over the GPU suite"
    SPARSE_KERNELS_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --target-processes all --error-exitcode 99 \
      node node_modules/.bin/jest --ci --runInBand test/attention test/spmm test/pbs test/delta test/reliability/native-boundary \
      > "$OUT_DIR/sanitizer-$tool.log" 2>&1
    rc=$?
    tail -5 "$OUT_DIR/sanitizer-$tool.log" | tee -a "$LOG"
    echo "compute-sanitizer $tool: exit $rc" | tee -a "$LOG"
    [[ $rc == 0 ]] || status=1
  done
fi

if [[ $LOADTEST == 1 && -f examples/service/loadtest.mjs ]]; then
  step "example service load test (64 clients, 10,000 requests, device cuda)"
  timeout "$LOADTEST_TIMEOUT" node examples/service/loadtest.mjs --device cuda --clients 64 --requests 10000 --json "$OUT_DIR/loadtest.json" 2>&1 | tee -a "$LOG" || status=1
fi

if [[ $BENCH == 1 ]]; then
  for op in $OPS; do
    # Each bench runs its peers (torch) itself, in the same job, and writes them as columns of its rows.
    step "bench $op (ours + peers)"
    timeout "$BENCH_TIMEOUT" node dist/esm/cli/main.js bench --op "$op" $QUICK --json "$OUT_DIR/bench-$op.json" --out-dir "$OUT_DIR/$op" 2>&1 | tee -a "$LOG" || status=1
  done
  step "summary"
  node bench/summarize.mjs "$OUT_DIR" 2>&1 | tee -a "$LOG" "$OUT_DIR/summary.md" || status=1
fi

tar czf "$OUT_DIR.tgz" -C "$(dirname "$OUT_DIR")" "$(basename "$OUT_DIR")"
step "done (status $status); results in $OUT_DIR and $OUT_DIR.tgz"
exit $status
