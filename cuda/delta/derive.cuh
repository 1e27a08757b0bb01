// Steps 1-2 of the step kernel: which state rows this CTA's stream slots step, then, for the CTA's K chunk,
// the delta, the threshold test, the per-slot fired counts, the compacted union of fired inputs, and
// (CTAs of M tile 0 only) the next reference buffer.
#pragma once
#include <cstdint>

#include "cuda/common/pred_load.cuh"
#include "cuda/delta/kernel_args.cuh"

namespace sk::cuda::delta {

// Per-CTA bookkeeping in static shared memory.
template <class Tr>
struct CtaShared {
  int32_t slot_stream[Tr::kStreams];  // state row of slot j; -1: id out of range (skipped); -2: no row
  uint8_t slot_init[Tr::kStreams];    // (re)initialising step
  uint8_t slot_parity[Tr::kStreams];  // current x_ref buffer
  int32_t slot_count[Tr::kStreams];   // fired inputs of slot j in this chunk
  int32_t warp_count[Tr::kDeriveUnroll][Tr::kWarps];
  int32_t warp_slot_count[Tr::kWarps][Tr::kStreams];
  int32_t n_union;                    // rows in the compacted list
  int32_t flag;                       // "this CTA arrived last" broadcast
};

// Dynamic shared memory: the Wt stages (reused by the row-lane reduction), the chunk's deltas and list.
template <class Tr>
struct SmemPtrs {
  uint8_t* stages;  // [kStages][kStageBytes]
  float* d;         // [chunk][kStreams] masked deltas by chunk position (0 where a slot did not fire)
  int32_t* list;    // [chunk] chunk positions fired by at least one slot, ascending
  __device__ static SmemPtrs carve(uint8_t* base, int chunk) {
    SmemPtrs s;
    s.stages = base;
    s.d = reinterpret_cast<float*>(base + static_cast<size_t>(Tr::kStages) * Tr::kStageBytes);
    s.list = reinterpret_cast<int32_t*>(s.d + static_cast<size_t>(chunk) * Tr::kStreams);
    return s;
  }
};

// Step 1. The metadata read here (initialized, steps, parity) is only written by the grid's last CTA
// (finalize_streams), after every CTA has arrived, so all CTAs see the same values.
template <class Tr>
__device__ void load_slots(const KernelArgs& a, CtaShared<Tr>& sh) {
  const DeltaStepParams& p = a.p;
  const int j = threadIdx.x;
  if (j < Tr::kStreams) {
    const int row = blockIdx.z * Tr::kStreams + j;
    const bool has_row = row < p.num_rows;
    int32_t s = ld_pred(p.stream_ids + row, has_row && p.stream_ids != nullptr, row);
    // Device ids are not validated on the host: an out-of-range one skips the row (NaN y, n_active -1).
    const bool ok = has_row && s >= 0 && s < p.state.num_streams;
    const uint32_t initialized = ld_pred(p.state.initialized + s, ok, 1u);  // three loads, one round trip
    const int32_t steps = ld_pred(p.state.steps + s, ok, 0);
    const uint32_t parity = ld_pred(p.state.parity + s, ok, 0u) & 1u;
    const bool init = ok && (initialized == 0 || (p.w.refresh_every > 0 && steps >= p.w.refresh_every));
    s = !has_row ? -2 : ok ? s : -1;
    sh.slot_stream[j] = s;
    sh.slot_init[j] = init;
    sh.slot_parity[j] = parity;
  }
  if (threadIdx.x == 0) sh.n_union = 0;
  __syncthreads();
}

// One input k for slot j: the masked delta, whether it fired, and the next reference value.
__device__ __forceinline__ bool fire_input(float xq, float xr, bool init, float th, float* d, float* next_ref) {
  if (init) {  // fires unconditionally against a zero reference; y_acc restarts at the bias
    *d = xq;
    *next_ref = xq;
    return true;
  }
  const float dd = __fsub_rn(xq, xr);
  const bool fire = isnan(xq) || (fabsf(dd) >= th && dd != 0.f);  // |NaN| >= th is false: test NaN itself
  *d = fire ? dd : 0.f;
  *next_ref = fire ? xq : xr;
  return fire;
}

// Step 2, over chunk positions u in [0, klen) (input k = k0 + u), kDeriveUnroll x 256 at a time:
// masked deltas to sm.d, fired counts to sh.slot_count, the union compacted to sm.list (ascending, so the
// accumulation order is fixed and results are deterministic), x_ref next buffer when write_ref.
// All x / x_ref loads of a round are issued before any is used: one memory round trip per round, and a
// 1-stream chunk of up to 2048 inputs is one round.
template <class Tr>
__device__ void derive_chunk(const KernelArgs& a, CtaShared<Tr>& sh, const SmemPtrs<Tr>& sm, int64_t k0, int klen,
                             bool write_ref) {
  constexpr int U = Tr::kDeriveUnroll;
  const DeltaStepParams& p = a.p;
  const int64_t K = p.w.K, S = p.state.num_streams;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  // Fired counts per slot, kept per warp in registers (warp-uniform) and summed once at the end rather
  // than with shared atomics from every warp on one address.
  int count[Tr::kStreams];
#pragma unroll
  for (int j = 0; j < Tr::kStreams; ++j) count[j] = 0;
  for (int base = 0; base < klen; base += U * Tr::kThreads) {
    // Loads first, all predicated (no branches, see cuda/common/pred_load.cuh): one round trip per round.
    // x is read as raw bits (fp32, or 16-bit then widened) so the dtype costs no branch either.
    const bool x32 = p.x_dtype == DType::kFloat32, xbf16 = p.x_dtype == DType::kBFloat16;
    const bool quant = p.w.mode == DeltaMode::kQuantized;
    float xq[U][Tr::kStreams], xr[U][Tr::kStreams], th[U];
#pragma unroll
    for (int i = 0; i < U; ++i) {
      const int u = base + i * Tr::kThreads + threadIdx.x;
      const bool in_chunk = u < klen;
      // Quantised mode: theta 0 (every level change fires); "d != 0" in fire_input keeps repeats silent.
      th[i] = ld_pred(p.w.threshold + k0 + u, in_chunk && !quant && p.w.threshold != nullptr,
                      quant ? 0.f : p.w.threshold_scalar);
#pragma unroll
      for (int j = 0; j < Tr::kStreams; ++j) {
        const int32_t s = sh.slot_stream[j];
        const bool live = in_chunk && s >= 0;
        const int64_t xi = (static_cast<int64_t>(blockIdx.z) * Tr::kStreams + j) * K + k0 + u;
        const float v32 = ld_pred(static_cast<const float*>(p.x) + xi, live && x32, 0.f);
        const uint16_t v16 = ld_pred(static_cast<const uint16_t*>(p.x) + xi, live && !x32, uint16_t{0});
        xq[i][j] = x32 ? v32 : xbf16 ? __uint_as_float(static_cast<uint32_t>(v16) << 16) : __half2float(__ushort_as_half(v16));
        const int64_t ri = (static_cast<int64_t>(sh.slot_parity[j]) * S + s) * K + k0 + u;
        xr[i][j] = ld_pred(p.state.x_ref + ri, live && !sh.slot_init[j], 0.f);
      }
    }
    uint32_t fired[U];
#pragma unroll
    for (int i = 0; i < U; ++i) {  // decisions, deltas, next references
      const int u = base + i * Tr::kThreads + threadIdx.x;
      fired[i] = 0;
      if (u >= klen) continue;
#pragma unroll
      for (int j = 0; j < Tr::kStreams; ++j) {
        const int32_t s = sh.slot_stream[j];
        float dv = 0.f;
        if (s >= 0) {
          float next_ref;
          const bool f = fire_input(quantize(xq[i][j], p.w), xr[i][j], sh.slot_init[j], th[i], &dv, &next_ref);
          if (write_ref) p.state.x_ref[(static_cast<int64_t>(sh.slot_parity[j] ^ 1) * S + s) * K + k0 + u] = next_ref;
          fired[i] |= static_cast<uint32_t>(f) << j;
        }
        sm.d[static_cast<int64_t>(u) * Tr::kStreams + j] = dv;
      }
    }
    // Counts and compaction: warp ballots, then a prefix over (round slice i, warp) in u order.
    uint32_t ballot[U];
#pragma unroll
    for (int i = 0; i < U; ++i) {
#pragma unroll
      for (int j = 0; j < Tr::kStreams; ++j) count[j] += __popc(__ballot_sync(0xffffffffu, (fired[i] >> j) & 1u));
      ballot[i] = __ballot_sync(0xffffffffu, fired[i] != 0);
      if (lane == 0) sh.warp_count[i][warp] = __popc(ballot[i]);
    }
    __syncthreads();
    int offset = sh.n_union;
#pragma unroll
    for (int i = 0; i < U; ++i) {
      int o = offset;
      for (int w = 0; w < warp; ++w) o += sh.warp_count[i][w];
      if (fired[i] != 0) sm.list[o + __popc(ballot[i] & ((1u << lane) - 1u))] = base + i * Tr::kThreads + threadIdx.x;
      for (int w = 0; w < Tr::kWarps; ++w) offset += sh.warp_count[i][w];
    }
    __syncthreads();
    if (threadIdx.x == 0) sh.n_union = offset;
    __syncthreads();
  }
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < Tr::kStreams; ++j) sh.warp_slot_count[warp][j] = count[j];
  }
  __syncthreads();
  if (threadIdx.x < Tr::kStreams) {
    int total = 0;
    for (int w = 0; w < Tr::kWarps; ++w) total += sh.warp_slot_count[w][threadIdx.x];
    sh.slot_count[threadIdx.x] = total;
  }
  __syncthreads();
}

}  // namespace sk::cuda::delta
