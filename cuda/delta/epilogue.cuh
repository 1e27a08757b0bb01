// Steps 5-7 of the step kernel: split-K partial sums, the per-tile finish by the last CTA of the tile
// (y_acc update, activation, cast) and the per-step finish by the last CTA of the grid (counts, steps,
// initialised, parity flip, stats). "Last CTA" is the threadfence-reduction pattern: publish, fence,
// count arrivals with an atomic; whoever arrives last sees every other CTA's writes. The counters live in
// DeltaState::sync and are reset by the CTA that consumed them, so each step starts from zeros without a
// memset launch.
#pragma once
#include <cstdint>

#include "cuda/common/pred_load.cuh"
#include "cuda/delta/derive.cuh"

namespace sk::cuda::delta {

// True in every thread of the CTA iff this CTA is the `expected`-th arrival on `counter`. Writes made by
// the CTA before the call are visible to the last arriver (and to its loads after the call).
// One thread fences, after a barrier (as cooperative groups' grid sync does): the barrier orders the
// CTA's writes before thread 0's fence, which is cumulative, so 256 separate fences are not needed.
template <class Tr>
__device__ bool arrive_last(CtaShared<Tr>& sh, int32_t* counter, int expected) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();  // release: the CTA's writes before the arrival
    const bool last = atomicAdd(counter, 1) == expected - 1;
    if (last) __threadfence();  // acquire: the loads after the barrier below see every arrival's writes
    sh.flag = last;
  }
  __syncthreads();
  return sh.flag != 0;
}

template <class Tr>
__device__ __forceinline__ int64_t partial_index(const KernelArgs& a, int kc, int j, int m) {
  return ((static_cast<int64_t>(blockIdx.z) * a.k_splits + kc) * Tr::kStreams + j) * a.p.w.M + m;
}

// Step 5: this CTA's chunk sum for its rows x columns.
template <class Tr>
__device__ void store_partials(const KernelArgs& a, const CtaShared<Tr>& sh, const SmemPtrs<Tr>& sm, int m0) {
  const float* red = reinterpret_cast<const float*>(sm.stages);
  const int M = a.p.w.M;
  for (int j = 0; j < Tr::kStreams; ++j) {
    if (sh.slot_stream[j] == -2) break;  // slots past the step's rows are at the end
    for (int c = threadIdx.x; c < Tr::kTileM; c += Tr::kThreads) {
      if (m0 + c < M) a.partials[partial_index<Tr>(a, blockIdx.x, j, m0 + c)] = red[j * Tr::kTileM + c];
    }
  }
}

// Step 6 (last CTA of the tile): y_acc = base + sum of the chunk partials in chunk order, y = act(y_acc).
// base is the bias on a (re)initialising step, else the old y_acc. Rows with an out-of-range stream id get
// NaN outputs (the host could not validate device ids). The partials are L2 reads: they are issued in
// batches of 16 independent loads per thread (one round trip per batch) and summed in chunk order.
template <class Tr>
__device__ void finalize_tile(const KernelArgs& a, const CtaShared<Tr>& sh, int m0) {
  constexpr int kBatch = Tr::kStreams >= 16 ? 1 : 16 / Tr::kStreams;
  const DeltaStepParams& p = a.p;
  const int M = p.w.M;
  const int m = m0 + threadIdx.x;  // kTileM == kThreads: one column per thread
  static_assert(Tr::kTileM == Tr::kThreads, "one output column per thread");
  if (m >= M) return;
  // All loads predicated (cuda/common/pred_load.cuh) and issued before any use: the bases (old y_acc, or
  // the bias when initialising) with the first batch of partials, one round trip per batch.
  const float bias = ld_pred(p.w.bias + m, p.w.bias != nullptr, 0.f);
  float base[Tr::kStreams];
#pragma unroll
  for (int j = 0; j < Tr::kStreams; ++j) {
    const int32_t s = sh.slot_stream[j];
    base[j] = ld_pred(p.state.y_acc + static_cast<int64_t>(s) * M + m, s >= 0 && !sh.slot_init[j], 0.f);
  }
  float sum[Tr::kStreams];
#pragma unroll
  for (int j = 0; j < Tr::kStreams; ++j) sum[j] = 0.f;
  for (int kc0 = 0; kc0 < a.k_splits; kc0 += kBatch) {
    float v[kBatch][Tr::kStreams];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
#pragma unroll
      for (int j = 0; j < Tr::kStreams; ++j) {
        const bool live = kc0 + b < a.k_splits && sh.slot_stream[j] != -2;
        v[b][j] = ld_pred_cg(a.partials + partial_index<Tr>(a, kc0 + b, j, m), live, 0.f);
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
#pragma unroll
      for (int j = 0; j < Tr::kStreams; ++j) sum[j] += v[b][j];
    }
  }
#pragma unroll
  for (int j = 0; j < Tr::kStreams; ++j) {
    const int32_t s = sh.slot_stream[j];
    if (s == -2) break;
    const int64_t row = static_cast<int64_t>(blockIdx.z) * Tr::kStreams + j;
    if (s < 0) {
      store_elem(p.y, p.x_dtype, row * M + m, __int_as_float(0x7fc00000));
      continue;
    }
    const float v = (sh.slot_init[j] ? bias : base[j]) + sum[j];
    p.state.y_acc[static_cast<int64_t>(s) * M + m] = v;
    store_elem(p.y, p.x_dtype, row * M + m, activate(v, p.activation));
  }
}

// Step 7 (last tile finisher of the grid): per stepped row, n_active and the stream's metadata. Only the
// CTAs that finished a tile count here: a tile finishes after all its chunks arrived, so when every tile
// has finished, every CTA has read the metadata (load_slots) and added its fired counts.
__device__ inline void finalize_streams(const KernelArgs& a, const SyncView& sync) {
  const DeltaStepParams& p = a.p;
  const DeltaState& st = p.state;
  for (int row = threadIdx.x; row < p.num_rows; row += blockDim.x) {
    const int32_t s = p.stream_ids != nullptr ? p.stream_ids[row] : row;
    const int32_t fired = atomicExch(&sync.fired_counts[row], 0);
    if (s < 0 || s >= st.num_streams) {
      p.n_active[row] = -1;
      continue;
    }
    const bool init = st.initialized[s] == 0 || (p.w.refresh_every > 0 && st.steps[s] >= p.w.refresh_every);
    p.n_active[row] = fired;
    st.steps[s] = init ? 0 : st.steps[s] + 1;
    st.initialized[s] = 1;
    st.parity[s] = (st.parity[s] & 1) ^ 1;
    if (st.stats != nullptr) {
      st.stats[2 * static_cast<int64_t>(s)] += fired;
      st.stats[2 * static_cast<int64_t>(s) + 1] += 1;
    }
  }
}

}  // namespace sk::cuda::delta
