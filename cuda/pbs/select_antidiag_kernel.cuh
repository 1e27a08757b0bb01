// Stage 5 on CUDA: the "antidiagonal" selector (XAttention scoring on the permuted keys, PBS-Attn+;
// definition in src/cpu/pbs/select_antidiagonal.cc). One CTA (8 warps) per query-block row (i, hq, b).
//
// With stride X and Mr = B/X (<= 16) reshaped rows and columns per block, the logits of query block i
// against key block j form one 16 x 16 tile (rows and columns past Mr are padding):
//   L[m, c] = scale / X * sum_t q[iB + mX + X-1-t] . k[perm[jB + cX + t]]
// i.e. X gathered m16n8k16 products over D: A rows m*X + X-1-t of the query block, B rows c*X + t of
// the key block. The warps split the phases t (w, w+8, ...) and meet in shared memory.
// One pass over the candidate key blocks keeps, per reshaped row, the running softmax (max, sum) and
// each block's log-sum-exp lse[m][j]; block j's mass is then sum_m exp(lse[m][j] - LSE_m). When the
// 16 x T lse table does not fit in shared memory (T large on small-smem GPUs) the kernel falls back to
// two passes (statistics, then recomputed masses). The next key block's gather overlaps the combine.
// Cost: every (query block, candidate block) pair streams a gathered 32 KB key block (B = 128, D = 128),
// so this selector is L2-bandwidth bound and far heavier than meanpool (NOTES.md has the figures).
#pragma once
#include <cstdint>

#include "cuda/common/convert.cuh"
#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/mma.cuh"
#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/select_emit.cuh"
#include "cuda/pbs/select_meanpool_kernel.cuh"
#include "cuda/pbs/tile.cuh"

