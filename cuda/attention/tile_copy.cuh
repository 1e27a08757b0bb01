// Global -> shared tile copies of the attention kernel, all cp.async (16-byte chunks, zero-filled when out
// of range) so they overlap the tensor-core work of the previous tile.
// Thread tid copies chunk column tid % kChunksPerRow of rows tid / kChunksPerRow + i * kRowsPerPass.
#pragma once
#include <cstdint>

#include "cuda/common/cp_async.cuh"
#include "cuda/common/cp_async_small.cuh"
#include "cuda/common/swizzle.cuh"

namespace sk::cuda::attn {

template <typename Tr>
struct TileCopy {
  static constexpr int kRowsPerPass = Tr::kThreads / Tr::kChunksPerRow;
  using T = typename Tr::Element;

  // Q rows [q0, q0 + kBlockM) of one head; rows >= seq_q become zeros (their output is never stored).
  __device__ static void load_q(uint32_t s_q, const T* q_head, int64_t row_stride, int q0, int seq_q, int tid) {
    const int c = tid % Tr::kChunksPerRow;
#pragma unroll
    for (int i = 0; i < Tr::kBlockM / kRowsPerPass; ++i) {
      const int r = tid / Tr::kChunksPerRow + i * kRowsPerPass;
      const bool valid = q0 + r < seq_q;
      const T* src = valid ? q_head + (q0 + r) * row_stride + c * 8 : q_head;
      cp_async_16(s_q + Tr::template smem_offset<Tr::kBlockM>(r, c), src, valid);
    }
  }

  // K and V rows of key slots [n0, n0 + kBlockN). With a permutation, slot j is read from row perm[j]
  // (clamped into [0, seq_k): a bad entry cannot leave the tensor); slots >= seq_k, and every slot of a
  // skipped tile (n0 < 0), become zeros.
  __device__ static void load_kv(uint32_t s_k, uint32_t s_v, const T* k_head, const T* v_head, int64_t k_stride,
                                 int64_t v_stride, int n0, int seq_k, const int* perm_slot, int tid) {
    const int c = tid % Tr::kChunksPerRow;
#pragma unroll
    for (int i = 0; i < Tr::kBlockN / kRowsPerPass; ++i) {
      const int r = tid / Tr::kChunksPerRow + i * kRowsPerPass;
      const bool valid = n0 >= 0 && n0 + r < seq_k;
      int src_row = n0 + r;
      if (perm_slot != nullptr) src_row = min(max(perm_slot[r], 0), seq_k - 1);
      const T* k_src = valid ? k_head + src_row * k_stride + c * 8 : k_head;
      const T* v_src = valid ? v_head + src_row * v_stride + c * 8 : v_head;
      const uint32_t off = Tr::template smem_offset<Tr::kBlockN>(r, c);
      cp_async_16(s_k + off, k_src, valid);
      cp_async_16(s_v + off, v_src, valid);
    }
  }

  // One tensor's rows of a tile (the Hopper kernel fetches K one tile ahead of V).
  __device__ static void load_rows(uint32_t s_dst, const T* head, int64_t stride, int n0, int seq_k,
                                   const int* perm_slot, int tid) {
    const int c = tid % Tr::kChunksPerRow;
#pragma unroll
    for (int i = 0; i < Tr::kBlockN / kRowsPerPass; ++i) {
      const int r = tid / Tr::kChunksPerRow + i * kRowsPerPass;
      const bool valid = n0 >= 0 && n0 + r < seq_k;
      int src_row = n0 + r;
      if (perm_slot != nullptr) src_row = min(max(perm_slot[r], 0), seq_k - 1);
      const T* src = valid ? head + src_row * stride + c * 8 : head;
      cp_async_16(s_dst + Tr::template smem_offset<Tr::kBlockN>(r, c), src, valid);
    }
  }

  // Key positions perm[n0 .. n0 + kBlockN) into a ring slot (one int per thread; zeros past seq_k).
  __device__ static void load_perm(uint32_t s_slot, const int32_t* perm_row, int n0, int seq_k, int tid) {
    if (tid < Tr::kBlockN) {
      const bool valid = n0 + tid < seq_k;
      cp_async_4(s_slot + 4 * tid, valid ? perm_row + n0 + tid : perm_row, valid);
    }
  }
};

}  // namespace sk::cuda::attn
