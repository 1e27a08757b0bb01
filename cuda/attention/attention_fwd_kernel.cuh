// Block-sparse FlashAttention forward kernel body (mma.sync path, sm_80+).
//
// One CTA = one (batch, query head, query block). It walks only the key blocks listed for that block
// (full ones first, then masked ones), as tiles of kBlockN keys, through a kStages-deep cp.async ring:
//
//   iteration t:  wait for K/V(t) -> barrier -> issue K/V(t + kStages - 1) and perm(t + 2*kStages - 2)
//                 S = Q K(t)^T -> token mask (masked tiles only) -> online softmax -> O += P V(t)
//
// With a key permutation, K/V slot j of a tile is gathered from row perm[j]. Those positions must be in
// shared memory (visible to all threads) before the K/V copies are issued, so they are fetched
// kStages - 1 tiles earlier, in the commit group that the barrier of the issuing iteration has waited for.
// The ring of kPermSlots = 2*kStages - 1 slots holds every tile from the one being masked to the one
// being fetched. The single barrier per iteration also frees the stage and perm slot of tile t - 1.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/attention/attention_fwd_api.cuh"
#include "cuda/attention/block_info.cuh"
#include "cuda/attention/kernel_traits.cuh"
#include "cuda/attention/mask.cuh"
#include "cuda/attention/softmax.cuh"
#include "cuda/attention/tile_copy.cuh"
#include "cuda/attention/warp_gemm.cuh"
#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/swizzle.cuh"

namespace sk::cuda::attn {

// Epilogue: O (fp32 registers, normalised) -> the input dtype -> this warp's rows of the Q tile in shared
// memory -> 16-byte coalesced global stores by the whole CTA; LSE straight from the quad leaders.
template <typename Tr>
__device__ __forceinline__ void store_output(const FwdParams& p, const BlockInfo<Tr>& info,
                                             const float (&acc_o)[Tr::kMTiles][Tr::kDTiles][4],
                                             const float (&lse_r)[2 * Tr::kMTiles], unsigned char* smem, int tid) {
  using T = typename Tr::Element;
  using H = Half16<T>;
  const int warp = tid / 32, lane = tid % 32;
  const int q0 = info.m_block * Tr::kBlockM;
  // Each warp overwrites only the Q rows it alone has read, so no barrier is needed before these stores.
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; ++mt) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * Tr::kWarpM + mt * 16 + lane / 4 + hh * 8;
#pragma unroll
      for (int dt = 0; dt < Tr::kDTiles; ++dt) {
        const uint32_t packed = H::pack(acc_o[mt][dt][2 * hh], acc_o[mt][dt][2 * hh + 1]);
        const uint32_t off = Tr::kSmemQ + swizzled_offset<Tr::kRowBytes>(r, dt) + 4 * (lane % 4);
        *reinterpret_cast<uint32_t*>(smem + off) = packed;
      }
    }
  }
  if (p.lse != nullptr && lane % 4 == 0) {
    float* lse_head = p.lse + (static_cast<int64_t>(info.b) * p.heads_q + info.h) * p.seq_q;
#pragma unroll
    for (int mt = 0; mt < Tr::kMTiles; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int row = q0 + warp * Tr::kWarpM + mt * 16 + lane / 4 + hh * 8;
        if (row < p.seq_q) lse_head[row] = lse_r[mt * 2 + hh];
      }
  }
  __syncthreads();
  T* o_head = static_cast<T*>(p.o) + info.b * p.o_batch_stride + info.h * p.o_head_stride;
  constexpr int kRowsPerPass = Tr::kThreads / Tr::kChunksPerRow;
  const int c = tid % Tr::kChunksPerRow;
#pragma unroll
  for (int i = 0; i < Tr::kBlockM / kRowsPerPass; ++i) {
    const int r = tid / Tr::kChunksPerRow + i * kRowsPerPass;
    if (q0 + r < p.seq_q) {
      const uint4 val = *reinterpret_cast<const uint4*>(smem + Tr::kSmemQ + swizzled_offset<Tr::kRowBytes>(r, c));
      *reinterpret_cast<uint4*>(o_head + (q0 + r) * p.o_row_stride + c * 8) = val;
    }
  }
}

