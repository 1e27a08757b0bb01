// XOR-swizzled row-major shared-memory tiles of 16-bit elements, addressed in 16-byte chunks:
// chunk c of row r is stored at chunk position c ^ (r % 8). With rows of >= 128 bytes (>= 8 chunks), the
// 8 rows of one ldmatrix 8x8 matrix (same logical chunk) land in 8 distinct 16-byte bank groups, and so do
// 8 consecutive chunks written by cp.async: no bank conflicts on either side.
#pragma once
#include <cstdint>

namespace sk::cuda {

/// Byte offset of (row, chunk) in a swizzled tile with kRowBytes bytes per row.
template <int kRowBytes>
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  static_assert(kRowBytes % 128 == 0, "rows of at least 8 chunks, whole multiples of 8");
  return static_cast<uint32_t>(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
}

/// Per-lane constants for ldmatrix_x4 over 16x16 blocks of a swizzled tile. Matrix i = lane / 8 covers
/// rows 8 * row_half(i) .. +7 and chunk col_half(i) of the block; two orders are used:
///   kRowMajorOrder (A operands, and V under .trans): row_half = i % 2, col_half = i / 2
///   otherwise (B operands such as K):                 row_half = i / 2, col_half = i % 2
/// The address of block (row0, kc) (row0 % 8 == 0, kc = 16-column index) is then
///   base + row0 * kRowBytes + ((32 * kc) ^ xor_bits)
/// because chunk (2*kc + col_half) ^ (row % 8) == 2*kc ^ (col_half ^ (lane % 8)) when row0 % 8 == 0:
/// the block-dependent part is a compile-time constant in unrolled loops.
struct LdsmLane {
  uint32_t base;      // lane's row offset, bytes
  uint32_t xor_bits;  // 16 * (col_half ^ (lane % 8))
};

template <int kRowBytes, bool kRowMajorOrder>
__device__ __forceinline__ LdsmLane ldsm_lane(int lane) {
  const int i = lane >> 3;
  const int row_half = kRowMajorOrder ? (i & 1) : (i >> 1);
  const int col_half = kRowMajorOrder ? (i >> 1) : (i & 1);
  LdsmLane l;
  l.base = static_cast<uint32_t>(((lane & 7) + 8 * row_half) * kRowBytes);
  l.xor_bits = static_cast<uint32_t>((col_half ^ (lane & 7)) << 4);
  return l;
}

}  // namespace sk::cuda
