// fp32 tile primitives of the CPU attention kernel (see tile_ops.h for the layouts).
//
// No intrinsics: the tile products use the vector-typed micro-kernels of micro_kernels.h, everything
// else is plain loops that the compiler vectorises for each SK_CPU_DISPATCH target. Helpers are
// force-inlined so that every clone gets its own ISA (see tile_ops.h).
#include "cpu/attention/tile_ops.h"

#include <cstring>
#include <limits>

#include "core/half.h"
#include "cpu/attention/micro_kernels.h"
#include "cpu/common/simd.h"

namespace sk::cpu::attn {
namespace {

SK_ATTN_INLINE float bits_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Register tiles per ISA (micro_kernels.h). Under target_clones the clones see no per-target macros, so
// the choice is made at run time with the test the clone resolver itself uses (GCC: the x86-64-v4 /
// -v3 levels; Clang: their AVX-512 / AVX2 feature sets). In a single-target build
// (SK_NO_MULTIVERSIONING, -march=...) the compiler's own target decides.
enum class VectorIsa { kAvx512, kAvx2, kBaseline };
SK_ATTN_INLINE VectorIsa vector_isa() {
#if defined(__AVX512F__)
  return VectorIsa::kAvx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return VectorIsa::kAvx2;
#elif defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(SK_NO_MULTIVERSIONING)
  // Same condition as SK_CPU_DISPATCH in cpu/common/simd.h: any of the three clones may be running.
#if defined(__clang__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return VectorIsa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VectorIsa::kAvx2;
#else
  if (__builtin_cpu_supports("x86-64-v4")) return VectorIsa::kAvx512;
  if (__builtin_cpu_supports("x86-64-v3")) return VectorIsa::kAvx2;
#endif
  return VectorIsa::kBaseline;
#else
  return VectorIsa::kBaseline;
#endif
}

template <class V, int R, int NV>
SK_ATTN_INLINE void qk_scores_tiled(const float* const* k_rows, int n, const float* qt, int m_pad, int ld,
                                    int head_dim, float* st) {
  constexpr int kC = NV * VecTraits<V>::kLanes;
  static_assert(kQueryPad % kC == 0, "padded query tiles must be whole panels");
  // One kC-query panel of Q^T (head_dim x kC floats, 16 KiB at d = 128, kC = 32) stays in L1 while
  // every key row of the tile streams past it.
  for (int i0 = 0; i0 < m_pad; i0 += kC) {
    int j = 0;
    for (; j + R <= n; j += R)
      gemm_rows_x_panel<V, R, NV>(k_rows + j, qt + i0, ld, head_dim, st + int64_t{j} * ld + i0);
    for (; j < n; ++j) gemm_rows_x_panel<V, 1, NV>(k_rows + j, qt + i0, ld, head_dim, st + int64_t{j} * ld + i0);
  }
}

// L queries at a time (L = vector lanes; m_pad is a multiple of every L): the column max, the rescale
// factor and exp2 of every score, walking the L-wide column panel of S^T (n x L floats, <= 8 KiB) twice.
template <class V>
SK_ATTN_INLINE void softmax_step_tiled(float* st, int n, int m_pad, int ld, float* m_run, float* l_run,
                                       float* alpha) {
  constexpr int L = VecTraits<V>::kLanes;
  static_assert(kQueryPad % L == 0, "padded query tiles must be whole vectors");
  const V neg_inf = splat<V>(-std::numeric_limits<float>::infinity());
  for (int i0 = 0; i0 < m_pad; i0 += L) {
    const V m_old = load_vec<V>(m_run + i0);
    V m_new = m_old;
    for (int j = 0; j < n; ++j) {
      const V s = load_vec<V>(st + static_cast<int64_t>(j) * ld + i0);
      m_new = s > m_new ? s : m_new;
    }
    // A query with every key masked so far keeps max -inf: subtract 0 instead, so that exp2(-inf - 0)
    // = 0 rather than exp2(-inf + inf) = NaN.
    const V m_use = m_new == neg_inf ? V{} : m_new;
    const V a = exp2_neg(m_old - m_use);
    V sum = V{};
    for (int j = 0; j < n; ++j) {
      float* s = st + static_cast<int64_t>(j) * ld + i0;
      const V p = exp2_neg(load_vec<V>(s) - m_use);
      store_vec<V>(s, p);
      sum += p;
    }
    store_vec<V>(alpha + i0, a);
    store_vec<V>(m_run + i0, m_new);
    store_vec<V>(l_run + i0, load_vec<V>(l_run + i0) * a + sum);
  }
}

template <class V, int R, int NV>
SK_ATTN_INLINE void pv_accumulate_tiled(const float* pt, int n, int m_pad, int ld, const float* const* v_rows,
                                        int head_dim, const float* alpha, float* o) {
  constexpr int kC = NV * VecTraits<V>::kLanes;
  // One kC-wide panel of the V tile (n x kC floats, 16 KiB at n = 128, kC = 32) stays in L1 while
  // every group of R queries accumulates into it.
  int c0 = 0;
  for (; c0 + kC <= head_dim; c0 += kC) {
    int i0 = 0;
    for (; i0 + R <= m_pad; i0 += R)
      gemm_cols_x_rows<V, R, NV>(pt + i0, ld, n, v_rows, c0, alpha + i0, o + int64_t{i0} * head_dim + c0, head_dim);
    for (; i0 < m_pad; ++i0)
      gemm_cols_x_rows<V, 1, NV>(pt + i0, ld, n, v_rows, c0, alpha + i0, o + int64_t{i0} * head_dim + c0, head_dim);
  }
  if (c0 < head_dim) gemm_cols_x_rows_tail(pt, ld, m_pad, n, v_rows, c0, head_dim - c0, alpha, o + c0, head_dim);
}

// Branch-free form of sk::half_to_float (core/half.h), exact for every input, L halves at a time:
//  normal:    re-bias the exponent (15 -> 127) and widen the mantissa;
//  subnormal: mantissa * 2^-24, an exact int -> float conversion and scale;
//  Inf/NaN:   all-ones exponent, mantissa (NaN payload) kept.
template <class V>
SK_ATTN_INLINE void f16_to_f32_tiled(const uint16_t* src, float* dst, int n) {
  typedef typename VecTraits<V>::UInt U;
  typedef typename VecTraits<V>::U16Unaligned H;
  constexpr int L = VecTraits<V>::kLanes;
  int t = 0;
  for (; t + L <= n; t += L) {
    const U h = __builtin_convertvector(*reinterpret_cast<const H*>(src + t), U);  // zero-extends
    const U sign = (h & 0x8000u) << 16;
    const U em = h & 0x7fffu;
    const V normal = reinterpret_cast<V>(sign | ((em << 13) + (112u << 23)));
    const V sub_abs = __builtin_convertvector(em, V) * 5.9604644775390625e-08f;  // 2^-24
    const V subnormal = reinterpret_cast<V>(sign | reinterpret_cast<U>(sub_abs));
    const V special = reinterpret_cast<V>(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    store_vec<V>(dst + t, em < 0x400u ? subnormal : (em >= 0x7c00u ? special : normal));
  }
  for (; t < n; ++t) dst[t] = half_to_float(src[t]);
}

}  // namespace

SK_CPU_DISPATCH void qk_scores(const float* const* k_rows, int n, const float* qt, int m_pad, int ld,
                               int head_dim, float* st) {
  switch (vector_isa()) {
    case VectorIsa::kAvx512: return qk_scores_tiled<F32x16, 8, 2>(k_rows, n, qt, m_pad, ld, head_dim, st);
    case VectorIsa::kAvx2: return qk_scores_tiled<F32x8, 6, 2>(k_rows, n, qt, m_pad, ld, head_dim, st);
    case VectorIsa::kBaseline: return qk_scores_tiled<F32x4, 4, 2>(k_rows, n, qt, m_pad, ld, head_dim, st);
  }
}

SK_CPU_DISPATCH void mask_scores(const int32_t* pos, int n, int64_t q0, int64_t diag_offset, int m_pad,
                                 int ld, float* st) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < n; ++j) {
    // Query i keeps key j iff pos[j] <= q0 + i + diag_offset, i.e. i >= pos[j] - diag_offset - q0.
    const int64_t first_kept = static_cast<int64_t>(pos[j]) - diag_offset - q0;
    const int masked = first_kept <= 0 ? 0 : (first_kept >= m_pad ? m_pad : static_cast<int>(first_kept));
    float* SK_RESTRICT row = st + static_cast<int64_t>(j) * ld;
    for (int i = 0; i < masked; ++i) row[i] = neg_inf;
  }
}

