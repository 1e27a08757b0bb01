// Steps 3-4 of the step kernel: stream the listed Wt row segments [row, m0 : m0 + kTileM) through a
// cp.async pipeline and accumulate d[slot] * W into fp32 registers, then sum the row lanes in shared
// memory (fixed order: deterministic).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/delta/derive.cuh"

namespace sk::cuda::delta {

// 16 bytes of weights -> floats.
__device__ __forceinline__ void widen(const uint4& v, float (&out)[8], __half) {
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void widen(const uint4& v, float (&out)[8], __nv_bfloat16) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void widen(const uint4& v, float (&out)[4], float) {
  out[0] = __uint_as_float(v.x);
  out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z);
  out[3] = __uint_as_float(v.w);
}

// Tile column of a thread's c-th value (c < 8): lane-interleaved 16-byte vectors, so that a warp's shared
// loads of one row are contiguous (conflict-free) for both fp32 and 16-bit weights.
template <class Tr>
__device__ __forceinline__ int tile_col(int lane, int c) {
  return ((c / Tr::kElemsPerVec) * 32 + lane) * Tr::kElemsPerVec + c % Tr::kElemsPerVec;
}

template <class Tr>
struct RowSource {  // the rows of this CTA's pass: compacted union, or every chunk row (dense fallback)
  const int32_t* list;
  int n_rows;
  bool dense;
  __device__ int pos(int u) const { return dense ? u : list[u]; }
};

// Issue the copies of stage `stage` (rows stage*kRowsPerStage ...) into its ring buffer. Rows past the
// list and columns past M are zero-filled without reading global memory.
template <class Tr>
__device__ __forceinline__ void issue_stage(const KernelArgs& a, const SmemPtrs<Tr>& sm, const RowSource<Tr>& rs,
                                            int64_t k0, int m0, int stage) {
  const typename Tr::TW* wt = static_cast<const typename Tr::TW*>(a.p.w.wt);
  uint8_t* buf = sm.stages + (stage % Tr::kStages) * Tr::kStageBytes;
#pragma unroll
  for (int i = 0; i < Tr::kRowsPerStage * Tr::kVecsPerRow / Tr::kThreads; ++i) {
    const int v = i * Tr::kThreads + threadIdx.x;
    const int r = v / Tr::kVecsPerRow, cv = v % Tr::kVecsPerRow;
    const int u = stage * Tr::kRowsPerStage + r;
    const int col = m0 + cv * Tr::kElemsPerVec;
    const bool ok = u < rs.n_rows && col < a.p.w.M;  // wt_ld pads rows to whole vectors: col < M fits
    const typename Tr::TW* src = ok ? wt + (k0 + rs.pos(u)) * a.p.w.wt_ld + col : wt;
    cp_async_16(smem_u32(buf + r * Tr::kRowBytes + cv * 16), src, ok);
  }
}

// acc[j][c] += d[pos][slot j] * W[row, col c] over this warp's rows of stage `stage`.
template <class Tr>
__device__ __forceinline__ void compute_stage(const SmemPtrs<Tr>& sm, const RowSource<Tr>& rs, int stage,
                                              float (&acc)[Tr::kStreamsPerThread][8]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int group = warp / Tr::kRowLanes, row_lane = warp % Tr::kRowLanes;
  const uint8_t* buf = sm.stages + (stage % Tr::kStages) * Tr::kStageBytes;
#pragma unroll
  for (int i = 0; i < Tr::kRowsPerStage / Tr::kRowLanes; ++i) {
    const int r = row_lane + i * Tr::kRowLanes;
    const int u = stage * Tr::kRowsPerStage + r;
    if (u >= rs.n_rows) break;  // warp-uniform
    float w[8];
#pragma unroll
    for (int v = 0; v < Tr::kVecsPerLane; ++v) {
      const uint4 raw = *reinterpret_cast<const uint4*>(buf + r * Tr::kRowBytes + (v * 32 + lane) * 16);
      float part[Tr::kElemsPerVec];
      widen(raw, part, typename Tr::TW{});
#pragma unroll
      for (int e = 0; e < Tr::kElemsPerVec; ++e) w[v * Tr::kElemsPerVec + e] = part[e];
    }
    const float* dp = sm.d + static_cast<int64_t>(rs.pos(u)) * Tr::kStreams + group * Tr::kStreamsPerThread;
    float dv[Tr::kStreamsPerThread];
    if constexpr (Tr::kStreamsPerThread == 4) {
      const float4 q = *reinterpret_cast<const float4*>(dp);  // all lanes: one broadcast
      dv[0] = q.x, dv[1] = q.y, dv[2] = q.z, dv[3] = q.w;
    } else {
#pragma unroll
      for (int j = 0; j < Tr::kStreamsPerThread; ++j) dv[j] = dp[j];
    }
#pragma unroll
    for (int j = 0; j < Tr::kStreamsPerThread; ++j) {
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[j][c] = fmaf(dv[j], w[c], acc[j][c]);
    }
  }
}

// Step 3: the pipelined pass over all rows of `rs`. On return the stages are free (all copies landed).
template <class Tr>
__device__ void accumulate_rows(const KernelArgs& a, const SmemPtrs<Tr>& sm, const RowSource<Tr>& rs, int64_t k0,
                                int m0, float (&acc)[Tr::kStreamsPerThread][8]) {
  const int n_stages = (rs.n_rows + Tr::kRowsPerStage - 1) / Tr::kRowsPerStage;
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s) {
    if (s < n_stages) issue_stage<Tr>(a, sm, rs, k0, m0, s);
    cp_async_commit();  // empty groups keep the wait<> arithmetic uniform
  }
  for (int s = 0; s < n_stages; ++s) {
    cp_async_wait<Tr::kStages - 2>();  // stage s has landed (this thread's copies) ...
    __syncthreads();                   // ... everyone's, and stage s-1's buffer is no longer read
    if (s + Tr::kStages - 1 < n_stages) issue_stage<Tr>(a, sm, rs, k0, m0, s + Tr::kStages - 1);
    cp_async_commit();
    compute_stage<Tr>(sm, rs, s, acc);
  }
  cp_async_wait<0>();
  __syncthreads();
}

// Step 4: red[slot][col] = sum over row lanes, lane 0 first (fixed order). red aliases the stages.
template <class Tr>
__device__ void reduce_row_lanes(const SmemPtrs<Tr>& sm, const float (&acc)[Tr::kStreamsPerThread][8]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int group = warp / Tr::kRowLanes, row_lane = warp % Tr::kRowLanes;
  float* red = reinterpret_cast<float*>(sm.stages);
  for (int r = 0; r < Tr::kRowLanes; ++r) {
    if (row_lane == r) {
#pragma unroll
      for (int j = 0; j < Tr::kStreamsPerThread; ++j) {
        float* dst = red + (group * Tr::kStreamsPerThread + j) * Tr::kTileM;
#pragma unroll
        for (int c = 0; c < 8; c += 4) {  // 4 consecutive columns: one float4
          float4* q = reinterpret_cast<float4*>(dst + tile_col<Tr>(lane, c));
          float4 v = make_float4(acc[j][c], acc[j][c + 1], acc[j][c + 2], acc[j][c + 3]);
          if (r > 0) {
            const float4 o = *q;
            v.x += o.x, v.y += o.y, v.z += o.z, v.w += o.w;
          }
          *q = v;
        }
      }
    }
    __syncthreads();
  }
}

}  // namespace sk::cuda::delta
