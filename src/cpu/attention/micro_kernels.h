// Register-blocked fp32 micro-kernels of the CPU attention tiles (included by tile_ops.cc only).
//
// Both tile products have the same shape, C[R x NV*L] (+)= A[R x K] . B[K x NV*L], with B rows
// contiguous and A read one scalar at a time (broadcast):
//   scores  S^T = K . Q^T : A = K rows (keys),       B = Q^T rows (queries), K = head_dim
//   output  O   = P . V   : A = P^T columns (query), B = V rows (head dims), K = keys
// The accumulator block lives in vector registers for the whole K loop.
//
// Why GCC/Clang vector extensions and not plain loops: with plain loops GCC 12 keeps the accumulator
// in registers for some tile shapes only (a 16-wide tile compiled to scalar code, 2 GFLOP/s); the
// vector types make the register block explicit and portable (no intrinsics: each SK_CPU_DISPATCH
// clone lowers a 64-byte vector to one zmm, two ymm or four xmm registers).
// Measured on one Zen 5 core (scores tile 128 x 128 x 128):
//   AVX-512 (x86-64-v4): 64-byte vectors, R = 8, NV = 2  -> ~180 GFLOP/s (plain loops: ~140)
//   AVX2    (x86-64-v3): 32-byte vectors, R = 6, NV = 2  -> ~90 GFLOP/s  (plain loops: ~40-60)
//   baseline (SSE2):     16-byte vectors, R = 4, NV = 2
// Register budgets and widths differ (32 zmm, 16 ymm, 16 xmm; a vector wider than the target's
// registers is lowered through memory), so each clone picks its shape at run time (tile_ops.cc).
#pragma once
#include <cstdint>

#define SK_ATTN_INLINE __attribute__((always_inline)) inline

// The vector helpers below are always inlined, so no vector ever crosses a call boundary; GCC's
// "vector argument/return changes the ABI" notes (-Wpsabi, baseline clone) do not apply. Not pushed and
// popped: GCC reports them at the end of the including file (tile_ops.cc, the only includer).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sk::cpu::attn {

typedef float F32x16 __attribute__((vector_size(64)));
typedef float F32x8 __attribute__((vector_size(32)));
typedef float F32x4 __attribute__((vector_size(16)));

template <class V>
struct VecTraits;
template <>
struct VecTraits<F32x16> {
  static constexpr int kLanes = 16;
  typedef float Unaligned __attribute__((vector_size(64), aligned(4), may_alias));
  typedef int32_t Int __attribute__((vector_size(64)));
  typedef uint32_t UInt __attribute__((vector_size(64)));
  typedef uint16_t U16Unaligned __attribute__((vector_size(32), aligned(2), may_alias));
};
template <>
struct VecTraits<F32x8> {
  static constexpr int kLanes = 8;
  typedef float Unaligned __attribute__((vector_size(32), aligned(4), may_alias));
  typedef int32_t Int __attribute__((vector_size(32)));
  typedef uint32_t UInt __attribute__((vector_size(32)));
  typedef uint16_t U16Unaligned __attribute__((vector_size(16), aligned(2), may_alias));
};
template <>
struct VecTraits<F32x4> {
  static constexpr int kLanes = 4;
  typedef float Unaligned __attribute__((vector_size(16), aligned(4), may_alias));
  typedef int32_t Int __attribute__((vector_size(16)));
  typedef uint32_t UInt __attribute__((vector_size(16)));
  typedef uint16_t U16Unaligned __attribute__((vector_size(8), aligned(2), may_alias));
};

template <class V>
SK_ATTN_INLINE V load_vec(const float* p) {
  return *reinterpret_cast<const typename VecTraits<V>::Unaligned*>(p);
}
template <class V>
SK_ATTN_INLINE void store_vec(float* p, const V& v) {
  *reinterpret_cast<typename VecTraits<V>::Unaligned*>(p) = v;
}

template <class V>
SK_ATTN_INLINE V splat(float x) {
  return V{} + x;
}

