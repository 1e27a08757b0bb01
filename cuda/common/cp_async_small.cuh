// 4-byte asynchronous global -> shared copies (cp.async.ca, sm_80+), for small index vectors that ride in
// the same commit groups as the 16-byte tile copies of cp_async.cuh.
#pragma once
#include <cstdint>

namespace sk::cuda {

/// Copies 4 bytes global -> shared through L1 (.ca: neighbouring CTAs read the same indices). When
/// `valid` is false nothing is read and the destination is zero-filled.
/// @param[in] smem_addr destination, 4-byte aligned (shared space, see smem_u32)
/// @param[in] gmem      source, 4-byte aligned; must still be a valid address even when !valid
__device__ __forceinline__ void cp_async_4(uint32_t smem_addr, const void* gmem, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr), "l"(gmem), "r"(src_bytes));
}

}  // namespace sk::cuda
