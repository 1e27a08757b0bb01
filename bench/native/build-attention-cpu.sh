#!/usr/bin/env bash
# Builds bench/native/attention_cpu_check (CPU attention kernel + validation check and benchmark) into
# .bin-gpu/, with the product's CPU flags: -O3 -fPIC, no -march (SK_CPU_DISPATCH picks the ISA at run time).
# Usage: bench/native/build-attention-cpu.sh && .bin-gpu/attention_cpu_check   (SEED=<n> reproduces a run)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .bin-gpu
CXX="${CXX:-g++}"
"$CXX" -std=c++17 -O3 -fPIC -Wall -Wextra -pthread -Isrc -I. \
  src/core/*.cc src/ops/attention.cc src/cpu/attention/*.cc bench/native/attention_cpu_check.cc \
  -o .bin-gpu/attention_cpu_check
echo "built .bin-gpu/attention_cpu_check"