template <typename Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocksPerSm)
    attention_fwd_kernel(const __grid_constant__ FwdParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using T = typename Tr::Element;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const uint32_t s_base = smem_u32(smem);
  const int* s_perm = reinterpret_cast<const int*>(smem + Tr::kSmemPerm);

  // Step 1: this CTA's (b, h, query block), its key-block lists and its head pointers.
  const BlockInfo<Tr> info(p);
  const int q0 = info.m_block * Tr::kBlockM;
  const int hk = info.kv_head(p);
  const T* q_head = static_cast<const T*>(p.q) + info.b * p.q_batch_stride + info.h * p.q_head_stride;
  const T* k_head = static_cast<const T*>(p.k) + info.b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v_head = static_cast<const T*>(p.v) + info.b * p.v_batch_stride + hk * p.v_head_stride;
  const bool has_perm = info.perm_row != nullptr;

  auto perm_slot_addr = [&](int u) { return s_base + Tr::kSmemPerm + (u % Tr::kPermSlots) * (Tr::kBlockN * 4); };
  auto issue_perm = [&](int u) {  // key positions of tile u
    if (!has_perm || u >= info.n_tiles) return;
    const TileInfo ti = info.tile(p, u);
    if (ti.n0 >= 0) TileCopy<Tr>::load_perm(perm_slot_addr(u), info.perm_row, ti.n0, p.seq_k, tid);
  };
  auto issue_kv = [&](int u) {  // K and V rows of tile u into stage u % kStages
    if (u >= info.n_tiles) return;
    const TileInfo ti = info.tile(p, u);
    if (ti.n0 < 0) return;
    const uint32_t stage_off = (u % Tr::kStages) * Tr::kKVTileBytes;
    const int* perm_slot = has_perm ? s_perm + (u % Tr::kPermSlots) * Tr::kBlockN : nullptr;
    TileCopy<Tr>::load_kv(s_base + Tr::kSmemK + stage_off, s_base + Tr::kSmemV + stage_off, k_head, v_head,
                          p.k_row_stride, p.v_row_stride, ti.n0, p.seq_k, perm_slot, tid);
  };

  // Step 2: Q tile, and the key positions of the first kStages - 1 tiles, which the prologue's gathers
  // need right away (one exposed latency per CTA, only with a permutation).
  TileCopy<Tr>::load_q(s_base + Tr::kSmemQ, q_head, p.q_row_stride, q0, p.seq_q, tid);
#pragma unroll
  for (int u = 0; u < Tr::kStages - 1; ++u) issue_perm(u);
  cp_async_commit();
  if (has_perm) {
    cp_async_wait<0>();
    __syncthreads();
  }

  // Step 3: prologue, tiles 0 .. kStages-2 in flight, each with the positions of the tile kStages-1 later.
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s) {
    issue_kv(s);
    issue_perm(s + Tr::kStages - 1);
    cp_async_commit();
  }

  const GemmLanes lanes = make_gemm_lanes<Tr>(s_base, warp, lane);
  uint32_t q_frag[Tr::kQInRegs ? Tr::kDSteps : 1][4];
  if constexpr (Tr::kQInRegs) {
    cp_async_wait<Tr::kStages - 2>();  // Q's group is older than K/V(0)'s
    __syncthreads();
    load_q_frags<Tr>(q_frag, lanes);
  }

  float acc_o[Tr::kMTiles][Tr::kDTiles][4];
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; ++mt)
#pragma unroll
    for (int dt = 0; dt < Tr::kDTiles; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.f;
  OnlineSoftmax<Tr::kMTiles> softmax;
  softmax.init();
  const int warp_row0 = q0 + warp * Tr::kWarpM;

  // Step 4: main loop over the listed key tiles.
  for (int t = 0; t < info.n_tiles; ++t) {
    // 4a: K/V(t) (and the positions of tile t + kStages - 1) have landed for every thread.
    cp_async_wait<Tr::kStages - 2>();
    __syncthreads();
    // 4b: refill the stage freed by tile t - 1.
    issue_kv(t + Tr::kStages - 1);
    issue_perm(t + 2 * Tr::kStages - 2);
    cp_async_commit();

    const TileInfo ti = info.tile(p, t);
    if (ti.n0 < 0) continue;  // uniform over the CTA
    const uint32_t stage_off = (t % Tr::kStages) * Tr::kKVTileBytes;

    // 4c: S = Q K^T.
    float acc_s[Tr::kMTiles][Tr::kNTiles][4];
    gemm_qk<Tr>(acc_s, lanes, q_frag, stage_off);
    // 4d: token mask, masked tiles only (full tiles skip all mask arithmetic).
    if (ti.masked) {
      const int* perm_slot = has_perm ? s_perm + (t % Tr::kPermSlots) * Tr::kBlockN : nullptr;
      apply_token_mask<Tr>(acc_s, warp_row0, ti.n0, p.seq_q, p.seq_k, p.causal != 0 && ti.mask_list, perm_slot, lane);
    }
    // 4e: online softmax: S -> P, rescale O.
    softmax.update(acc_s, acc_o, p.scale_log2);
    // 4f: O += P V.
    uint32_t p_frag[Tr::kMTiles][Tr::kNSteps][4];
    pack_p<Tr>(p_frag, acc_s);
    gemm_pv<Tr>(acc_o, p_frag, lanes, stage_off);
  }
  cp_async_wait<0>();  // only empty groups can remain; keeps the epilogue's smem reuse obviously safe

  // Step 5: normalise, then store O and LSE.
  float lse_r[2 * Tr::kMTiles];
  softmax.finalize(acc_o, p.scale_log2, lse_r);
  store_output<Tr>(p, info, acc_o, lse_r, smem, tid);
#endif
}

}  // namespace sk::cuda::attn