namespace sk::cuda::pbs {

struct AntidiagTraits {
  static constexpr int kNWarps = 8;
  static constexpr int kThreads = 32 * kNWarps;  // 256 = 16 rows x 16 columns in the combine step
  static constexpr int kTile = 16;               // reshaped rows / columns per block, padded
  /// Dynamic shared memory: Q block, K block, warp partial tiles, [lse table], probabilities, bitmap.
  static int smem_bytes(int block, int head_dim, int T, bool one_pass) {
    return 2 * block * head_dim * 2 + kNWarps * kTile * kTile * 4 + (one_pass ? kTile * T * 4 : 0) + T * 4 +
           (T / 32 + 1) * 4;
  }
};

// One warp's partial 16 x 16 logits over its phases t = warp, warp + 8, ... < X.
template <typename Elem, int kHeadDim>
__device__ __forceinline__ void warp_antidiag_logits(const Elem* sQ, const Elem* sK, int X, int shift, int Mr,
                                                     float (&acc)[2][4]) {
  using Rows = SwizzledRows<kHeadDim>;
  using Mma = typename Half16<Elem>::MmaKind;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int m_a = min(lane & 15, Mr - 1);                         // A row of this lane (padding rows repeat)
  const int c_b = min(((lane >> 4) << 3) + (lane & 7), Mr - 1);  // B column of this lane
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
  for (int t = warp; t < X; t += AntidiagTraits::kNWarps) {
    const int qrow = m_a * X + X - 1 - t, krow = c_b * X + t;
#pragma unroll
    for (int ks = 0; ks < kHeadDim / 16; ++ks) {
      uint32_t afrag[4], r[4];
      ldmatrix_x4(afrag, Rows::addr(sQ, qrow, 2 * ks + (lane >> 4), shift));
      ldmatrix_x4(r, Rows::addr(sK, krow, 2 * ks + ((lane >> 3) & 1), shift));
      const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
      mma_16x8x16_acc(acc[0], afrag, b0, Mma{});
      mma_16x8x16_acc(acc[1], afrag, b1, Mma{});
    }
  }
}

/// Sum / max over the 16 lanes holding one row (lane groups of 16 inside a warp).
__device__ __forceinline__ float row16_sum(float v) {
#pragma unroll
  for (int o = 1; o < 16; o <<= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float row16_max(float v) {
#pragma unroll
  for (int o = 1; o < 16; o <<= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

template <typename Elem, int kHeadDim>
__global__ void __launch_bounds__(AntidiagTraits::kThreads)
    select_antidiag_kernel(const SelectArgs a, bool one_pass) {
  constexpr int kThreads = AntidiagTraits::kThreads, kTile = AntidiagTraits::kTile;
  using Rows = SwizzledRows<kHeadDim>;
  __shared__ float s_red[AntidiagTraits::kNWarps];
  __shared__ float s_row_lse[kTile];
  extern __shared__ __align__(16) unsigned char smem[];
  Elem* sQ = reinterpret_cast<Elem*>(smem);                         // [B][D]
  Elem* sK = sQ + a.block * kHeadDim;                               // [B][D]
  float* red = reinterpret_cast<float*>(sK + a.block * kHeadDim);  // [8 warps][16][16]
  float* lse = red + AntidiagTraits::kNWarps * kTile * kTile;       // [16][T] (one_pass)
  float* prob = lse + (one_pass ? kTile * a.T : 0);                 // [T]
  uint32_t* bitmap = reinterpret_cast<uint32_t*>(prob + a.T);       // [T/32 + 1]
  const int i = blockIdx.x, hq = blockIdx.y, b = blockIdx.z;
  const SelectRowInfo r = select_row_info(a, i, hq, b);
  if (r.ncand > 0 && !r.select_all) {  // threshold 1 keeps every candidate: no scores needed
    const int X = a.stride, shift = a.log2_stride, Mr = a.block / X, B = a.block;
    const int hp = hq / a.q_per_perm_head;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    const float lscale = a.scale / static_cast<float>(X);
    // Step 1: the query block (rows past N zero-filled).
    const Elem* qbase = static_cast<const Elem*>(a.q) + b * a.q_batch_stride + hq * a.q_head_stride;
    Rows::template load_async<kThreads>(
        sQ, B, shift, [&](int t) { return qbase + static_cast<int64_t>(min(i * B + t, a.N - 1)) * a.q_row_stride; },
        [&](int t) { return i * B + t < a.N; });
    cp_async_commit();
    const Elem* kbase = static_cast<const Elem*>(a.k) + b * a.k_batch_stride + (hp / a.perm_per_kv_head) * a.k_head_stride;
    const int32_t* perm = a.perm + (static_cast<int64_t>(b) * a.perm_heads + hp) * a.N;
    auto load_k_block = [&](int j) {  // candidates lie in complete segments: no padding slots
      Rows::template load_async<kThreads>(
          sK, B, shift,
          [&](int s) { return kbase + static_cast<int64_t>(min(max(perm[j * B + s], 0), a.N - 1)) * a.k_row_stride; },
          [](int) { return true; });
      cp_async_commit();
    };
    // Combine-step ownership: row m (16 lanes per row), column c.
    const int m = threadIdx.x >> 4, c = threadIdx.x & 15;
    const bool row_ok = m < Mr && i * B + m * X < a.N;
    const bool ok = row_ok && c < Mr;
    const int valid_rows = min(Mr, (a.N - i * B + X - 1) / X);
    float M = -INFINITY, L = 0.f;  // the row's running softmax state, identical in its 16 lanes

    for (int pass = 0; pass < (one_pass ? 1 : 2); ++pass) {
      __syncthreads();  // everyone is done with sK from the previous pass
      load_k_block(0);
      for (int j = 0; j < r.ncand; ++j) {
        // Step 2: wait for key block j.
        cp_async_wait<0>();
        __syncthreads();
        // Step 3: warp partial logits over its phases -> red[warp].
        float acc[2][4];
        warp_antidiag_logits<Elem, kHeadDim>(sQ, sK, X, shift, Mr, acc);
        float* rw = red + warp * kTile * kTile;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            rw[g * kTile + nt * 8 + 2 * t4 + e] = acc[nt][e];
            rw[(g + 8) * kTile + nt * 8 + 2 * t4 + e] = acc[nt][2 + e];
          }
        __syncthreads();
        // Step 4: sK is free: gather the next key block while this one is combined.
        if (j + 1 < r.ncand) load_k_block(j + 1);
        // Step 5: this thread's logit, summed over the warps' phases in a fixed order.
        float v = 0.f;
#pragma unroll
        for (int w = 0; w < AntidiagTraits::kNWarps; ++w) v += red[w * kTile * kTile + m * kTile + c];
        v = ok ? v * lscale : -INFINITY;
        if (pass == 0) {  // Step 6a: block max / sum of the row, running softmax state, block lse
          const float bm = row16_max(v);
          const float s = row16_sum(bm == -INFINITY ? 0.f : expf(v - bm));
          if (bm != -INFINITY) {
            const float mn = fmaxf(M, bm);
            L = L * expf(M - mn) + s * expf(bm - mn);
            M = mn;
          }
          if (one_pass && c == 0 && row_ok) lse[m * a.T + j] = bm + logf(s);
        } else {  // Step 6b (two-pass fallback): block j's probability mass over all rows
          float p = ok ? expf(v - M) * L : 0.f;  // L holds 1/sum in pass 1
          p = block_sum<kThreads>(p, s_red);
          if (threadIdx.x == 0) prob[j] = p;
        }
      }
      if (pass == 0 && !one_pass) L = L > 0.f ? 1.0f / L : 0.f;
    }
    // Step 7: block masses from the lse table (one pass): sum over valid rows of exp(lse - LSE_row).
    if (one_pass) {
      if (c == 0 && row_ok) s_row_lse[m] = M + logf(L);
      __syncthreads();
      for (int j = threadIdx.x; j < r.ncand; j += kThreads) {
        float mass = 0.f;
        for (int mm = 0; mm < valid_rows; ++mm) mass += expf(lse[mm * a.T + j] - s_row_lse[mm]);
        prob[j] = mass;
      }
    }
    // Step 8: probabilities = mass per valid row.
    __syncthreads();
    const float inv_rows = 1.0f / static_cast<float>(valid_rows);
    for (int j = threadIdx.x; j < r.ncand; j += kThreads) prob[j] *= inv_rows;
    __syncthreads();
  }
  // Step 9: select and emit.
  const SelectRowOut out = select_row_out(a, i, hq, b);
  switch (select_per_thread<kThreads>(r.ncand)) {  // block-uniform; this kernel's registers go to the mma
    case 1: select_and_emit<kThreads, 1>(prob, bitmap, r, out); break;
    case 4: select_and_emit<kThreads, 4>(prob, bitmap, r, out); break;
    case 16: select_and_emit<kThreads, 16>(prob, bitmap, r, out); break;
    default: select_and_emit<kThreads, 32>(prob, bitmap, r, out); break;
  }
}

}  // namespace sk::cuda::pbs
