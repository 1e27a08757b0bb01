// Stage 1 on CUDA: key-importance proxy with tensor cores (spec 6.3 step 2), ~4 GFLOP per head at 128K.
//
//   prep     Qp[r] = mean of the R last query rows of the heads sharing hp (fp32), written as n_split
//            16-bit parts hi + mid + lo with sum == Qp to ~24 bits, so the mma operands lose nothing:
//            n_split = 1 when one head maps to hp (q itself is exact), 2 for fp16 (22 bits), 3 for bf16.
//            Stored in mma A-fragment order: each lane loads its fragments with 16-byte loads straight
//            into registers (no shared-memory A tile: 48 KB less smem, so more CTAs per SM).
//   pass 1   per (head, key chunk) CTA: logits = scale * sum_s Qp_s K^T (mma.sync, fp32 accumulate),
//            running (max, sum of exp) per row -> part[bh, r, chunk]
//   combine  per row (M, 1/L) over the chunks
//   pass 2   recompute the logits, p = exp(x - M) / L, column sums over all R rows -> s = sum / R
// The [R, P] logits never exist; each CTA owns its key chunk in both passes, so the column sums are
// written once, with no atomics, and do not depend on scheduling.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/common/convert.cuh"
#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/mma.cuh"
#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/tile.cuh"

namespace sk::cuda::pbs {

template <int kHeadDim_>
struct ProxyTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kNWarps = 4;
  static constexpr int kThreads = 32 * kNWarps;
  static constexpr int kRows = 16 * kNWarps;  // proxy rows per row tile: one m16 tile per warp
  static constexpr int kKeys = 64;            // keys per smem stage: 8 n-tiles of 8 per warp
  static constexpr int kKSteps = kHeadDim / 16;
  static constexpr int kMaxSplits = 3;
  static constexpr int kMaxChunkKeys = 2048;  // keys per CTA at most (the column sums live in smem)
  using Rows = SwizzledRows<kHeadDim>;        // consecutive rows: swizzle shift 0
  // Shared memory (bytes): K stages [2][kKeys][D], warp column partials [kNWarps][kKeys] and the chunk's
  // column sums. D = 128: 32 + 1 + 8 KB = 41 KB. A (the Qp parts) lives in registers: 3 x 32 at D = 128.
  static constexpr int kKBytes = 2 * kKeys * kHeadDim * 2;
  static constexpr int kRedBytes = kNWarps * kKeys * 4;
  static constexpr int kColBytes = kMaxChunkKeys * 4;
  static constexpr int kSmemBytes = kKBytes + kRedBytes + kColBytes;
  static_assert(kHeadDim % 16 == 0, "k16 steps");
};

struct ProxyArgs {
  const void* q;  // prep input
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  const void* k;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int perm_heads, q_per_perm_head, perm_per_kv_head;
  int R, R_pad, P, N, chunk_keys, nchunks, n_split;
  float scale;
  bool causal;
  void* qs;             // [BH, R_pad/64, n_split, 4 warps, D/16, 32 lanes] uint4 A fragments of the Qp parts
  float2* part;         // [BH, R, nchunks] (max, sum) of each row over each chunk (pass 1 out)
  float2* stats;        // [BH, R] (max, 1/sum) (combine out, pass 2 in)
  float* scores;        // [BH, P] (pass 2 out)
};

// ---- prep: Qp parts in A-fragment order -------------------------------------------------------------
// Fragment (row tile, part s, warp w, k-step ks, lane) = the lane's 4 A registers of mma.m16n8k16:
// rows w*16 + g and + 8, columns ks*16 + 2t + {0, 1} and + 8 (g = lane / 4, t = lane % 4; mma.cuh).
__host__ __device__ inline int64_t proxy_frag_index(int64_t bh, int rt, int s, int w, int ks, int lane, int row_tiles,
                                                    int n_split, int ksteps) {
  return ((((bh * row_tiles + rt) * n_split + s) * 4 + w) * ksteps + ks) * 32 + lane;
}

