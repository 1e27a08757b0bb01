// Block-sparse FlashAttention forward for sm_90a: the same tile walk, masks and online softmax as the
// mma.sync kernel (attention_fwd_kernel.cuh), with both GEMMs on warpgroup MMA (wgmma). Include only from
// *_sm90a.cu translation units.
//
// CTA = 2 warpgroups x 64 query rows = one 128-row layout block; tiles of 128 keys.
//   S = Q K^T : wgmma m64n128k16, A = Q and B = K from shared memory (K-major, 128-byte swizzle)
//   O += P V  : wgmma m64n{D}k16, A = P from registers, B = V from shared memory (MN-major)
// K/V tiles arrive by cp.async from all 256 threads (so key-permutation gathers work row by row), two
// slots each. Two main loops (Sm90FwdTraits::kOverlap):
//  - overlapped (the default): S(t+1) and P(t) V(t) issued back to back, softmax of t+1 while P(t) V(t)
//    runs; K runs one tile ahead of V (group i: K(i+2), V(i+1), positions of tile i+3).
//  - sequential: per tile, wait -> proxy fence -> barrier -> fetch tile t+1 -> S(t) -> mask/softmax ->
//    P(t) V(t). Group i holds K(i+1), V(i+1) and the key positions of tile i+2.
// Tile u lives in slot u % 2, its key positions in slot u % 4. The single barrier per iteration follows the
// wgmma waits of the previous iteration, so the slots it frees are no longer read. cp.async writes through
// the generic proxy and wgmma reads through the async proxy: fence.proxy.async before every barrier that
// publishes a tile.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/attention/attention_fwd_api.cuh"
#include "cuda/attention/attention_fwd_kernel.cuh"  // store_output
#include "cuda/attention/block_info.cuh"
#include "cuda/attention/mask.cuh"
#include "cuda/attention/softmax.cuh"
#include "cuda/attention/tile_copy.cuh"
#include "cuda/attention/warp_gemm.cuh"  // pack_p
#include "cuda/common/check.cuh"
#include "cuda/common/convert.cuh"
#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/named_barrier.cuh"
#include "cuda/common/wgmma.cuh"

namespace sk::cuda::attn {

template <typename Element_, int kHeadDim_, bool kOverlap_ = true, bool kPingPong_ = false>
struct Sm90FwdTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  // kOverlap: softmax of tile t+1 overlaps P(t).V(t) inside each warpgroup (K one tile ahead of V). The
  // default: the variant the full correctness suite ran on (H200). The sequential loop (false) measured 3%
  // faster at 32K (360 vs 350 TFLOP/s dense causal) but has only passed one sweep case so far; it becomes
  // the default once the whole suite has run on it.
  static constexpr bool kOverlap = kOverlap_;
  // kPingPong (sequential loop only): warpgroup 1 issues its S GEMM only after warpgroup 0 has issued its
  // own, so one warpgroup's softmax runs while the other's GEMMs occupy the tensor cores. NOT YET RUN ON A
  // GPU (written after the last measurement; bench/native/attention_check's sweep times it): off by default.
  static constexpr bool kPingPong = kPingPong_;
  static constexpr int kBlockM = 128, kBlockN = 128;
  static constexpr int kNWarps = 8, kThreads = 256, kWarpM = 16, kMTiles = 1;  // per warp: 16 rows
  static constexpr int kNTiles = kBlockN / 8, kDTiles = kHeadDim / 8;
  static constexpr int kDSteps = kHeadDim / 16, kNSteps = kBlockN / 16;
  static constexpr int kSubTiles = 1;
  static constexpr int kChunksPerRow = kHeadDim / 8, kRowBytes = kHeadDim * 2;
  // Tiles are stored as kHeadDim/64 column blocks of [128 rows x 128 bytes] in the wgmma 128-byte-swizzle
  // layout (chunk c of row r at c ^ (r % 8)); each block is 16 KB, 1024-aligned.
  static constexpr int kHalfBytes = kBlockN * 128;
  static constexpr int kTileBytes = kBlockN * kRowBytes;
  static constexpr int kQBytes = kTileBytes;  // also the epilogue's O staging area
  static constexpr int kPermSlots = 4;
  static constexpr int kSmemQ = 0;
  static constexpr int kSmemK = kSmemQ + kTileBytes;
  static constexpr int kSmemV = kSmemK + 2 * kTileBytes;
  static constexpr int kSmemPerm = kSmemV + 2 * kTileBytes;
  static constexpr int kSmemBytes = kSmemPerm + kPermSlots * kBlockN * 4 + 1024;  // + alignment slack

