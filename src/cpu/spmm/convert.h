// Array conversions between the op dtype and float32 for the CPU SpMM kernels. The per-element helpers
// of core/half.h are exact but branchy; these loops are written branch-free so each SK_CPU_DISPATCH clone
// vectorises them, and they give the same bits as core/half.h (round to nearest even, NaN stays NaN,
// subnormals exact). bench/native/spmm_cpu_check.cc compares them with core/half.h.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace sk::cpu::spmm_detail {

// dst[i] = float(src[i]); src is float32, float16 or bfloat16 (by dtype).
void to_float(DType dtype, const void* src, float* dst, int64_t count);
// dst[i] = dtype(src[i]), rounded to nearest even.
void from_float(DType dtype, const float* src, void* dst, int64_t count);

}  // namespace sk::cpu::spmm_detail