// 2^x per lane for x <= 0 (the softmax only exponentiates differences to the running max), ~1 ulp
// (max relative error 9e-8 measured on [-126, 0]). Round-to-nearest split x = n + f, f in [-1/2, 1/2];
// 2^f from its degree-7 Taylor polynomial (truncation error (ln2/2)^8/8! < 5e-9); 2^n from the
// exponent bits. x < -127 (including -inf) gives exactly 0; NaN stays NaN (its lane converts a clamped
// copy, so the float -> int conversion is always defined). Written on vector types because GCC does
// not if-convert the selects of the scalar form for AVX2 (scalar code, a quarter of the AVX2 time).
template <class V>
SK_ATTN_INLINE V exp2_neg(const V& x) {
  typedef typename VecTraits<V>::Int I;
  const V lo = splat<V>(-127.f), hi = splat<V>(127.f), magic = splat<V>(12582912.f);  // 1.5 * 2^23
  V xc = x < lo ? lo : x;  // NaN compares false: stays NaN
  xc = xc > hi ? hi : xc;
  const V r = (xc + magic) - magic;  // nearest integer
  const V f = xc - r;
  V p = splat<V>(1.5252733804059840e-05f);
  p = p * f + 1.5403530393381606e-04f;
  p = p * f + 1.3333558146428443e-03f;
  p = p * f + 9.6181291076284772e-03f;
  p = p * f + 5.5504108664821580e-02f;
  p = p * f + 2.4022650695910071e-01f;
  p = p * f + 6.9314718055994531e-01f;
  p = p * f + 1.0f;
  const V rn = r > splat<V>(-128.f) ? r : lo;  // NaN lanes -> -127
  const I n = __builtin_convertvector(rn, I);
  const V two_n = reinterpret_cast<V>((n + 127) << 23);  // n = -127 -> +0
  return p * two_n;
}

// st[r * ld + c] = sum_d a_rows[r][d] * b[d * ld + c] for r < R, c < NV * L.
template <class V, int R, int NV>
SK_ATTN_INLINE void gemm_rows_x_panel(const float* const* a_rows, const float* b, int ld, int k, float* st) {
  constexpr int L = VecTraits<V>::kLanes;
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int kk = 0; kk < k; ++kk) {
    V bv[NV];
    const float* brow = b + static_cast<int64_t>(kk) * ld;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = load_vec<V>(brow + v * L);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float a = a_rows[r][kk];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += a * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) store_vec<V>(st + static_cast<int64_t>(r) * ld + v * L, acc[r][v]);
}

// o[r * ldo + c] = alpha[r] * o[r * ldo + c] + sum_j a[j * lda + r] * b_rows[j][c]
// for r < R, c < NV * L: the P.V update of R query rows over n keys, with the online-softmax rescale.
template <class V, int R, int NV>
SK_ATTN_INLINE void gemm_cols_x_rows(const float* a, int lda, int n, const float* const* b_rows, int c0,
                                     const float* alpha, float* o, int ldo) {
  constexpr int L = VecTraits<V>::kLanes;
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = alpha[r] * load_vec<V>(o + static_cast<int64_t>(r) * ldo + v * L);
  for (int j = 0; j < n; ++j) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = load_vec<V>(b_rows[j] + c0 + v * L);
    const float* arow = a + static_cast<int64_t>(j) * lda;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float s = arow[r];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) store_vec<V>(o + static_cast<int64_t>(r) * ldo + v * L, acc[r][v]);
}

// Scalar-width fallback of gemm_cols_x_rows for the last `width` columns of head dims that are not a
// multiple of the vector tile (CPU-only sizes): never reads past the end of a V row.
SK_ATTN_INLINE void gemm_cols_x_rows_tail(const float* a, int lda, int rows, int n, const float* const* b_rows, int c0,
                                          int width, const float* alpha, float* o, int ldo) {
  for (int r = 0; r < rows; ++r) {
    float* orow = o + static_cast<int64_t>(r) * ldo;
    for (int c = 0; c < width; ++c) orow[c] *= alpha[r];
  }
  for (int j = 0; j < n; ++j) {
    const float* brow = b_rows[j] + c0;
    const float* arow = a + static_cast<int64_t>(j) * lda;
    for (int r = 0; r < rows; ++r) {
      float* orow = o + static_cast<int64_t>(r) * ldo;
      for (int c = 0; c < width; ++c) orow[c] += arow[r] * brow[c];
    }
  }
}

}  // namespace sk::cpu::attn