  template <int kRows>
  __device__ static uint32_t smem_offset(int row, int chunk) {
    return static_cast<uint32_t>((chunk >> 3) * (kRows * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
  }
  static_assert(kHeadDim == 64 || kHeadDim == 128, "wgmma path: D = 64 or 128");
  static_assert(kBlockM == kBlockN, "Q and K/V tiles share one layout");
};

template <typename Tr>
struct Sm90Gemm {
  using Kind = typename Half16<typename Tr::Element>::MmaKind;

  // acc_s = Q(warpgroup rows) K(tile)^T. Stepping k16 along D inside a 128-byte swizzle row adds 32 bytes to
  // the descriptor address; the next 64 columns live in the next column block.
  __device__ static void qk(float (&acc_s)[1][Tr::kNTiles][4], uint64_t q_desc, uint64_t k_desc) {
    auto& d = reinterpret_cast<float(&)[Tr::kNTiles * 4]>(acc_s);
#pragma unroll
    for (int s = 0; s < Tr::kDSteps; ++s) {
      const uint32_t off = ((s / 4) * Tr::kHalfBytes + (s % 4) * 32) >> 4;
      wgmma_m64n128k16_ss(d, q_desc + off, k_desc + off, s > 0 ? 1 : 0, Kind{});
    }
  }

  // acc_o += P V(tile). V is MN-major: 16 keys = two 8-row groups of 1024 bytes per k16 step.
  __device__ static void pv(float (&acc_o)[1][Tr::kDTiles][4], const uint32_t (&p)[1][Tr::kNSteps][4],
                            uint64_t v_desc) {
    auto& d = reinterpret_cast<float(&)[Tr::kDTiles * 4]>(acc_o);
#pragma unroll
    for (int s = 0; s < Tr::kNSteps; ++s) {
      const uint32_t off = (s * 2048) >> 4;
      if constexpr (Tr::kHeadDim == 128) wgmma_m64n128k16_rs(d, p[0][s], v_desc + off, 1, Kind{});
      else wgmma_m64n64k16_rs(d, p[0][s], v_desc + off, 1, Kind{});
    }
  }
};

template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[1][N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) wgmma_fence_operand(r[0][i][e]);
}
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[1][N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) wgmma_fence_operand(r[0][i][e]);
}

