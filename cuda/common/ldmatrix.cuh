// Shared memory -> register fragments for mma.m16n8k16 (ldmatrix, sm_75+).
// Each of the 8x8 matrices is addressed by 8 lanes giving one 16-byte row each:
//   x1: lanes 0-7; x2: lanes 0-15; x4: lanes 0-31 (matrix i rows come from lanes 8i..8i+7).
// Register r[i] receives matrix i in the mma fragment order (lane holds row lane/4, cols 2*(lane%4)+{0,1});
// the .trans forms transpose each 8x8 matrix on the way (for B operands stored K-major... e.g. V in P@V).
#pragma once
#include <cstdint>

namespace sk::cuda {

/// 32-bit shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// @param[out] r    4 regs, one 8x8 matrix each
/// @param[in]  addr this lane's row address (shared space)
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}

}  // namespace sk::cuda
