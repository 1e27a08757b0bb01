// Special-function and quad-reduction helpers for fp32 epilogues and softmaxes.
#pragma once

namespace sk::cuda {

/// 2^x on the SFU (ex2.approx.ftz: ~2 ulp, denormal results flush to 0). exp2(-inf) = 0, which the
/// online softmax relies on for masked scores.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// Max / sum over the 4 lanes of an mma quad (lanes 4g..4g+3 hold one accumulator row between them).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace sk::cuda