template <typename Elem, int kHeadDim>
__global__ void __launch_bounds__(256) proxy_prep_kernel(const ProxyArgs a) {
  using H = Half16<Elem>;
  constexpr int kKSteps = kHeadDim / 16;
  const int bh = blockIdx.x, b = bh / a.perm_heads, hp = bh % a.perm_heads;
  const int row_tiles = a.R_pad / 64;
  const Elem* q = static_cast<const Elem*>(a.q);
  uint4* qs = static_cast<uint4*>(a.qs);
  for (int x = threadIdx.x; x < row_tiles * 4 * kKSteps * 32; x += blockDim.x) {
    const int lane = x % 32, ks = (x / 32) % kKSteps, w = (x / 32 / kKSteps) % 4, rt = x / 32 / kKSteps / 4;
    const int g = lane >> 2, t = lane & 3;
    // The 8 values in register order: (row g, c, c+1), (row g+8, c, c+1), (row g, c+8, c+9), (row g+8, ...).
    float v[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = rt * 64 + w * 16 + g + (e & 1) * 8, c = ks * 16 + 2 * t + (e >> 1) * 8;
      float lo = 0.f, hi = 0.f;
      if (r < a.R) {
        for (int gg = 0; gg < a.q_per_perm_head; ++gg) {  // fp32 sum, same order as the CPU stage
          const int hq = hp * a.q_per_perm_head + gg;
          const uint32_t pair = *reinterpret_cast<const uint32_t*>(
              q + b * a.q_batch_stride + hq * a.q_head_stride + static_cast<int64_t>(a.N - a.R + r) * a.q_row_stride + c);
          const float2 f = H::unpack(pair);
          lo += f.x;
          hi += f.y;
        }
        const float inv = 1.0f / static_cast<float>(a.q_per_perm_head);
        lo *= inv;
        hi *= inv;
      }
      v[2 * e] = lo;
      v[2 * e + 1] = hi;
    }
    for (int s = 0; s < a.n_split; ++s) {  // peel one 16-bit part per pass: v keeps the remainder
      uint32_t reg[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p0 = H::to_float(H::from_float(v[2 * e])), p1 = H::to_float(H::from_float(v[2 * e + 1]));
        v[2 * e] -= p0;
        v[2 * e + 1] -= p1;
        reg[e] = H::pack(p0, p1);
      }
      qs[proxy_frag_index(bh, rt, s, w, ks, lane, row_tiles, a.n_split, kKSteps)] = make_uint4(reg[0], reg[1], reg[2], reg[3]);
    }
  }
}

// ---- one warp's 16 x 64 logits tile: sum over parts s of A_s (16 x D, registers) . K (64 x D)^T -----
template <typename Traits, typename Elem>
__device__ __forceinline__ void warp_logits_16x64(const uint32_t (&afrag)[Traits::kMaxSplits][Traits::kKSteps][4],
                                                  int n_split, const Elem* sKb, float (&acc)[8][4]) {
  using Rows = typename Traits::Rows;
  using Mma = typename Half16<Elem>::MmaKind;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < Traits::kKSteps; ++ks) {
    uint32_t bfrag[8][2];  // B = K^T: matrices (n-tile 2np, k lo), (2np, k hi), (2np+1, lo), (2np+1, hi)
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t r[4];
      ldmatrix_x4(r, Rows::addr(sKb, np * 16 + ((lane >> 4) << 3) + (lane & 7), 2 * ks + ((lane >> 3) & 1), 0));
      bfrag[2 * np][0] = r[0];
      bfrag[2 * np][1] = r[1];
      bfrag[2 * np + 1][0] = r[2];
      bfrag[2 * np + 1][1] = r[3];
    }
#pragma unroll
    for (int s = 0; s < Traits::kMaxSplits; ++s) {
      if (s >= n_split) break;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mma_16x8x16_acc(acc[nt], afrag[s][ks], bfrag[nt], Mma{});
    }
  }
}