template <typename Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1) attention_fwd_sm90_kernel(const __grid_constant__ FwdParams p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename Tr::Element;
  using Gemm = Sm90Gemm<Tr>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t pad = (1024u - (raw & 1023u)) & 1023u;  // swizzle atoms must be 1024-aligned
  unsigned char* smem = smem_raw + pad;
  const uint32_t s_base = raw + pad;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, wg = warp / 4;
  const int* s_perm = reinterpret_cast<const int*>(smem + Tr::kSmemPerm);

  // Step 1: work item and head pointers (as in the mma.sync kernel).
  const BlockInfo<Tr> info(p);
  const int n = info.n_tiles;
  const int q0 = info.m_block * Tr::kBlockM;
  const int hk = info.kv_head(p);
  const T* q_head = static_cast<const T*>(p.q) + info.b * p.q_batch_stride + info.h * p.q_head_stride;
  const T* k_head = static_cast<const T*>(p.k) + info.b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v_head = static_cast<const T*>(p.v) + info.b * p.v_batch_stride + hk * p.v_head_stride;
  const bool has_perm = info.perm_row != nullptr;

  auto perm_slot = [&](int u) -> const int* { return has_perm ? s_perm + (u % Tr::kPermSlots) * Tr::kBlockN : nullptr; };
  auto issue_perm = [&](int u) {
    if (!has_perm || u >= n) return;
    const TileInfo ti = info.tile(p, u);
    if (ti.n0 >= 0) {
      TileCopy<Tr>::load_perm(s_base + Tr::kSmemPerm + (u % Tr::kPermSlots) * (Tr::kBlockN * 4), info.perm_row,
                              ti.n0, p.seq_k, tid);
    }
  };
  // A skipped tile (bad block id) is still walked, zero-filled and fully masked: it keeps the pipeline
  // regular and contributes nothing.
  auto issue_k = [&](int u) {
    if (u >= n) return;
    TileCopy<Tr>::load_rows(s_base + Tr::kSmemK + (u % 2) * Tr::kTileBytes, k_head, p.k_row_stride,
                            info.tile(p, u).n0, p.seq_k, perm_slot(u), tid);
  };
  auto issue_v = [&](int u) {
    if (u < 0 || u >= n) return;
    TileCopy<Tr>::load_rows(s_base + Tr::kSmemV + (u % 2) * Tr::kTileBytes, v_head, p.v_row_stride,
                            info.tile(p, u).n0, p.seq_k, perm_slot(u), tid);
  };

  const uint64_t q_desc = make_sw128_desc(s_base + Tr::kSmemQ + wg * 64 * 128, 16, 1024);
  auto k_desc = [&](int u) { return make_sw128_desc(s_base + Tr::kSmemK + (u % 2) * Tr::kTileBytes, 16, 1024); };
  auto v_desc = [&](int u) {
    return make_sw128_desc(s_base + Tr::kSmemV + (u % 2) * Tr::kTileBytes, Tr::kHalfBytes, 1024);
  };

  float acc_o[1][Tr::kDTiles][4];
#pragma unroll
  for (int dt = 0; dt < Tr::kDTiles; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_o[0][dt][e] = 0.f;
  float acc_s[1][Tr::kNTiles][4];
  uint32_t p_cur[1][Tr::kNSteps][4];
  float corr[2];
  OnlineSoftmax<1> softmax;
  softmax.init();
  const int warp_row0 = q0 + warp * Tr::kWarpM;

  // Masks of tile u applied to acc_s (S of tile u).
  auto mask_tile = [&](int u) {
    const TileInfo ti = info.tile(p, u);
    if (ti.n0 < 0) {
#pragma unroll
      for (int nt = 0; nt < Tr::kNTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_s[0][nt][e] = -INFINITY;
    } else if (ti.masked) {
      apply_token_mask<Tr>(acc_s, warp_row0, ti.n0, p.seq_q, p.seq_k, p.causal != 0 && ti.mask_list, perm_slot(u),
                           lane);
    }
  };
  // Publishes the cp.async data this thread waited for to the async proxy and to the other threads.
  auto publish = [&]() {
    fence_proxy_async_shared();
    __syncthreads();
  };
  // With a permutation, gathers need their positions published before they are issued.
  auto drain_if_perm = [&]() {
    if (has_perm) {
      cp_async_wait<0>();
      __syncthreads();
    }
  };

  if constexpr (Tr::kOverlap) {
    // Step 2: prologue. Groups -3 (Q, positions of tile 0), -2 (K0, positions 1), -1 (K1, V0, positions 2).
    TileCopy<Tr>::load_q(s_base + Tr::kSmemQ, q_head, p.q_row_stride, q0, p.seq_q, tid);
    issue_perm(0);
    cp_async_commit();
    drain_if_perm();
    issue_k(0);
    issue_perm(1);
    cp_async_commit();
    drain_if_perm();
    issue_k(1);
    issue_v(0);
    issue_perm(2);
    cp_async_commit();

    // Step 3: S(0) and its probabilities, before the steady state.
    if (n > 0) {
      cp_async_wait<1>();  // groups -3 and -2: Q and K0
      publish();
      fence_regs(acc_s);
      wgmma_fence();
      Gemm::qk(acc_s, q_desc, k_desc(0));
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(acc_s);
      mask_tile(0);
      softmax.update_stats(acc_s, p.scale_log2, corr);  // O is still zero: no rescale
      pack_p<Tr>(p_cur, acc_s);
    }

    // Step 4: steady state, t = 0 .. n-2 (the last P.V is peeled off below so that every iteration issues
    // the same wgmma groups; conditional issue makes ptxas serialise the pipeline).
    for (int t = 0; t + 1 < n; ++t) {
      // 4a: K(t+1), V(t) and the positions of tile t+2 have landed and are visible to the async proxy.
      cp_async_wait<0>();
      publish();
      // 4b: refill: K(t+2) into K(t)'s slot, V(t+1) into V(t-1)'s, positions of t+3 into those of t-1.
      issue_k(t + 2);
      issue_v(t + 1);
      issue_perm(t + 3);
      cp_async_commit();
      // 4c: S(t+1) = Q K(t+1)^T and O += P(t) V(t), issued back to back.
      fence_regs(acc_o);
      fence_regs(p_cur);
      wgmma_fence();
      Gemm::qk(acc_s, q_desc, k_desc(t + 1));
      wgmma_commit();
      Gemm::pv(acc_o, p_cur, v_desc(t));
      wgmma_commit();
      // 4d: softmax statistics of tile t+1 while P(t) V(t) runs.
      wgmma_wait<1>();
      fence_regs(acc_s);
      mask_tile(t + 1);
      softmax.update_stats(acc_s, p.scale_log2, corr);
      // 4e: P(t) V(t) done: rescale O for tile t+1 and hand its probabilities to the next P.V.
      wgmma_wait<0>();
      fence_regs(acc_o);
      fence_regs(p_cur);
      softmax.rescale_o(acc_o, corr);
      pack_p<Tr>(p_cur, acc_s);
    }
    // Step 4': the last tile's P.V.
    if (n > 0) {
      cp_async_wait<0>();
      publish();
      fence_regs(acc_o);
      fence_regs(p_cur);
      wgmma_fence();
      Gemm::pv(acc_o, p_cur, v_desc(n - 1));
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(acc_o);
    }
  } else {
    // Sequential variant. Group i: K(i+1), V(i+1), positions of tile i+2; prologue groups -2 (Q, positions 0)
    // and -1 (K0, V0, positions 1).
    TileCopy<Tr>::load_q(s_base + Tr::kSmemQ, q_head, p.q_row_stride, q0, p.seq_q, tid);
    issue_perm(0);
    cp_async_commit();
    drain_if_perm();
    issue_k(0);
    issue_v(0);
    issue_perm(1);
    cp_async_commit();
    for (int t = 0; t < n; ++t) {
      cp_async_wait<0>();
      publish();
      auto issue_loads = [&]() {
        issue_k(t + 1);
        issue_v(t + 1);
        issue_perm(t + 2);
        cp_async_commit();
      };
      // Fetch tile t+1 (its slots were freed by the barrier), then S(t) = Q K(t)^T. With ping-pong,
      // warpgroup 0 issues S(t) first and fetches afterwards; warpgroup 1 fetches, then waits for it.
      if (!Tr::kPingPong || wg == 1) {
        issue_loads();
        if (Tr::kPingPong) named_barrier_sync(1, Tr::kThreads);
      }
      fence_regs(acc_s);
      wgmma_fence();
      Gemm::qk(acc_s, q_desc, k_desc(t));
      wgmma_commit();
      if (Tr::kPingPong && wg == 0) {
        named_barrier_arrive(1, Tr::kThreads);
        issue_loads();
      }
      wgmma_wait<0>();
      fence_regs(acc_s);
      mask_tile(t);
      softmax.update_stats(acc_s, p.scale_log2, corr);
      softmax.rescale_o(acc_o, corr);
      pack_p<Tr>(p_cur, acc_s);
      fence_regs(acc_o);
      fence_regs(p_cur);
      wgmma_fence();
      Gemm::pv(acc_o, p_cur, v_desc(t));
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(acc_o);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warpgroup is done reading Q before the epilogue stages O over it

  // Step 5: normalise, store O and LSE.
  float lse_r[2];
  softmax.finalize(acc_o, p.scale_log2, lse_r);
  store_output<Tr>(p, info, acc_o, lse_r, smem, tid);
#endif
}

template <typename Tr>
Status launch_attention_fwd_sm90(const FwdParams& p, int max_smem_optin, cudaStream_t stream) {
  constexpr int kSmem = Tr::kSmemBytes;
  if (kSmem > max_smem_optin) {
    return Status::Invalid("attention (CUDA sm90): needs " + std::to_string(kSmem) +
                           " bytes of shared memory per block; this GPU allows " + std::to_string(max_smem_optin));
  }
  if (p.q_blocks > 65535) return Status::Invalid("attention (CUDA): more than 65535 query blocks");
  auto* kernel = &attention_fwd_sm90_kernel<Tr>;
  SK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid(static_cast<unsigned>(p.batch) * static_cast<unsigned>(p.heads_q), static_cast<unsigned>(p.q_blocks));
  kernel<<<grid, Tr::kThreads, kSmem, stream>>>(p);
  SK_CUDA_LAUNCH_CHECK("attention_fwd_sm90_kernel");
  return Status::Ok();
}

template <typename T, int kHeadDim>
Status run_attention_fwd_sm90(const FwdParams& p, int max_smem_optin, cudaStream_t stream) {
  return launch_attention_fwd_sm90<Sm90FwdTraits<T, kHeadDim>>(p, max_smem_optin, stream);
}

}  // namespace sk::cuda::attn
