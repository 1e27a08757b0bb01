// Vectorised inner loops of the CPU DeltaLinear: "acc += sum_i d_i * Wt[row_i, col0 : col0 + n]" over
// contiguous Wt rows, one function per weight dtype, each compiled for AVX-512 / AVX2+FMA / baseline
// (SK_CPU_DISPATCH). Everything else in the op is O(K) or O(M) per stream and stays scalar.
#pragma once
#include <cstdint>

#include "cpu/common/simd.h"

namespace sk::cpu::delta {

// acc[j] += sum_{i < count} d[i] * Wt[row(i), col0 + j] for j < n, where row(i) = idx[i], or i when idx is
// null (the dense masked pass). The sum runs in ascending i (rows are fused four at a time, which keeps
// the order and cuts the acc traffic by 4), so the result does not depend on the thread count.
void accumulate_rows_f32(float* SK_RESTRICT acc, int64_t n, const float* wt, int64_t ld, int64_t col0,
                         const int32_t* idx, const float* d, int64_t count);
// 16-bit weights are passed as their bit patterns (IEEE binary16 / bfloat16).
void accumulate_rows_f16(float* SK_RESTRICT acc, int64_t n, const uint16_t* wt, int64_t ld, int64_t col0,
                         const int32_t* idx, const float* d, int64_t count);
void accumulate_rows_bf16(float* SK_RESTRICT acc, int64_t n, const uint16_t* wt, int64_t ld, int64_t col0,
                          const int32_t* idx, const float* d, int64_t count);

// dst[j] = float(src[j]) for j < n (16-bit bit patterns in).
void convert_f16(float* SK_RESTRICT dst, const uint16_t* SK_RESTRICT src, int64_t n);
void convert_bf16(float* SK_RESTRICT dst, const uint16_t* SK_RESTRICT src, int64_t n);

}  // namespace sk::cpu::delta