SK_CPU_DISPATCH void softmax_step(float* st, int n, int m_pad, int ld, float* m_run, float* l_run,
                                  float* alpha) {
  switch (vector_isa()) {
    case VectorIsa::kAvx512: return softmax_step_tiled<F32x16>(st, n, m_pad, ld, m_run, l_run, alpha);
    case VectorIsa::kAvx2: return softmax_step_tiled<F32x8>(st, n, m_pad, ld, m_run, l_run, alpha);
    case VectorIsa::kBaseline: return softmax_step_tiled<F32x4>(st, n, m_pad, ld, m_run, l_run, alpha);
  }
}

SK_CPU_DISPATCH void pv_accumulate(const float* pt, int n, int m_pad, int ld, const float* const* v_rows,
                                   int head_dim, const float* alpha, float* o) {
  switch (vector_isa()) {
    case VectorIsa::kAvx512: return pv_accumulate_tiled<F32x16, 8, 2>(pt, n, m_pad, ld, v_rows, head_dim, alpha, o);
    case VectorIsa::kAvx2: return pv_accumulate_tiled<F32x8, 6, 2>(pt, n, m_pad, ld, v_rows, head_dim, alpha, o);
    case VectorIsa::kBaseline: return pv_accumulate_tiled<F32x4, 4, 2>(pt, n, m_pad, ld, v_rows, head_dim, alpha, o);
  }
}

