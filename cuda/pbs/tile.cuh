// Shared-memory row tiles of 16-bit q/k rows for the tensor-core PBS kernels (proxy, antidiagonal).
//
// A tile holds rows of kHeadDim halves, stored as kHeadDim/8 chunks of 16 bytes. ldmatrix reads 8 rows
// at one chunk column per phase; unswizzled, rows 256 B apart all hit the same banks (8-way conflict).
// Chunk c of row r is therefore stored at chunk c ^ ((r >> shift) & 7): the 8 rows an ldmatrix phase
// reads differ in (r >> shift) & 7 and land in 8 different 16-byte bank groups.
//   shift = 0         consecutive rows (proxy: 16 query rows, 8 keys per n-tile)
//   shift = log2(X)   rows X apart (antidiagonal: reshaped row m reads position m*X + phase)
#pragma once
#include <cstdint>

#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"

namespace sk::cuda::pbs {

template <int kHeadDim>
struct SwizzledRows {
  static constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  static_assert(kChunks >= 8, "the XOR swizzle permutes 8 chunk columns");

  /// Element offset (in halves) of chunk `chunk` of row `row`; `shift` as in the header comment
  /// (a runtime value: the antidiagonal stride is an option, and one kernel serves 4, 8 and 16).
  __device__ __forceinline__ static int offset(int row, int chunk, int shift) {
    return row * kHeadDim + ((chunk ^ ((row >> shift) & 7)) << 3);
  }

  /// cp.async of `rows` rows into the tile; row r comes from src_row(r) (a pointer to kHeadDim halves,
  /// which must stay a valid address even when invalid) and is zero-filled when valid(r) is false.
  template <int kThreads, typename Elem, typename SrcRow, typename Valid>
  __device__ __forceinline__ static void load_async(Elem* tile, int rows, int shift, SrcRow&& src_row, Valid&& valid) {
    for (int x = threadIdx.x; x < rows * kChunks; x += kThreads) {
      const int r = x / kChunks, c = x % kChunks;
      cp_async_16(smem_u32(tile + offset(r, c, shift)), src_row(r) + c * 8, valid(r));
    }
  }

  /// This lane's ldmatrix address for the 8x8 matrix at (row, chunk).
  template <typename Elem>
  __device__ __forceinline__ static uint32_t addr(const Elem* tile, int row, int chunk, int shift) {
    return smem_u32(tile + offset(row, chunk, shift));
  }
};

}  // namespace sk::cuda::pbs
