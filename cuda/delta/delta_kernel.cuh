// The fused DeltaLinear step: ONE launch does delta, threshold, compaction, the accumulation of only the
// fired Wt rows, the x_ref / y_acc / metadata update, activation, cast and n_active. Grid and thread
// layout: kernel_traits.cuh; the steps live in derive.cuh, accumulate.cuh, epilogue.cuh.
//
// Races and why they cannot happen:
//  - x_ref: every CTA reads the current buffer of its rows over its K chunk, while the CTAs of M tile 0
//    write the *other* buffer (ping-pong); the grid's last CTA flips parity after all arrivals.
//  - y_acc: only the last CTA of an (M tile, stream group) reads and writes that tile of y_acc.
//  - initialized / steps / parity / stats: read by all CTAs first, written only by the last tile finisher.
#pragma once
#include <cstdint>

#include "cuda/delta/accumulate.cuh"
#include "cuda/delta/epilogue.cuh"
#include "cuda/delta/kernel_traits.cuh"

namespace sk::cuda::delta {

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 2) delta_step_kernel(const KernelArgs a) {
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ CtaShared<Tr> sh;
  const SmemPtrs<Tr> sm = SmemPtrs<Tr>::carve(smem_raw, a.chunk);
  const DeltaStepParams& p = a.p;
  const SyncView sync = SyncView::of(p.state.sync, p.state.num_streams);
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * a.chunk;
  const int klen = static_cast<int>(max(int64_t{0}, min(int64_t{a.chunk}, p.w.K - k0)));
  const int m0 = blockIdx.y * Tr::kTileM;
  const bool owns_ref = blockIdx.y == 0;  // M tile 0 writes x_ref and the fired counts of the chunk

  // 1-2. Stream slots, then this chunk's deltas, fired sets and their compacted union.
  SK_DELTA_MARK(a, 0);
  load_slots<Tr>(a, sh);
  SK_DELTA_MARK(a, 1);
  derive_chunk<Tr>(a, sh, sm, k0, klen, owns_ref);
  SK_DELTA_MARK(a, 2);

  // 3. Dense masked pass over the whole chunk when the union is dense enough (also every (re)initialising
  //    step), else the gather over the union only.
  RowSource<Tr> rs;
  rs.list = sm.list;
  rs.dense = klen > 0 && static_cast<float>(sh.n_union) > p.w.dense_fallback_density * static_cast<float>(klen);
  rs.n_rows = p.w.M == 0 ? 0 : (rs.dense ? klen : sh.n_union);  // M = 0: state update only, Wt may be null
  float acc[Tr::kStreamsPerThread][8] = {};
  accumulate_rows<Tr>(a, sm, rs, k0, m0, acc);
  SK_DELTA_MARK(a, 3);

  // 4-5. Row lanes -> one sum per (slot, column); publish it as this chunk's partial.
  reduce_row_lanes<Tr>(sm, acc);
  SK_DELTA_MARK(a, 4);
  store_partials<Tr>(a, sh, sm, m0);
  SK_DELTA_MARK(a, 5);
  if (owns_ref && threadIdx.x < Tr::kStreams && sh.slot_stream[threadIdx.x] >= 0 && sh.slot_count[threadIdx.x] != 0) {
    atomicAdd(&sync.fired_counts[blockIdx.z * Tr::kStreams + threadIdx.x], sh.slot_count[threadIdx.x]);
  }

  // 6. The last chunk of this (M tile, stream group) to arrive sums the partials into y_acc and y.
  int32_t* tile_counter = sync.tile_arrivals + static_cast<int64_t>(blockIdx.z) * a.m_tiles + blockIdx.y;
  const bool tile_last = arrive_last<Tr>(sh, tile_counter, a.k_splits);
  SK_DELTA_MARK(a, 6);
  if (!tile_last) return;
  finalize_tile<Tr>(a, sh, m0);
  SK_DELTA_MARK(a, 7);
  if (threadIdx.x == 0) *tile_counter = 0;

  // 7. The last tile to finish updates counts and stream metadata.
  if (arrive_last<Tr>(sh, sync.grid_arrivals, gridDim.y * gridDim.z)) {
    SK_DELTA_MARK(a, 8);
    finalize_streams(a, sync);
    SK_DELTA_MARK(a, 9);
    if (threadIdx.x == 0) *sync.grid_arrivals = 0;
  }
}

}  // namespace sk::cuda::delta
