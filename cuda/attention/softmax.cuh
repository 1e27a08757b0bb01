// Online softmax (FlashAttention-2) over a warp's rows, fp32, base 2.
//
// Each thread holds 2 * kMTiles rows (mma C layout: rows lane/4 and lane/4 + 8 of every m16 tile) and a
// quarter of each row's columns; max and sum are completed across the quad. The running max m is kept in
// raw score units and the scale enters once per element through one FFMA: p = 2^(s*c - m*c) with
// c = softmax_scale * log2(e) > 0 (positive, so max(s*c) = c*max(s)). The row sum l stays per thread
// until the end (one quad reduction instead of one per tile).
#pragma once
#include <cmath>

#include "cuda/common/fast_math.cuh"

namespace sk::cuda::attn {

template <int kMTiles>
struct OnlineSoftmax {
  static constexpr int kRows = 2 * kMTiles;  // row r = mt * 2 + hh
  float m[kRows];
  float l[kRows];

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      m[r] = -INFINITY;
      l[r] = 0.f;
    }
  }

  // Folds one tile of scores into the running state: acc_s becomes the unnormalised probabilities and the
  // O accumulator is rescaled by 2^((m_old - m_new) * c).
  template <int kNTiles, int kDTiles>
  __device__ __forceinline__ void update(float (&acc_s)[kMTiles][kNTiles][4], float (&acc_o)[kMTiles][kDTiles][4],
                                         float scale_log2) {
    float corr[kRows];
    update_stats(acc_s, scale_log2, corr);
    rescale_o(acc_o, corr);
  }

  // The part of update() that does not touch O (the Hopper kernel overlaps it with the P.V still in flight):
  // new row max, probabilities in place of the scores, row sums; returns the factor O must be scaled by.
  template <int kNTiles>
  __device__ __forceinline__ void update_stats(float (&acc_s)[kMTiles][kNTiles][4], float scale_log2,
                                               float (&corr)[kRows]) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = mt * 2 + hh;
        float mx = m[r];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) mx = fmaxf(mx, fmaxf(acc_s[mt][nt][2 * hh], acc_s[mt][nt][2 * hh + 1]));
        mx = quad_max(mx);
        // Guard: a row whose every score so far is masked keeps max -inf; subtracting 0 instead keeps
        // exp2(-inf - (-inf)) = NaN out and still maps every masked score to 0.
        const float m_use = mx == -INFINITY ? 0.f : mx;
        corr[r] = ex2_approx((m[r] - m_use) * scale_log2);  // 0 while m[r] is still -inf
        m[r] = mx;
        const float m_scaled = m_use * scale_log2;
        float row_sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pv = ex2_approx(fmaf(acc_s[mt][nt][2 * hh + e], scale_log2, -m_scaled));
            acc_s[mt][nt][2 * hh + e] = pv;
            row_sum += pv;
          }
        }
        l[r] = l[r] * corr[r] + row_sum;
      }
    }
  }

  template <int kDTiles>
  __device__ __forceinline__ void rescale_o(float (&acc_o)[kMTiles][kDTiles][4], const float (&corr)[kRows]) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh)
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          acc_o[mt][dt][2 * hh] *= corr[mt * 2 + hh];
          acc_o[mt][dt][2 * hh + 1] *= corr[mt * 2 + hh];
        }
  }

  // Normalises O by the row sums and returns lse (natural log) per row in lse_out; a row with no kept
  // key has l = 0: O stays 0 and lse = -inf.
  template <int kDTiles>
  __device__ __forceinline__ void finalize(float (&acc_o)[kMTiles][kDTiles][4], float scale_log2,
                                           float (&lse_out)[kRows]) {
    constexpr float kLn2 = 0.69314718055994530942f;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = mt * 2 + hh;
        const float sum = quad_sum(l[r]);
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        lse_out[r] = sum > 0.f ? (m[r] * scale_log2 + log2f(sum)) * kLn2 : -INFINITY;
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          acc_o[mt][dt][2 * hh] *= inv;
          acc_o[mt][dt][2 * hh + 1] *= inv;
        }
      }
    }
  }
};

}  // namespace sk::cuda::attn
