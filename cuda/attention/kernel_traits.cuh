// Tile shapes and shared-memory layout of the block-sparse attention forward kernel (mma.sync path).
//
// One CTA owns one layout query block (kBlockM == layout block_size rows) and walks its listed key
// blocks in kBlockN-key tiles. Warps split the query rows only (kWarpM rows each), so a row's softmax
// statistics never leave its warp. Figures behind the choices are in cuda/attention/NOTES.md.
#pragma once
#include <cstdint>

#include "cuda/common/swizzle.cuh"

namespace sk::cuda::attn {

template <typename Element_, int kHeadDim_, int kBlockM_, int kBlockN_, int kNWarps_, int kStages_,
          bool kQInRegs_, int kMinBlocksPerSm_>
struct FwdTraits {
  using Element = Element_;  // __half or __nv_bfloat16
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;  // query rows per CTA == layout block size
  static constexpr int kBlockN = kBlockN_;  // keys per pipeline tile
  static constexpr int kNWarps = kNWarps_;
  static constexpr int kThreads = kNWarps * 32;
  static constexpr int kStages = kStages_;        // K/V tiles in flight (cp.async ring)
  static constexpr bool kQInRegs = kQInRegs_;     // keep Q's A fragments in registers (16-row warps)
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;  // __launch_bounds__ occupancy hint

  static constexpr int kWarpM = kBlockM / kNWarps;  // query rows per warp
  static constexpr int kMTiles = kWarpM / 16;       // m16 tiles per warp
  static constexpr int kNTiles = kBlockN / 8;       // n8 tiles of S per warp
  static constexpr int kDTiles = kHeadDim / 8;      // n8 tiles of O per warp
  static constexpr int kDSteps = kHeadDim / 16;     // k16 steps of S = Q K^T
  static constexpr int kNSteps = kBlockN / 16;      // k16 steps of O += P V
  static constexpr int kSubTiles = kBlockM / kBlockN;  // pipeline tiles per layout key block

  // Shared memory: rows of kHeadDim 16-bit elements, 16-byte chunks XOR-swizzled by (row % 8) so that the
  // 8 row addresses of every ldmatrix (and every cp.async chunk of a warp) hit 8 distinct bank groups.
  static constexpr int kChunksPerRow = kHeadDim / 8;
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kQBytes = kBlockM * kRowBytes;  // Q tile; reused to stage O in the epilogue
  static constexpr int kKVTileBytes = kBlockN * kRowBytes;
  // Key-permutation ring: the source row (= key position) of every key slot of the tiles between the
  // one being computed and the one whose rows are being fetched (see attention_fwd_kernel.cuh).
  static constexpr int kPermSlots = 2 * kStages - 1;
  static constexpr int kPermBytes = kPermSlots * kBlockN * 4;
  static constexpr int kSmemQ = 0;
  static constexpr int kSmemK = kSmemQ + kQBytes;
  static constexpr int kSmemV = kSmemK + kStages * kKVTileBytes;
  static constexpr int kSmemPerm = kSmemV + kStages * kKVTileBytes;
  static constexpr int kSmemBytes = kSmemPerm + kPermBytes;

  // Byte offset of 16-byte chunk `chunk` of row `row` in a tile of kRows rows (whole rows, XOR-swizzled).
  template <int kRows>
  __device__ static uint32_t smem_offset(int row, int chunk) {
    return swizzled_offset<kRowBytes>(row, chunk);
  }

  static_assert(kHeadDim % 64 == 0, "swizzle needs >= 8 chunks of 16 bytes per row");
  static_assert(kBlockM % kNWarps == 0 && kWarpM % 16 == 0 && kMTiles >= 1 && kMTiles <= 2,
                "each warp owns 16 or 32 query rows");
  static_assert(kBlockN % 16 == 0 && kBlockM % kBlockN == 0, "key tiles divide the layout block");
  static_assert(kStages >= 2, "the loop refills the stage freed by the previous tile");
  static_assert(kBlockN <= kThreads, "one thread per key slot fetches the permutation");
  static_assert((kBlockM * kChunksPerRow) % kThreads == 0 && (kBlockN * kChunksPerRow) % kThreads == 0,
                "tile copies split evenly over the threads");
  static_assert(kThreads % kChunksPerRow == 0, "a thread copies the same chunk column in every row it owns");
  static_assert(!kQInRegs || kMTiles == 1, "Q fragments in registers only fit 16-row warps");
};

// Configurations used by the product (one per head dim and layout block size). Sweeps of alternatives
// live in bench/native/attention_check.cu; the measured reasons are in NOTES.md.
template <typename T, int kHeadDim, int kLayoutBlock>
struct DefaultFwdTraits;

// 128-row blocks, D <= 128: 8 warps x 16 rows, 128-key tiles, Q read from shared memory. Measured on the
// H200 (bf16, D=128, causal 32K, Hk=8): 302 TFLOP/s against 272 for 64-key tiles with Q in registers;
// 4 warps x 32 rows (FA2's shape) also reached 303 but spills 120 bytes (192 accumulator registers).
// On sm_90 the wgmma kernel (attention_fwd_kernel_sm90.cuh) is used instead for these two.
template <typename T>
struct DefaultFwdTraits<T, 64, 128> : FwdTraits<T, 64, 128, 128, 8, 2, false, 1> {};
template <typename T>
struct DefaultFwdTraits<T, 128, 128> : FwdTraits<T, 128, 128, 128, 8, 2, false, 1> {};
// D = 256: 8 warps x 16 rows, Q from shared memory (its fragments would take 64 registers), and 32-key
// tiles keep two stages in 129 KB (fits sm_80 and sm_90; sm_86/89 cap at 99 KB and are refused).
template <typename T>
struct DefaultFwdTraits<T, 256, 128> : FwdTraits<T, 256, 128, 32, 8, 2, false, 1> {};

// 64-row blocks: 4 warps x 16 rows, Q held in registers where it fits.
template <typename T>
struct DefaultFwdTraits<T, 64, 64> : FwdTraits<T, 64, 64, 64, 4, 2, true, 2> {};
template <typename T>
struct DefaultFwdTraits<T, 128, 64> : FwdTraits<T, 128, 64, 64, 4, 2, true, 2> {};
template <typename T>
struct DefaultFwdTraits<T, 256, 64> : FwdTraits<T, 256, 64, 32, 4, 2, false, 2> {};

}  // namespace sk::cuda::attn