SK_CPU_DISPATCH void transpose_scaled(const float* SK_RESTRICT src, int rows, int cols, float scale,
                                      float* SK_RESTRICT dst, int ld_dst) {
  constexpr int kB = 16;
  for (int r0 = 0; r0 < rows; r0 += kB) {
    const int rn = rows - r0 < kB ? rows - r0 : kB;
    for (int c0 = 0; c0 < cols; c0 += kB) {
      const int cn = cols - c0 < kB ? cols - c0 : kB;
      for (int c = c0; c < c0 + cn; ++c)
        for (int r = r0; r < r0 + rn; ++r) dst[int64_t{c} * ld_dst + r] = scale * src[int64_t{r} * cols + c];
    }
  }
}

SK_CPU_DISPATCH void f16_to_f32(const uint16_t* SK_RESTRICT src, float* SK_RESTRICT dst, int n) {
  switch (vector_isa()) {
    case VectorIsa::kAvx512: return f16_to_f32_tiled<F32x16>(src, dst, n);
    case VectorIsa::kAvx2: return f16_to_f32_tiled<F32x8>(src, dst, n);
    case VectorIsa::kBaseline: return f16_to_f32_tiled<F32x4>(src, dst, n);
  }
}

SK_CPU_DISPATCH void bf16_to_f32(const uint16_t* SK_RESTRICT src, float* SK_RESTRICT dst, int n) {
  for (int t = 0; t < n; ++t) dst[t] = bits_as_float(static_cast<uint32_t>(src[t]) << 16);
}

}  // namespace sk::cpu::attn
