// Asynchronous global -> shared copies (cp.async, sm_80+) for software-pipelined tile loads.
// Pattern: issue the copies of stage s, cp_async_commit(); before computing on stage s,
// cp_async_wait<kStages - 2>() then __syncthreads().
#pragma once
#include <cstdint>

namespace sk::cuda {

/// Copies 16 bytes global -> shared, bypassing L1 (.cg). When `valid` is false nothing is read and the
/// 16 destination bytes are zero-filled: out-of-range rows become zeros without a branch.
/// @param[in] smem_addr destination, 16-byte aligned (shared space, see smem_u32)
/// @param[in] gmem      source, 16-byte aligned; must still be a valid address even when !valid
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(gmem), "r"(src_bytes));
}

/// Closes the current group of cp.async operations.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/// Waits until at most N committed groups are still in flight (this thread's copies only).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace sk::cuda
