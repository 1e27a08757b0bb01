// The two warp-level GEMMs of the attention tile, on mma.sync m16n8k16 with fp32 accumulators:
//   S[warp rows x kBlockN] = Q[warp rows x D] . K[tile]^T     (A = Q from smem or registers, B = K rows)
//   O[warp rows x D]      += P[warp rows x kBlockN] . V[tile] (A = P from registers, B = V via ldmatrix.trans)
// Shared tiles are swizzled (cuda/common/swizzle.cuh); all loops are unrolled so the block offsets fold
// into immediates and each ldmatrix costs one XOR of its address.
#pragma once
#include <cstdint>

#include "cuda/common/convert.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/mma.cuh"
#include "cuda/common/swizzle.cuh"

namespace sk::cuda::attn {

// Per-lane ldmatrix addresses of the three operand tiles (shared-space byte addresses).
struct GemmLanes {
  uint32_t q_base, q_xor;  // warp's first Q row, A order
  uint32_t k_base, k_xor;  // K tile row 0, B order (add the stage offset)
  uint32_t v_base, v_xor;  // V tile row 0, A order under .trans (add the stage offset)
};

template <typename Tr>
__device__ __forceinline__ GemmLanes make_gemm_lanes(uint32_t smem_base, int warp, int lane) {
  const LdsmLane a = ldsm_lane<Tr::kRowBytes, true>(lane);
  const LdsmLane bk = ldsm_lane<Tr::kRowBytes, false>(lane);
  GemmLanes g;
  g.q_base = smem_base + Tr::kSmemQ + warp * Tr::kWarpM * Tr::kRowBytes + a.base;
  g.q_xor = a.xor_bits;
  g.k_base = smem_base + Tr::kSmemK + bk.base;
  g.k_xor = bk.xor_bits;
  g.v_base = smem_base + Tr::kSmemV + a.base;
  g.v_xor = a.xor_bits;
  return g;
}

// Q's A fragments for all k16 steps, for warps that keep Q in registers (kQInRegs, 16-row warps).
template <typename Tr>
__device__ __forceinline__ void load_q_frags(uint32_t (&q_frag)[Tr::kDSteps][4], const GemmLanes& g) {
#pragma unroll
  for (int ks = 0; ks < Tr::kDSteps; ++ks) ldmatrix_x4(q_frag[ks], g.q_base + ((32u * ks) ^ g.q_xor));
}

// acc_s = Q K^T for the K tile at k_stage_base (shared byte offset of the stage, added to g.k_base).
template <typename Tr, typename QFrag>
__device__ __forceinline__ void gemm_qk(float (&acc_s)[Tr::kMTiles][Tr::kNTiles][4], const GemmLanes& g,
                                        const QFrag& q_frag, uint32_t k_stage_offset) {
  using Kind = typename Half16<typename Tr::Element>::MmaKind;
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < Tr::kNTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = 0.f;

  const uint32_t k_base = g.k_base + k_stage_offset;
#pragma unroll
  for (int ks = 0; ks < Tr::kDSteps; ++ks) {
    uint32_t a[Tr::kMTiles][4];
    if constexpr (Tr::kQInRegs) {
#pragma unroll
      for (int e = 0; e < 4; ++e) a[0][e] = q_frag[ks][e];
    } else {
      const uint32_t q_addr = g.q_base + ((32u * ks) ^ g.q_xor);
#pragma unroll
      for (int mt = 0; mt < Tr::kMTiles; ++mt) ldmatrix_x4(a[mt], q_addr + mt * 16 * Tr::kRowBytes);
    }
    const uint32_t k_addr = k_base + ((32u * ks) ^ g.k_xor);
#pragma unroll
    for (int np = 0; np < Tr::kNTiles / 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, k_addr + np * 16 * Tr::kRowBytes);  // keys np*16..+15, d ks*16..+15
      const uint32_t b0[2] = {b[0], b[1]};
      const uint32_t b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mt = 0; mt < Tr::kMTiles; ++mt) {
        mma_16x8x16_acc(acc_s[mt][2 * np], a[mt], b0, Kind{});
        mma_16x8x16_acc(acc_s[mt][2 * np + 1], a[mt], b1, Kind{});
      }
    }
  }
}

// P (the probabilities left in acc_s by the online softmax) rounded to the input dtype, as FlashAttention
// does, and packed as A fragments: the C layout of S n8 tiles 2kk, 2kk+1 is exactly the A layout of k16
// step kk. Packing right after the softmax lets the 32-bit scores die before the P V loop.
template <typename Tr>
__device__ __forceinline__ void pack_p(uint32_t (&p_frag)[Tr::kMTiles][Tr::kNSteps][4],
                                       const float (&acc_s)[Tr::kMTiles][Tr::kNTiles][4]) {
  using H = Half16<typename Tr::Element>;
#pragma unroll
  for (int mt = 0; mt < Tr::kMTiles; ++mt)
#pragma unroll
    for (int kk = 0; kk < Tr::kNSteps; ++kk) {
      p_frag[mt][kk][0] = H::pack(acc_s[mt][2 * kk][0], acc_s[mt][2 * kk][1]);
      p_frag[mt][kk][1] = H::pack(acc_s[mt][2 * kk][2], acc_s[mt][2 * kk][3]);
      p_frag[mt][kk][2] = H::pack(acc_s[mt][2 * kk + 1][0], acc_s[mt][2 * kk + 1][1]);
      p_frag[mt][kk][3] = H::pack(acc_s[mt][2 * kk + 1][2], acc_s[mt][2 * kk + 1][3]);
    }
}

// acc_o += P V for the V tile at v_stage_offset.
template <typename Tr>
__device__ __forceinline__ void gemm_pv(float (&acc_o)[Tr::kMTiles][Tr::kDTiles][4],
                                        const uint32_t (&p_frag)[Tr::kMTiles][Tr::kNSteps][4], const GemmLanes& g,
                                        uint32_t v_stage_offset) {
  using Kind = typename Half16<typename Tr::Element>::MmaKind;
  const uint32_t v_base = g.v_base + v_stage_offset;
#pragma unroll
  for (int kk = 0; kk < Tr::kNSteps; ++kk) {
    const uint32_t v_addr = v_base + kk * 16 * Tr::kRowBytes;
#pragma unroll
    for (int dp = 0; dp < Tr::kDTiles / 2; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, v_addr + ((32u * dp) ^ g.v_xor));  // keys kk*16..+15, d dp*16..+15
      const uint32_t b0[2] = {b[0], b[1]};
      const uint32_t b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mt = 0; mt < Tr::kMTiles; ++mt) {
        mma_16x8x16_acc(acc_o[mt][2 * dp], p_frag[mt][kk], b0, Kind{});
        mma_16x8x16_acc(acc_o[mt][2 * dp + 1], p_frag[mt][kk], b1, Kind{});
      }
    }
  }
}

}  // namespace sk::cuda::attn
