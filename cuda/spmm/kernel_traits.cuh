// Tile traits of the tensor-core block-sparse / dense linear kernel (bsr_mma_kernel.cuh).
//
// One CTA computes an output tile Y[kBN tokens, kBM features]: tokens are the MMA "M" side (A = X, row-major,
// K contiguous) and features the MMA "N" side (B = W, row-major [M, K], i.e. the .col operand), so
// Y = X . W^T is the plain TN product and the C fragments map straight onto Y rows (no transpose).
// kBM x kBK is the weight block (or the dense tile); the K loop walks the block row's blocks, kBlocksPerStage
// of them per pipeline stage.
//
// Shared memory per stage: X tile [kBlocksPerStage][kBN][kBK] and W tile [kBlocksPerStage][kBM][kBK],
// 16-byte chunks XOR-swizzled inside each row group (swizzle_chunk) so that ldmatrix's 8 row addresses hit
// 8 different 16-byte bank groups for every kBK in {16, 32, 64}.
#pragma once
#include <cstdint>

namespace sk::cuda::spmm_kernels {

template <typename T_, int kBM_, int kBK_, int kBN_, int kWarpsM_, int kWarpsN_, int kStages_, int kBlocksPerStage_>
struct MmaTraits {
  using T = T_;
  static constexpr int kBM = kBM_;                          // weight rows (output features) per CTA
  static constexpr int kBK = kBK_;                          // K extent of one block / tile
  static constexpr int kBN = kBN_;                          // tokens per CTA
  static constexpr int kWarpsM = kWarpsM_;                  // warps along tokens
  static constexpr int kWarpsN = kWarpsN_;                  // warps along features
  static constexpr int kStages = kStages_;                  // cp.async pipeline depth
  static constexpr int kBlocksPerStage = kBlocksPerStage_;  // K blocks per pipeline stage
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;

  static constexpr int kWarpTokens = kBN / kWarpsM;  // warp tile rows (tokens)
  static constexpr int kWarpOut = kBM / kWarpsN;     // warp tile cols (features)
  static constexpr int kMT = kWarpTokens / 16;       // m16 tiles per warp
  static constexpr int kNT = kWarpOut / 8;           // n8 tiles per warp
  static constexpr int kKSteps = kBK / 16;           // k16 steps per block

  static constexpr int kChunksPerRow = kBK / 8;  // 16-byte chunks per tile row
  static constexpr int kXTileElems = kBN * kBK;
  static constexpr int kWTileElems = kBM * kBK;
  static constexpr int kStageElems = kBlocksPerStage * (kXTileElems + kWTileElems);
  static constexpr int kSmemBytes = kStages * kStageElems * static_cast<int>(sizeof(T));

  static_assert(sizeof(T) == 2, "tensor-core path: 16-bit operands");
  static_assert(kBK == 16 || kBK == 32 || kBK == 64, "kBK in {16, 32, 64}");
  static_assert(kBM % 16 == 0 && kBM <= 128, "kBM multiple of 16");
  static_assert(kWarpTokens % 16 == 0 && kWarpTokens * kWarpsM == kBN, "warp token tile: whole m16 tiles");
  static_assert(kWarpOut % 16 == 0 && kWarpOut * kWarpsN == kBM, "warp feature tile: pairs of n8 tiles (ldmatrix.x4)");
  static_assert(kStages >= 2, "at least double buffering");
  static_assert(kBlocksPerStage >= 1, "at least one block per stage");
};

// Physical 16-byte chunk of logical chunk `c` in tile row `row` (rows of kChunksPerRow chunks).
// Rows 0..7 read at one logical chunk land on 8 distinct (row * C + chunk) mod 8 bank groups:
// C = 8: chunk ^ row; C = 4: chunk ^ (row / 2); C = 2: chunk ^ (row / 4).
template <int kChunksPerRow>
__device__ __forceinline__ int swizzle_chunk(int row, int c) {
  static_assert(kChunksPerRow == 2 || kChunksPerRow == 4 || kChunksPerRow == 8, "16, 32 or 64 columns");
  return c ^ ((row / (8 / kChunksPerRow)) % kChunksPerRow);
}

// Element offset of (row, logical chunk c) inside a [rows][kChunksPerRow * 8] swizzled tile.
template <int kChunksPerRow>
__device__ __forceinline__ int tile_offset(int row, int c) {
  return (row * kChunksPerRow + swizzle_chunk<kChunksPerRow>(row, c)) * 8;
}

}  // namespace sk::cuda::spmm_kernels
