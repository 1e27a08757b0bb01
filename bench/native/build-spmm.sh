#!/usr/bin/env bash
# Builds the SpMM standalone checks into .bin-gpu/ (git-ignored), from the repository root:
#   bash bench/native/build-spmm.sh          build both checks (CPU: g++; CUDA: nvcc, -cudart static)
#   bash bench/native/build-spmm.sh cpu      build and run the CPU check (numpy timed in the same run)
#   bash bench/native/build-spmm.sh peers    on the GPU machine: time cuBLAS dense and torch BSR on the
#                                            benchmark shapes (same-run peers for .bin-gpu/spmm_check)
# ARCHS="80 90" adds real architectures (default 90: the check runs on the H200). JOBS=<n> parallel nvcc.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root (the GPU machine gets a copy without .git)
mode=${1:-build}

if [[ $mode == peers ]]; then
  exec python3 - <<'PY'
import torch
dev = "cuda"
def bench(fn, warm=3, rep=15):
    for _ in range(warm): fn()
    torch.cuda.synchronize(); ts = []
    for _ in range(rep):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort(); return ts[len(ts) // 2]
M = K = 8192
W = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
print(f"peers on {torch.cuda.get_device_name()}: torch {torch.__version__}, bf16, W {M}x{K}")
for N in (4096, 256, 16):
    X = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    print(f"peer cuBLAS dense  X.W^T  N={N:5d}: {bench(lambda: X @ W.t()):.3f} ms")
X = torch.randn(K, 4096, device=dev, dtype=torch.bfloat16)
for bs in (32, 64):
    for sp in (0.5, 0.75, 0.9, 0.95):
        g = torch.Generator(device="cpu").manual_seed(1)
        keep = (torch.rand(M // bs, K // bs, generator=g) >= sp).to(dev)
        Wb = (W * keep.repeat_interleave(bs, 0).repeat_interleave(bs, 1)).to_sparse_bsr((bs, bs))
        try:
            print(f"peer torch BSR {bs}x{bs} {int(sp*100)}% N=4096: {bench(lambda: Wb @ X):.3f} ms")
        except Exception as ex:
            print(f"peer torch BSR {bs}x{bs} {int(sp*100)}%: error {ex!r}"[:160])
PY
fi

out=.bin-gpu
mkdir -p "$out/obj"
cxx_flags=(-O3 -std=c++17 -Isrc -I. -Wall -Wextra)
cpu_srcs=(src/ops/spmm.cc src/cpu/spmm/*.cc src/core/*.cc)

build_cpu() {
  g++ "${cxx_flags[@]}" -pthread bench/native/spmm_cpu_check.cc "${cpu_srcs[@]}" -o "$out/spmm_cpu_check"
  echo "built $out/spmm_cpu_check"
}

build_cuda() {
  local gencode=()
  for a in ${ARCHS:-90}; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
  local nv=(nvcc -std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. "${gencode[@]}")
  local objs=() pids=() jobs=${JOBS:-2}
  for f in cuda/spmm/*.cu cuda/spmm/inst/*.cu bench/native/spmm_check.cu; do
    local o="$out/obj/$(echo "$f" | tr '/' '_').o"
    objs+=("$o")
    if [[ ! -f $o || $f -nt $o || -n $(find cuda/spmm src/ops src/core cuda/common bench/native/spmm_check_common.h -newer "$o" -name '*.*h' 2>/dev/null | head -1) ]]; then
      "${nv[@]}" -c "$f" -o "$o" &
      pids+=($!)
      if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for f in "${cpu_srcs[@]}"; do
    local o="$out/obj/$(echo "$f" | tr '/' '_').o"
    g++ "${cxx_flags[@]}" -fPIC -c "$f" -o "$o"
    objs+=("$o")
  done
  "${nv[@]}" -cudart static "${objs[@]}" -o "$out/spmm_check" -lpthread
  echo "built $out/spmm_check"
}

case $mode in
  build) build_cpu; build_cuda ;;
  cpu) build_cpu; "$out/spmm_cpu_check" ;;
  cuda) build_cuda ;;
  *) echo "usage: $0 [build|cpu|cuda|peers]" >&2; exit 2 ;;
esac
