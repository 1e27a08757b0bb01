// Stage 3 on CUDA: block pooling (spec 6.3 step 5). One CTA per (block i, head, batch); heads [0, Hq)
// pool q rows in natural order into qbar, heads [Hq, Hq + Hp) pool the permuted key slots of block i
// (rows perm[b, hp, t] of KV head kv(hp)) into kbar. Valid rows only: the mean divides by the real row
// count. Each thread owns one 16-byte column chunk (8 elements) of a row lane; the row lanes of the CTA
// walk the block's rows and meet in shared memory.
#pragma once
#include <cstdint>

#include "cuda/common/convert.cuh"

namespace sk::cuda::pbs {

struct PoolArgs {
  const void* q;
  const void* k;
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  const int32_t* perm;  // [B, Hp, N]
  float* qbar;          // [B, Hq, T, D]
  float* kbar;          // [B, Hp, T, D]
  int heads_q, perm_heads, perm_per_kv_head, N, T, block, D;
  bool max_pool;
};

template <typename Elem, int kThreads>
__global__ void __launch_bounds__(kThreads) pool_kernel(const PoolArgs a) {
  using H = Half16<Elem>;
  extern __shared__ __align__(16) unsigned char smem[];
  float* part = reinterpret_cast<float*>(smem);  // [row lanes][D]
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const bool is_q = h < a.heads_q;
  const int vecs = a.D / 8, lanes = kThreads / vecs;  // D = 64: 16 row lanes, D = 128: 8
  const int c = threadIdx.x % vecs, lane_row = threadIdx.x / vecs;
  const int rows = min(a.block, a.N - i * a.block);
  // Step 1: where row t of this block lives.
  const Elem* base;
  int64_t row_stride;
  const int32_t* perm = nullptr;
  if (is_q) {
    base = static_cast<const Elem*>(a.q) + b * a.q_batch_stride + h * a.q_head_stride;
    row_stride = a.q_row_stride;
  } else {
    const int hp = h - a.heads_q;
    base = static_cast<const Elem*>(a.k) + b * a.k_batch_stride + (hp / a.perm_per_kv_head) * a.k_head_stride;
    row_stride = a.k_row_stride;
    perm = a.perm + (static_cast<int64_t>(b) * a.perm_heads + hp) * a.N;
  }
  // Step 2: this lane's partial sum / max over rows lane_row, lane_row + lanes, ...
  float acc[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) acc[e] = a.max_pool ? -INFINITY : 0.f;
  if (lane_row < lanes) {
    for (int t = lane_row; t < rows; t += lanes) {
      int src = i * a.block + t;
      if (perm != nullptr) src = min(max(perm[src], 0), a.N - 1);  // memory safety for caller perms
      const uint4 v = *reinterpret_cast<const uint4*>(base + src * row_stride + c * 8);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = H::unpack(w[e]);
        acc[2 * e] = a.max_pool ? fmaxf(acc[2 * e], f.x) : acc[2 * e] + f.x;
        acc[2 * e + 1] = a.max_pool ? fmaxf(acc[2 * e + 1], f.y) : acc[2 * e + 1] + f.y;
      }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) part[lane_row * a.D + c * 8 + e] = acc[e];
  }
  __syncthreads();
  // Step 3: combine the row lanes (fixed order) and store.
  float* out = is_q ? a.qbar + ((static_cast<int64_t>(b) * a.heads_q + h) * a.T + i) * a.D
                    : a.kbar + ((static_cast<int64_t>(b) * a.perm_heads + (h - a.heads_q)) * a.T + i) * a.D;
  for (int x = threadIdx.x; x < a.D; x += kThreads) {
    float v = part[x];
    for (int l = 1; l < lanes; ++l) v = a.max_pool ? fmaxf(v, part[l * a.D + x]) : v + part[l * a.D + x];
    out[x] = a.max_pool ? v : v * (1.0f / static_cast<float>(rows));  // as the CPU stage: times 1/count
  }
}

}  // namespace sk::cuda::pbs
