// Tensor-core matrix multiply-accumulate, mma.sync.aligned.m16n8k16 (sm_80+), fp32 accumulators.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"); lane = threadIdx.x % 32,
// g = lane / 4 (group), t = lane % 4 (thread in group):
//   A (16x16, row-major) a[4] 32-bit regs, each two 16-bit elements:
//     a[0]: (row g,   cols 2t, 2t+1)      a[1]: (row g+8, cols 2t, 2t+1)
//     a[2]: (row g,   cols 2t+8, 2t+9)    a[3]: (row g+8, cols 2t+8, 2t+9)
//   B (16x8, "col-major", i.e. B^T row-major) b[2]:
//     b[0]: (rows 2t, 2t+1, col g)        b[1]: (rows 2t+8, 2t+9, col g)
//   C/D (16x8) c[4] floats:
//     c[0], c[1]: (row g,   cols 2t, 2t+1)   c[2], c[3]: (row g+8, cols 2t, 2t+1)
#pragma once
#include <cstdint>

namespace sk::cuda {

struct MmaF16 {};   // operands are IEEE fp16
struct MmaBF16 {};  // operands are bfloat16

/// d = a * b + c on one 16x8x16 tile.
/// @param[out] d   4 floats, C/D layout above (may alias c)
/// @param[in]  a   4 regs of packed 16-bit A
/// @param[in]  b   2 regs of packed 16-bit B
/// @param[in]  c   4 floats accumulator in
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                            const float (&c)[4], MmaF16) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                            const float (&c)[4], MmaBF16) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

/// Accumulating form: acc += a * b.
template <typename Kind>
__device__ __forceinline__ void mma_16x8x16_acc(float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                Kind kind) {
  mma_16x8x16(acc, a, b, acc, kind);
}

}  // namespace sk::cuda
