// What the step kernel receives by value: the op contract plus the launch geometry chosen on the host,
// and the small device helpers (output stores, activation, quantiser) the kernel steps share.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "ops/delta.h"

#ifdef SK_DELTA_PROFILE
extern unsigned long long* g_delta_profile_marks;  // host global, set by the check: [ctas][kProfileMarks]
#endif

namespace sk::cuda::delta {

// Phase timestamps for tuning (bench/native/build-delta.sh "prof" builds a check binary with
// -DSK_DELTA_PROFILE): thread 0 of every CTA records %globaltimer (ns) at each SK_DELTA_MARK. Compiled
// out otherwise.
#ifdef SK_DELTA_PROFILE
inline constexpr int kProfileMarks = 10;
#define SK_DELTA_MARK(a, i)                                                                               \
  do {                                                                                                    \
    if (threadIdx.x == 0 && (a).marks != nullptr) {                                                       \
      unsigned long long t_;                                                                              \
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_));                                              \
      const int cta_ = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;                    \
      (a).marks[cta_ * kProfileMarks + (i)] = t_;                                                         \
    }                                                                                                     \
  } while (0)
#else
#define SK_DELTA_MARK(a, i) \
  do {                      \
  } while (0)
#endif

struct KernelArgs {
  DeltaStepParams p;
#ifdef SK_DELTA_PROFILE
  unsigned long long* marks = nullptr;
#endif
  int32_t chunk = 0;     // K rows per CTA (blockIdx.x); the last chunk may be shorter or empty
  int32_t k_splits = 1;  // gridDim.x
  int32_t m_tiles = 1;   // gridDim.y
  float* partials = nullptr;  // [gridDim.z, k_splits, kStreams, M] split-K partial sums
};

// Layout of DeltaState::sync (sized by delta_sync_ints; zero between steps).
struct SyncView {
  int32_t* grid_arrivals;  // [1]
  int32_t* fired_counts;   // [S]: per row of the step, summed over K chunks
  int32_t* tile_arrivals;  // [m_tiles x stream groups]
  __device__ static SyncView of(int32_t* sync, int32_t S) { return {sync, sync + 1, sync + 1 + S}; }
};

__device__ __forceinline__ void store_elem(void* base, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kFloat16: static_cast<__half*>(base)[i] = __float2half_rn(v); break;
    case DType::kBFloat16: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(base)[i] = v; break;
  }
}

// Same formulas as the CPU backend (src/cpu/delta/delta_linear.cc); precise erff/expf (no fast math).
__device__ __forceinline__ float activate(float v, Activation a) {
  switch (a) {
    case Activation::kRelu: return v > 0.f ? v : (v == v ? 0.f : v);  // NaN stays NaN
    case Activation::kGelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Activation::kSilu: return v / (1.f + expf(-v));
    default: return v;
  }
}

// q(x) with explicitly rounded operations so nvcc cannot fuse the multiply into a later subtraction: the
// CPU computes the same bits, and the fired sets of the two backends agree exactly.
__device__ __forceinline__ float quantize(float x, const DeltaWeights& w) {
  if (w.mode != DeltaMode::kQuantized) return x;
  return __fmul_rn(rintf(__fdiv_rn(x, w.quant_step)), w.quant_step);
}

}  // namespace sk::cuda::delta
