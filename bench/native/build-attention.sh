#!/usr/bin/env bash
# Builds the standalone attention check/benchmark into .bin-gpu/ (git-ignored), statically linked
# against cudart so the binary runs on the GPU machine as is.
#   bash bench/native/build-attention.sh            # sm_90 (the H200) only
#   ARCHS="80 90" bash bench/native/build-attention.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ARCHS=${ARCHS:-90}
gencode=()
for a in $ARCHS; do gencode+=(-gencode "arch=compute_${a},code=sm_${a}"); done
mkdir -p .bin-gpu/obj-attention
flags=(-std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. "${gencode[@]}" -Xptxas -v)
# *_sm90a.cu files hold Hopper-only code (wgmma): they get the sm_90a target alone, as in the product build.
srcs=(cuda/attention/attention_fwd.cu cuda/attention/inst/*.cu bench/native/attention_check.cu bench/native/attention_check_sm90a.cu)
objs=()
for s in "${srcs[@]}"; do objs+=(.bin-gpu/obj-attention/$(basename "${s%.cu}").o); done
# Two compilations at a time (the build machines have 2 cores).
export flags_str="${flags[*]}"
flags90a=(-std=c++17 -O3 --expt-relaxed-constexpr -Isrc -I. -gencode arch=compute_90a,code=sm_90a -Xptxas -v)
export flags90a_str="${flags90a[*]}"
printf '%s\n' "${srcs[@]}" | xargs -P "${JOBS:-2}" -I{} bash -c '
  s={}; o=.bin-gpu/obj-attention/$(basename "${s%.cu}").o
  f=$flags_str; [[ "$s" == *_sm90a.cu ]] && f=$flags90a_str
  nvcc $f -c "$s" -o "$o" 2> "$o.ptxas.log" || { cat "$o.ptxas.log"; exit 255; }'

nvcc "${gencode[@]}" -gencode arch=compute_90a,code=sm_90a -cudart static "${objs[@]}" -o .bin-gpu/attention_check -lpthread
# Registers and spills per kernel (compact).
for o in "${objs[@]}"; do
  awk -v f="$(basename "$o" .o)" '/Compiling entry function/{split($0,a,"'"'"'"); k=a[2]}
       /registers/{r=$0; sub(/.*Used /,"",r); sub(/ registers.*/,"",r)}
       /spill stores/{s=$0; sub(/^ */,"",s)}
       /registers/{print f": "k": regs="r", "s}' "$o.ptxas.log"
done > .bin-gpu/attention_ptxas.txt
echo "built .bin-gpu/attention_check (archs: $ARCHS); ptxas summary in .bin-gpu/attention_ptxas.txt"
