// Fused epilogue of the SpMM kernels: + bias, activation, one rounding to the output dtype, masked store.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/common/convert.cuh"
#include "ops/common.h"

namespace sk::cuda::spmm_kernels {

// ReLU keeps NaN (as torch); GELU is the exact form x * Phi(x) (normcdff is erfc-based: no cancellation
// for x << 0); SiLU is x * sigmoid(x) with the accurate expf.
__device__ __forceinline__ float activate(float v, int act) {
  switch (act) {
    case static_cast<int>(Activation::kRelu): return v < 0.f ? 0.f : v;
    case static_cast<int>(Activation::kGelu): return v * normcdff(v);
    case static_cast<int>(Activation::kSilu): return v / (1.f + expf(-v));
    default: return v;
  }
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
__device__ __forceinline__ float load_bias(const T* bias, int m, int m_total) {
  return (bias != nullptr && m < m_total) ? to_f32(bias[m]) : 0.f;
}

// Stores y[m], y[m + 1] (m even) of one output row; `pairs` says the row allows one 2-element store aligned
// to 2 * sizeof(T) (even ldy and an aligned base). Each element is masked by m_total.
template <typename T>
__device__ __forceinline__ void store_pair(T* row, int m, int m_total, float v0, float v1, bool pairs) {
  if (pairs && m + 1 < m_total) {
    if constexpr (sizeof(T) == 2) {
      *reinterpret_cast<uint32_t*>(row + m) = Half16<T>::pack(v0, v1);
    } else {
      *reinterpret_cast<float2*>(row + m) = make_float2(v0, v1);
    }
    return;
  }
  if (m < m_total) row[m] = from_f32<T>(v0);
  if (m + 1 < m_total) row[m + 1] = from_f32<T>(v1);
}

}  // namespace sk::cuda::spmm_kernels
