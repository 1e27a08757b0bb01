#include "cpu/spmm/panel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "cpu/common/simd.h"
#include "cpu/spmm/convert.h"

namespace sk::cpu::spmm_detail {

namespace {
constexpr int64_t kPackChunk = 64;  // columns converted per step: nt x 64 floats stay in L1

// panel[k][j] = buf[j][k]: buf rows are contiguous converted X rows; the panel is written row by row.
SK_CPU_DISPATCH void transpose_chunk(const float* SK_RESTRICT buf, int nt, int64_t len, float* SK_RESTRICT panel) {
  for (int64_t c = 0; c < len; ++c)
    for (int j = 0; j < nt; ++j) panel[c * nt + j] = buf[j * kPackChunk + c];
}

// Activations written so each SK_CPU_DISPATCH clone vectorises them (libm's erfcf / expf are scalar calls
// of 10-30 ns, which made a fused GELU cost 6x the 90%-sparse SpMM itself).
// exp: Cody-Waite reduction + the Cephes degree-5 polynomial, max relative error 8e-8 (checked against
// double on [-87, 88]). Rounding uses the 1.5 * 2^23 trick: a float -> int conversion would stop GCC from
// if-converting the loop under the default -ftrapping-math. NaN propagates; arguments are clamped to the
// normal range (exp(-87.3) ~ 1e-38, exp(88.3) ~ 2e38).
inline float exp_vec(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float shifted = x * 1.44269504088896341f + 12582912.f;  // 1.5 * 2^23: rounds to nearest
  const float fn = shifted - 12582912.f;
  uint32_t sb;
  std::memcpy(&sb, &shifted, 4);
  const uint32_t scale_bits = (sb - 0x4b400000u + 127u) << 23;  // 2^n
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.f;
  float scale;
  std::memcpy(&scale, &scale_bits, 4);
  return y * scale;
}

// Exact-form GELU x * Phi(x), Phi from erfc(|x| / sqrt2) (Numerical Recipes' erfcc: fractional error
// < 1.2e-7), never 1 + erf (that cancels for x << 0). Max relative error vs float64: 1e-6 for |x| < 5,
// 8e-6 at |x| = 9 (where |gelu| < 1e-18).
inline float gelu(float x) {
  const float a = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.f / (1.f + 0.5f * a);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float e = t * exp_vec(p - a * a);  // erfc(|x| / sqrt2)
  return x * (x < 0.f ? 0.5f * e : 1.f - 0.5f * e);
}
inline float silu(float x) { return x / (1.f + exp_vec(-x)); }
}  // namespace

void pack_panel(const void* x, int64_t ldx, DType dtype, int64_t n, int64_t k, int64_t n0, int nt,
                int64_t k_begin, int64_t k_end, float* panel, float* scratch) {
  const size_t esize = dtype_size(dtype);
  for (int64_t c0 = k_begin; c0 < k_end; c0 += kPackChunk) {
    const int64_t len = std::min(kPackChunk, k_end - c0);
    const int64_t valid = std::max<int64_t>(0, std::min(len, k - c0));  // columns below k
    for (int j = 0; j < nt; ++j) {
      float* row = scratch + j * kPackChunk;
      int64_t filled = 0;
      if (n0 + j < n && valid > 0) {
        const char* src = static_cast<const char*>(x) + ((n0 + j) * ldx + c0) * static_cast<int64_t>(esize);
        to_float(dtype, src, row, valid);
        filled = valid;
      }
      std::fill(row + filled, row + len, 0.f);
    }
    transpose_chunk(scratch, nt, len, panel + c0 * nt);
  }
}

SK_CPU_DISPATCH void bias_activation_impl(float* SK_RESTRICT v, const float* SK_RESTRICT bias, int64_t count,
                                          int act) {
  if (bias != nullptr)
    for (int64_t i = 0; i < count; ++i) v[i] += bias[i];
  switch (static_cast<Activation>(act)) {
    case Activation::kRelu:
      for (int64_t i = 0; i < count; ++i) v[i] = v[i] < 0.f ? 0.f : v[i];
      break;
    case Activation::kGelu:
      for (int64_t i = 0; i < count; ++i) v[i] = gelu(v[i]);
      break;
    case Activation::kSilu:
      for (int64_t i = 0; i < count; ++i) v[i] = silu(v[i]);
      break;
    default: break;
  }
}

void bias_activation(float* v, const float* bias, int64_t count, Activation act) {
  bias_activation_impl(v, bias, count, static_cast<int>(act));
}

void store_tile(const float* acc, int rows, int nt, int64_t n0, int64_t n_valid, int64_t m0, const float* bias,
                Activation act, DType dtype, void* y, int64_t ldy, float* scratch) {
  const size_t esize = dtype_size(dtype);
  for (int64_t j = 0; j < n_valid; ++j) {
    for (int i = 0; i < rows; ++i) scratch[i] = acc[static_cast<int64_t>(i) * nt + j];
    bias_activation(scratch, bias, rows, act);
    char* dst = static_cast<char*>(y) + ((n0 + j) * ldy + m0) * static_cast<int64_t>(esize);
    from_float(dtype, scratch, dst, rows);
  }
}

void parallel_to_float(DType dtype, const void* src, float* dst, int64_t count) {
  const size_t esize = dtype_size(dtype);
  core::parallel_for(count, 1 << 16, [&](int64_t b, int64_t e) {
    to_float(dtype, static_cast<const char*>(src) + b * static_cast<int64_t>(esize), dst + b, e - b);
  });
}

}  // namespace sk::cpu::spmm_detail
