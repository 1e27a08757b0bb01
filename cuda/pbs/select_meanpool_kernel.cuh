// Stage 4 on CUDA: the "meanpool" selector (spec 6.3 steps 5-6). One CTA per query-block row
// (i, hq, b): scores -> softmax -> threshold prefix -> emit in one kernel, no host round trip, and the
// [T, T] score matrix never exists (a row's T probabilities live in shared memory).
//   A_ij = scale * qbar_i . kbar_j for the candidates j < seg(i) * S/B (8 lanes per candidate)
//   p_ij = softmax over the candidates in fp32
// Grid order (i fastest) keeps the CTAs running together on one head, whose kbar (T x D fp32, 512 KB at
// 128K) then stays in L2.
#pragma once
#include <cstdint>

#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/select_emit.cuh"

namespace sk::cuda::pbs {

struct SelectArgs {
  // layout out
  int32_t* full_cnt;
  int32_t* full_idx;
  int32_t* mask_cnt;
  int32_t* mask_idx;
  int32_t* kept;  // [B, Hq] or nullptr (zeroed by the launcher)
  const int32_t* inv_perm;  // [B, Hp, N]
  int heads_q, perm_heads, q_per_perm_head, perm_per_kv_head;
  int N, T, block, blocks_per_segment, max_blocks, mask_max_blocks, D;
  float threshold, scale;
  bool force_sink;
  // meanpool
  const float* qbar;  // [B, Hq, T, D]
  const float* kbar;  // [B, Hp, T, D]
  // antidiagonal
  const void* q;
  const void* k;
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  const int32_t* perm;  // [B, Hp, N]
  int stride, log2_stride;
};

/// Row bookkeeping shared by both selectors.
__device__ __forceinline__ SelectRowInfo select_row_info(const SelectArgs& a, int i, int hq, int b) {
  SelectRowInfo r;
  r.i = i;
  r.ncand = (i / a.blocks_per_segment) * a.blocks_per_segment;
  r.blocks_per_segment = a.blocks_per_segment;
  r.num_blocks = a.T;
  r.pad_block = (a.N % a.block) != 0 ? a.T - 1 : -1;
  r.select_all = a.threshold >= 1.f;
  r.threshold = a.threshold;
  r.sink_block = -1;
  if (a.force_sink && r.ncand > 0) {
    const int hp = hq / a.q_per_perm_head;
    r.sink_block = a.inv_perm[(static_cast<int64_t>(b) * a.perm_heads + hp) * a.N] / a.block;
  }
  return r;
}

__device__ __forceinline__ SelectRowOut select_row_out(const SelectArgs& a, int i, int hq, int b) {
  const int64_t row = (static_cast<int64_t>(b) * a.heads_q + hq) * a.T + i;
  return SelectRowOut{a.full_idx + row * a.max_blocks, a.full_cnt + row, a.mask_idx + row * a.mask_max_blocks,
                      a.mask_cnt + row, a.kept == nullptr ? nullptr : a.kept + static_cast<int64_t>(b) * a.heads_q + hq};
}

/// Dynamic shared memory of the meanpool kernel: first a region that holds the qbar row (D floats, read
/// as float4: it must start 16-byte aligned) and later the selection bitmap (T/32 + 1 words), rounded
/// to 4 words; then the T probabilities.
__host__ __device__ inline int meanpool_head_words(int T, int D) {
  const int w = T / 32 + 1 > D ? T / 32 + 1 : D;
  return (w + 3) / 4 * 4;
}
inline int meanpool_smem_bytes(int T, int D) { return 4 * (meanpool_head_words(T, D) + T); }

// kPer = select_per_thread<kThreads>(T), chosen by the launcher. The row CTAs are short and latency
// bound (dependent L2 loads, block reductions), so occupancy matters: up to T = 1024 (kPer <= 4) 6 CTAs
// per SM are asked for (42 registers; without the bound ptxas took 59, i.e. 4 CTAs; 8 CTAs = 32
// registers spilled ~100 bytes).
template <int kThreads, int kPer>
__global__ void __launch_bounds__(kThreads, kPer <= 4 ? 6 : 4) select_meanpool_kernel(const SelectArgs a) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float s_red[kWarps];
  extern __shared__ __align__(16) unsigned char smem[];
  uint32_t* bitmap = reinterpret_cast<uint32_t*>(smem);                    // first the qbar row
  float* prob = reinterpret_cast<float*>(smem) + meanpool_head_words(a.T, a.D);  // [T]
  const int i = blockIdx.x, hq = blockIdx.y, b = blockIdx.z;
  const SelectRowInfo r = select_row_info(a, i, hq, b);
  if (r.ncand > 0 && !r.select_all) {  // threshold 1 keeps every candidate: no scores needed
    // Step 1: A_ij by groups of 8 lanes: 4 candidates per warp step, each group reading one kbar row
    // as 8-lane coalesced 128-byte float4 segments; qbar_i broadcast from smem.
    float* sq = reinterpret_cast<float*>(bitmap);
    const float* qrow = a.qbar + ((static_cast<int64_t>(b) * a.heads_q + hq) * a.T + i) * a.D;
    const float* kb = a.kbar + (static_cast<int64_t>(b) * a.perm_heads + hq / a.q_per_perm_head) * a.T * a.D;
    for (int x = threadIdx.x; x < a.D; x += kThreads) sq[x] = qrow[x];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = lane >> 3, sl = lane & 7;
    const float4* q4 = reinterpret_cast<const float4*>(sq);
    for (int j0 = warp * 4; j0 < r.ncand; j0 += kWarps * 4) {
      const int j = j0 + sub;
      float acc = 0.f;
      if (j < r.ncand) {
        const float4* k4 = reinterpret_cast<const float4*>(kb + static_cast<int64_t>(j) * a.D);
        for (int x = sl; x < a.D / 4; x += 8) {
          const float4 kv = __ldg(k4 + x), qv = q4[x];
          acc += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
        }
      }
      acc += __shfl_xor_sync(kFullMask, acc, 1);
      acc += __shfl_xor_sync(kFullMask, acc, 2);
      acc += __shfl_xor_sync(kFullMask, acc, 4);
      if (sl == 0 && j < r.ncand) prob[j] = acc * a.scale;
    }
    __syncthreads();
    // Step 2: softmax over the candidates (each thread rewrites only its own slots j).
    float m = -INFINITY;
    for (int j = threadIdx.x; j < r.ncand; j += kThreads) m = fmaxf(m, prob[j]);
    m = block_max<kThreads>(m, s_red);
    float s = 0.f;
    for (int j = threadIdx.x; j < r.ncand; j += kThreads) s += (prob[j] = expf(prob[j] - m));
    const float inv = 1.0f / block_sum<kThreads>(s, s_red);
    for (int j = threadIdx.x; j < r.ncand; j += kThreads) prob[j] *= inv;
    __syncthreads();
  }
  // Step 3: threshold prefix, sink, emit.
  select_and_emit<kThreads, kPer>(prob, bitmap, r, select_row_out(a, i, hq, b));
}

}  // namespace sk::cuda::pbs
