#!/usr/bin/env bash
# Builds the DeltaLinear standalone checks into .bin-gpu/ (git-ignored):
#   .bin-gpu/delta_cpu_check   CPU backend vs the float64 reference + CPU timing (g++ only)
#   .bin-gpu/delta_check       CUDA backend vs the float64 reference + GPU timing (needs nvcc; static cudart)
# Usage: bench/native/build-delta.sh [cpu|gpu|all|prof]   (default all; gpu is skipped when nvcc is missing;
#        prof: .bin-gpu/delta_check_prof, the check with per-phase kernel timestamps, for tuning)
# ARCHS overrides the CUDA targets (default sm_90, the GPU machine; the product build adds sm_80/86/89 and
# compute_90 PTX), e.g. ARCHS="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90".
# JOBS (default 2) compiles that many files at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-all}"
out=.bin-gpu
obj="$out/obj-delta"
mkdir -p "$obj"
CXXFLAGS=(-std=c++17 -O3 -fPIC -Wall -Wextra -Isrc -I.)
JOBS="${JOBS:-2}"

# src/core pieces the CPU kernels use (thread_priority.cc exists once the runtime lands it).
cpu_sources=(src/core/thread_pool.cc src/ops/delta.cc src/cpu/delta/*.cc)
[[ -f src/core/thread_priority.cc ]] && cpu_sources+=(src/core/thread_priority.cc)
cpu_objs=()
for s in "${cpu_sources[@]}"; do
  o="$obj/$(echo "$s" | tr '/' '_' | sed 's/\.cc$/.o/')"
  cpu_objs+=("$o")
  if [[ ! -f "$o" || "$s" -nt "$o" || src/ops/delta.h -nt "$o" || src/cpu/delta/row_ops.h -nt "$o" ]]; then
    echo "g++ $s" && g++ "${CXXFLAGS[@]}" -c "$s" -o "$o" &
    while (($(jobs -r | wc -l) >= JOBS)); do wait -n; done
  fi
done
wait

if [[ "$what" == cpu || "$what" == all ]]; then
  echo "g++ bench/native/delta_cpu_check.cc"
  g++ "${CXXFLAGS[@]}" -Ibench/native bench/native/delta_cpu_check.cc "${cpu_objs[@]}" -o "$out/delta_cpu_check" -pthread
  echo "built $out/delta_cpu_check"
fi

if [[ "$what" == gpu || "$what" == all ]]; then
  if ! command -v nvcc >/dev/null; then
    echo "nvcc not found: skipping delta_check" >&2
    exit 0
  fi
  ARCHS="${ARCHS:--gencode arch=compute_90,code=sm_90}"
  NVFLAGS=(-std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. -Ibench/native -Xcompiler -fPIC,-Wall $ARCHS)
  cu_objs=()
  for s in cuda/delta/*.cu cuda/delta/inst/*.cu bench/native/delta_check.cu; do
    o="$obj/$(echo "$s" | tr '/' '_' | sed 's/\.cu$/.o/')"
    cu_objs+=("$o")
    if [[ ! -f "$o" || "$s" -nt "$o" || -n "$(find cuda/delta src/ops/delta.h bench/native/delta_check_*.h -newer "$o" -print -quit)" ]]; then
      echo "nvcc $s" && nvcc "${NVFLAGS[@]}" -Xptxas -warn-spills -c "$s" -o "$o" &
      while (($(jobs -r | wc -l) >= JOBS)); do wait -n; done
    fi
  done
  wait
  nvcc "${NVFLAGS[@]}" -cudart static "${cu_objs[@]}" "${cpu_objs[@]}" -o "$out/delta_check" -Xcompiler -pthread
  echo "built $out/delta_check"
fi

# Tuning build: the same check with per-phase timestamps in the kernel (SK_DELTA_PROFILE), timing only.
if [[ "$what" == prof ]]; then
  ARCHS="${ARCHS:--gencode arch=compute_90,code=sm_90}"
  NVFLAGS=(-std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. -Ibench/native -Xcompiler -fPIC,-Wall $ARCHS -DSK_DELTA_PROFILE)
  nvcc "${NVFLAGS[@]}" -cudart static cuda/delta/*.cu cuda/delta/inst/*.cu bench/native/delta_check.cu "${cpu_objs[@]}" \
    -o "$out/delta_check_prof" -Xcompiler -pthread
  echo "built $out/delta_check_prof"
fi
