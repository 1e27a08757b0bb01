// Tile shape of the fused DeltaLinear step kernel (delta_kernel.cuh). See NOTES.md for the design and the
// measurements behind these numbers.
//
// Grid: (k_splits, m_tiles, stream_groups). A CTA owns kTileM output columns of up to kStreams stepped
// rows, and one K chunk: it derives those rows' fired sets on its chunk from x and x_ref itself (x and
// x_ref are small and L2-resident, so every CTA of a chunk re-reading them is cheaper than a second
// launch), compacts the union into shared memory, then streams the union's Wt row segments once and
// applies each row to every stream slot (d = 0 where the slot did not fire).
//
// Thread layout inside the CTA (kThreads = 256, 8 warps): a warp covers the kTileM columns of one Wt row
// (lane = 8 consecutive columns = one 16-byte vector of 16-bit weights, two for fp32); warps split into
// kStreamGroups groups of kStreamsPerThread slots and, within a group, kRowLanes warps that take every
// kRowLanes-th row of a stage. Per row a thread does kStreamsPerThread x 8 FMAs from one 16-byte shared
// load of W and one (broadcast) load of the deltas.
#pragma once
#include <cstdint>

#include "ops/delta.h"

namespace sk::cuda::delta {

template <typename TW_, int kStreams_>
struct KernelTraits {
  using TW = TW_;                       // weight storage: float, __half or __nv_bfloat16
  static constexpr int kStreams = kStreams_;  // stream slots per CTA: 1, 4, 8 or 16
  static constexpr int kThreads = 256;
  static constexpr int kWarps = kThreads / 32;

  static constexpr int kTileM = kDeltaCudaTileM;  // output columns per CTA (32 lanes x 8)
  static constexpr int kColsPerLane = 8;
  static constexpr int kElemsPerVec = 16 / static_cast<int>(sizeof(TW));  // 8 (16-bit) or 4 (fp32)
  static constexpr int kVecsPerLane = kColsPerLane / kElemsPerVec;        // 1 or 2
  static constexpr int kVecsPerRow = kTileM / kElemsPerVec;               // 16-byte vectors per row
  static constexpr int kRowBytes = kTileM * static_cast<int>(sizeof(TW));

  // At most 4 slots per thread: 32 fp32 accumulators. More slots per thread would cut the shared-memory
  // re-reads of W, but 16 x 8 accumulators per thread leave no room for the pipeline's registers.
  static constexpr int kStreamsPerThread = kStreams < 4 ? kStreams : 4;
  static constexpr int kStreamGroups = kStreams / kStreamsPerThread;
  static constexpr int kRowLanes = kWarps / kStreamGroups;

  // cp.async pipeline over listed Wt rows: 16 KB per stage (32 rows of 16-bit, 16 rows of fp32), 4 stages:
  // up to 48 KB in flight per CTA, 2 CTAs per SM (HBM needs ~20-30 KB in flight per SM). 16 slots: the
  // step is FMA-bound, 2 stages leave shared memory for longer chunks (see kMaxChunk).
  static constexpr int kStageBytes = 16384;
  static constexpr int kRowsPerStage = kStageBytes / kRowBytes;
  static constexpr int kStages = kStreams >= 16 ? 2 : 4;

  // K chunk bounds. The chunk's deltas for every slot sit in shared memory (chunk x kStreams floats, at
  // most 64 KB) next to the compacted row list; small chunks make the derive phase a larger share of the
  // CTA's work and the split-K partial sums more numerous, and too many chunks overflow one wave of CTAs
  // (16 M tiles x 16 chunks of 688 = 256 CTAs at the anchor shape: 1024 rows is the cap that allows it).
  static constexpr int kMaxChunk = (kStreams >= 8 ? 1024 : 2048);
  static constexpr int kMinChunk = 128;
  static constexpr int kChunkAlign = 16;

  // Inputs per thread per derive round: all their x / x_ref loads (kDeriveUnroll x kStreams of each) are in
  // flight together, within a 16 + 16 register budget.
  static constexpr int kDeriveUnroll = kStreams >= 16 ? 1 : 16 / kStreams > 8 ? 8 : 16 / kStreams;

  static constexpr size_t smem_bytes(int chunk) {
    return static_cast<size_t>(kStages) * kStageBytes + static_cast<size_t>(chunk) * kStreams * sizeof(float) +
           static_cast<size_t>(chunk) * sizeof(int32_t);
  }

  static_assert(kStreams == 1 || kStreams == 4 || kStreams == 8 || kStreams == 16, "stream tiers");
  static_assert(kStreams <= kDeltaCudaMaxStreamsPerCta, "sync buffer sized for at most 16 slots per CTA");
  static_assert(kWarps % kStreamGroups == 0, "stream groups split the warps evenly");
  static_assert(kRowsPerStage % kRowLanes == 0, "rows of a stage split evenly over the row lanes");
  static_assert((kRowsPerStage * kVecsPerRow) % kThreads == 0, "stage copy: whole vectors per thread");
  static_assert(kVecsPerLane * 32 * kElemsPerVec == kTileM, "a warp covers the tile");
  static_assert(kStreams * kTileM * sizeof(float) <= kStages * kStageBytes, "row-lane reduction fits the stages");
  static_assert(kMaxChunk % kChunkAlign == 0 && kMinChunk <= kMaxChunk, "chunk bounds");
};

}  // namespace sk::cuda::delta
