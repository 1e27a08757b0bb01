#!/usr/bin/env bash
# Builds the PBS standalone checks into .bin-gpu/ (git-ignored):
#   .bin-gpu/pbs_cpu_check   CPU stages vs the float64 reference (g++ only)
#   .bin-gpu/pbs_check       CUDA stages vs the CPU stages and the reference, plus stage timings (needs nvcc)
# Usage: bench/native/build-pbs.sh [cpu|gpu|all]   (default all; gpu is skipped when nvcc is missing)
# ARCHS overrides the CUDA targets, e.g. ARCHS="-gencode arch=compute_90,code=sm_90" (default sm_90, the
# GPU machine; the product build adds sm_80/86/89 + compute_90 PTX).
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-all}"
out=.bin-gpu
obj="$out/obj-pbs"
mkdir -p "$obj"
CXXFLAGS=(-std=c++17 -O3 -fPIC -Wall -Wextra -Isrc -I.)
JOBS="${JOBS:-2}"

cpu_sources=(src/core/*.cc src/ops/pbs.cc src/cpu/pbs/*.cc)  # core: the thread pool and what it needs
cpu_objs=()
for s in "${cpu_sources[@]}"; do
  o="$obj/$(echo "$s" | tr '/' '_' | sed 's/\.cc$/.o/')"
  cpu_objs+=("$o")
  if [[ ! -f "$o" || "$s" -nt "$o" || src/ops/pbs.h -nt "$o" || src/cpu/pbs/common.h -nt "$o" ]]; then
    echo "g++ $s" && g++ "${CXXFLAGS[@]}" -c "$s" -o "$o" &
    while (($(jobs -r | wc -l) >= JOBS)); do wait -n; done
  fi
done
wait

if [[ "$what" == cpu || "$what" == all ]]; then
  echo "g++ bench/native/pbs_cpu_check.cc"
  g++ "${CXXFLAGS[@]}" bench/native/pbs_cpu_check.cc "${cpu_objs[@]}" -o "$out/pbs_cpu_check" -pthread
fi

if [[ "$what" == gpu || "$what" == all ]]; then
  if ! command -v nvcc >/dev/null; then
    echo "nvcc not found: skipping pbs_check" >&2
    exit 0
  fi
  ARCHS="${ARCHS:--gencode arch=compute_90,code=sm_90}"
  NVFLAGS=(-std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. -Xcompiler -fPIC,-Wall $ARCHS)
  cu_objs=()
  for s in cuda/pbs/*.cu bench/native/pbs_check.cu; do
    o="$obj/$(echo "$s" | tr '/' '_' | sed 's/\.cu$/.o/')"
    cu_objs+=("$o")
    newest=$(ls -t "$s" cuda/pbs/*.cuh cuda/common/*.cuh src/ops/pbs.h bench/native/pbs_reference.h | head -1)
    if [[ -f "$o" && "$o" -nt "$newest" ]]; then continue; fi
    echo "nvcc $s" && nvcc "${NVFLAGS[@]}" -c "$s" -o "$o" &
    while (($(jobs -r | wc -l) >= JOBS)); do wait -n; done
  done
  wait
  nvcc "${NVFLAGS[@]}" -cudart static "${cu_objs[@]}" "${cpu_objs[@]}" -o "$out/pbs_check" -Xcompiler -pthread
  echo "built $out/pbs_check"
fi
