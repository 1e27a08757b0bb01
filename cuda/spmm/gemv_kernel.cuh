// N == 1 (GEMV) kernels without tensor cores: y[m] = act(W[m, :] . x + b[m]). Memory-bound on W, so
// the goal is wide coalesced loads with several in flight: one warp per weight row, lanes over the row's
// (block, 16-byte chunk) pairs, so each warp load instruction covers whole row segments.
// Lane partial sums are combined by a fixed shuffle tree: deterministic.
//
// kVec = elements per load: 16 bytes (8 for 16-bit types, 4 for float) when W, x and K allow it (the
// launcher checks alignment and K % kVec == 0), else 1.
#pragma once
#include <cstdint>

#include "cuda/common/convert.cuh"
#include "cuda/spmm/epilogue.cuh"
#include "cuda/spmm/tile_io.cuh"

namespace sk::cuda::spmm_kernels {

constexpr int kGemvThreads = 128;

// sum of w[i] * x[i] for i < kVec, in a fixed order.
template <typename T, int kVec>
__device__ __forceinline__ float chunk_dot(const T* w, const T* x, float acc) {
  if constexpr (kVec == 1) {
    return fmaf(to_f32(*w), to_f32(*x), acc);
  } else if constexpr (sizeof(T) == 4) {
    static_assert(kVec == 4, "float chunks are float4");
    const float4 a = __ldg(reinterpret_cast<const float4*>(w)), b = __ldg(reinterpret_cast<const float4*>(x));
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
    acc = fmaf(a.z, b.z, acc);
    return fmaf(a.w, b.w, acc);
  } else {
    static_assert(kVec == 8, "16-bit chunks are 8 elements");
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(w)), b = __ldg(reinterpret_cast<const uint4*>(x));
    const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 fa = Half16<T>::unpack(aw[i]), fb = Half16<T>::unpack(bw[i]);
      acc = fmaf(fa.x, fb.x, acc);
      acc = fmaf(fa.y, fb.y, acc);
    }
    return acc;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr int kGemvUnroll = 4;  // (block, chunk) pairs in flight per lane before the first use

// Block-CSR GEMV: one warp per weight row (rows taken block row by block row in row_order), lanes over
// the row's (block, 16-byte chunk) pairs. kGemvUnroll pairs per lane are loaded before they are used: the
// weight loads do not depend on col_idx, the x loads do (one L2 round trip), so a warp waits about two
// latencies per row instead of two per pair (first version, 1 CTA per block row: 25 us on the 8192^2 90%
// case vs a 3.2 us byte floor).
template <typename T, int kVec>
__global__ void __launch_bounds__(kGemvThreads) bsr_gemv_kernel(const LinearParams<T, BsrSource<T>> p, int bm,
                                                                 int bk, int log2_cpr) {
  const int lane = threadIdx.x & 31;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * (kGemvThreads / 32) + (threadIdx.x >> 5);
  const int slot = static_cast<int>(gw / bm), i = static_cast<int>(gw % bm);
  if (slot >= p.src.mb) return;
  const int r = p.src.tile_row(slot);
  const int m = r * bm + i;
  if (m >= p.m) return;  // padded rows of the last block row
  int j_begin, j_end;
  p.src.range(r, &j_begin, &j_end);
  const int cpr_mask = (1 << log2_cpr) - 1;
  const int total = (j_end - j_begin) << log2_cpr;  // (block, chunk) pairs of this row
  float acc = 0.f;
  for (int e0 = 0; e0 < total; e0 += 32 * kGemvUnroll) {
    const T* wp[kGemvUnroll];
    const T* xp[kGemvUnroll];
    bool ok[kGemvUnroll];
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int e = e0 + u * 32 + lane;
      ok[u] = e < total;
      const int j = j_begin + (ok[u] ? (e >> log2_cpr) : 0);
      const int kk = (e & cpr_mask) * kVec;
      const int k = (ok[u] ? p.src.col(j) : 0) * bk + kk;
      ok[u] = ok[u] && k < p.k;  // padded columns (kVec > 1: K % kVec == 0, chunks never straddle K)
      wp[u] = p.src.values + (static_cast<int64_t>(j) * bm + i) * bk + kk;
      xp[u] = p.x + k;
    }
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u)
      if (ok[u]) acc = chunk_dot<T, kVec>(wp[u], xp[u], acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) p.y[m] = from_f32<T>(activate(acc + load_bias(p.bias, m, p.m), p.activation));
}

// Dense GEMV: one warp per output row, kGemvUnroll chunks per lane in flight.
template <typename T, int kVec>
__global__ void __launch_bounds__(kGemvThreads) dense_gemv_kernel(const LinearParams<T, DenseSource<T>> p) {
  const int lane = threadIdx.x & 31;
  const int m = blockIdx.x * (kGemvThreads / 32) + (threadIdx.x >> 5);
  if (m >= p.m) return;
  const T* w = p.src.w + static_cast<int64_t>(m) * p.src.ldw;
  float acc = 0.f;
  for (int k0 = 0; k0 < p.k; k0 += 32 * kVec * kGemvUnroll) {
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int k = k0 + (u * 32 + lane) * kVec;
      if (k < p.k) acc = chunk_dot<T, kVec>(w + k, p.x + k, acc);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) p.y[m] = from_f32<T>(activate(acc + load_bias(p.bias, m, p.m), p.activation));
}

}  // namespace sk::cuda::spmm_kernels