// ---- pass 1 (row softmax partials) and pass 2 (column means) ----------------------------------------
// 3 CTAs (12 warps) per SM: caps registers at 168 (24-40 bytes of spill, ptxas -v); the A
// fragments alone take 96 at D = 128. Unbounded, ptxas took 193 registers = 2 CTAs per SM.
template <typename Traits, typename Elem, bool kPass2>
__global__ void __launch_bounds__(Traits::kThreads, 3) proxy_pass_kernel(const ProxyArgs a) {
  constexpr int D = Traits::kHeadDim, kRows = Traits::kRows, kKeys = Traits::kKeys;
  using Rows = typename Traits::Rows;
  extern __shared__ __align__(16) unsigned char smem[];
  Elem* sK = reinterpret_cast<Elem*>(smem);
  float* red = reinterpret_cast<float*>(smem + Traits::kKBytes);  // [kNWarps][kKeys]
  float* colsum = red + Traits::kNWarps * kKeys;                  // [chunk_keys]

  // Step 1: which head and key chunk.
  const int bh = blockIdx.x / a.nchunks, chunk = blockIdx.x % a.nchunks;
  const int b = bh / a.perm_heads, hp = bh % a.perm_heads;
  const int j0 = chunk * a.chunk_keys, ntiles = min(a.chunk_keys, a.P - j0) / kKeys;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  const Elem* kbase = static_cast<const Elem*>(a.k) + b * a.k_batch_stride + (hp / a.perm_per_kv_head) * a.k_head_stride;
  const uint4* qs = static_cast<const uint4*>(a.qs);
  if (kPass2)
    for (int c = threadIdx.x; c < ntiles * kKeys; c += Traits::kThreads) colsum[c] = 0.f;

  auto load_k_tile = [&](int t, int buf) {
    Rows::template load_async<Traits::kThreads>(
        sK + buf * kKeys * D, kKeys, 0, [&](int r) { return kbase + static_cast<int64_t>(j0 + t * kKeys + r) * a.k_row_stride; },
        [](int) { return true; });
  };

  for (int r0 = 0; r0 < a.R_pad; r0 += kRows) {
    // Step 2: this thread's two rows (g and g + 8 of its warp's m16 tile) and their state.
    const int row[2] = {r0 + warp * 16 + g, r0 + warp * 16 + g + 8};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // pass 1: running max, sum of exp
    float M[2] = {0.f, 0.f}, IL[2] = {0.f, 0.f};              // pass 2: final max, 1/sum (0: no row)
    if (kPass2) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (row[h] < a.R) {
          const float2 st = a.stats[static_cast<int64_t>(bh) * a.R + row[h]];
          M[h] = st.x;
          IL[h] = st.y;
        }
    }
    // Step 3: this warp's Qp fragments into registers; stage the first key tile.
    uint32_t afrag[Traits::kMaxSplits][Traits::kKSteps][4];
#pragma unroll
    for (int s = 0; s < Traits::kMaxSplits; ++s)
#pragma unroll
      for (int ks = 0; ks < Traits::kKSteps; ++ks) {
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (s < a.n_split)
          v = qs[proxy_frag_index(bh, r0 / kRows, s, warp, ks, lane, a.R_pad / kRows, a.n_split, Traits::kKSteps)];
        afrag[s][ks][0] = v.x;
        afrag[s][ks][1] = v.y;
        afrag[s][ks][2] = v.z;
        afrag[s][ks][3] = v.w;
      }
    __syncthreads();  // the previous row tile is done with sK
    load_k_tile(0, 0);
    cp_async_commit();

    for (int t = 0; t < ntiles; ++t) {
      // Step 4: prefetch the next key tile, wait for this one.
      if (t + 1 < ntiles) {
        load_k_tile(t + 1, (t + 1) & 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      // Step 5: logits of 16 rows x 64 keys per warp.
      float acc[8][4];
      warp_logits_16x64<Traits, Elem>(afrag, a.n_split, sK + (t & 1) * kKeys * D, acc);
      const int jt = j0 + t * kKeys;
      // Step 6: softmax bookkeeping. acc[nt][2h + e] = (row[h], key jt + nt*8 + 2*t4 + e).
      if (!kPass2) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          if (row[h] >= a.R) continue;
          const int last_key = a.N - a.R + row[h];  // proxy_causal: keys <= this query's position
          float v[16], tmax = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              float x = acc[nt][2 * h + e] * a.scale;
              if (a.causal && jt + nt * 8 + 2 * t4 + e > last_key) x = -INFINITY;
              v[nt * 2 + e] = x;
              tmax = fmaxf(tmax, x);
            }
          if (tmax == -INFINITY) continue;
          const float mn = fmaxf(m[h], tmax);
          float s = 0.f;
#pragma unroll
          for (int x = 0; x < 16; ++x) s += expf(v[x] - mn);
          l[h] = l[h] * expf(m[h] - mn) + s;
          m[h] = mn;
        }
      } else {
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = jt + nt * 8 + 2 * t4 + e;
            float colp = 0.f;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const bool masked = a.causal && j > a.N - a.R + row[h];
              if (IL[h] != 0.f && !masked) colp += expf(acc[nt][2 * h + e] * a.scale - M[h]) * IL[h];
            }
            colp += __shfl_xor_sync(kFullMask, colp, 4);  // reduce over the 8 row groups g
            colp += __shfl_xor_sync(kFullMask, colp, 8);
            colp += __shfl_xor_sync(kFullMask, colp, 16);
            if (g == 0) red[warp * kKeys + nt * 8 + 2 * t4 + e] = colp;
          }
      }
      __syncthreads();  // all warps done with this K stage (and red is complete)
      if (kPass2 && threadIdx.x < kKeys) {
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < Traits::kNWarps; ++w) s += red[w * kKeys + threadIdx.x];  // fixed order
        colsum[t * kKeys + threadIdx.x] += s;
      }
    }
    // Step 7 (pass 1): combine the 4 lanes that share a row, write the chunk partial.
    if (!kPass2) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
          const float m2 = __shfl_xor_sync(kFullMask, m[h], o), l2 = __shfl_xor_sync(kFullMask, l[h], o);
          const float mn = fmaxf(m[h], m2);
          l[h] = mn == -INFINITY ? 0.f : l[h] * expf(m[h] - mn) + l2 * expf(m2 - mn);
          m[h] = mn;
        }
        if (t4 == 0 && row[h] < a.R)
          a.part[(static_cast<int64_t>(bh) * a.R + row[h]) * a.nchunks + chunk] = make_float2(m[h], l[h]);
      }
    }
  }
  // Step 8 (pass 2): the chunk's scores.
  if (kPass2) {
    __syncthreads();
    const float inv_r = 1.0f / static_cast<float>(a.R);
    for (int c = threadIdx.x; c < ntiles * kKeys; c += Traits::kThreads)
      a.scores[static_cast<int64_t>(bh) * a.P + j0 + c] = colsum[c] * inv_r;
  }
}

// ---- combine: per row (M, 1/L) over the chunk partials ------------------------------------------------
__global__ void __launch_bounds__(128) proxy_combine_kernel(const ProxyArgs a) {
  const int bh = blockIdx.x;
  for (int r = threadIdx.x; r < a.R; r += blockDim.x) {
    const float2* part = a.part + (static_cast<int64_t>(bh) * a.R + r) * a.nchunks;
    float mx = -INFINITY;
    for (int c = 0; c < a.nchunks; ++c) mx = fmaxf(mx, part[c].x);
    float l = 0.f;
    if (mx != -INFINITY)
      for (int c = 0; c < a.nchunks; ++c)
        if (part[c].x != -INFINITY) l += part[c].y * expf(part[c].x - mx);
    a.stats[static_cast<int64_t>(bh) * a.R + r] = make_float2(mx, l > 0.f ? 1.0f / l : 0.f);
  }
}

}  // namespace sk::cuda::pbs
