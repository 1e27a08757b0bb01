// See row_ops.h. The bodies are plain loops the compiler vectorises for each SK_CPU_DISPATCH target:
// no intrinsics, and the 16-bit -> float conversions are branch-free bit arithmetic (selects, shifts and
// one multiply), so they vectorise too instead of calling a scalar helper per element.
#include "cpu/delta/row_ops.h"

#include <cstring>

namespace sk::cpu::delta {

namespace {

inline float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t as_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct LoadF32 {
  using T = float;
  static inline float load(float w) { return w; }
};

// binary16 -> float, exact. Shifting the exponent+mantissa bits into float position gives the value
// times 2^-112 for normals *and* subnormals (those land on float denormals), so one multiply by 2^112
// rescales both exactly; Inf/NaN (exponent 31) are patched with a select. Caveat: a host thread running
// with denormals-are-zero would flush fp16 subnormal weights (|w| < 6.1e-5) to zero here.
struct LoadF16 {
  using T = uint16_t;
  static inline float load(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    const uint32_t scaled = as_bits(as_float(em << 13) * 0x1p112f);
    const uint32_t special = (em << 13) | 0x7f800000u;
    return as_float((em >= 0x7c00u ? special : scaled) | sign);
  }
};

struct LoadBF16 {
  using T = uint16_t;
  static inline float load(uint16_t h) { return as_float(static_cast<uint32_t>(h) << 16); }
};

template <class L>
inline __attribute__((always_inline)) void accumulate_rows(float* SK_RESTRICT acc, int64_t n,
                                                           const typename L::T* wt, int64_t ld, int64_t col0,
                                                           const int32_t* idx, const float* d, int64_t count) {
  using T = typename L::T;
  auto row = [&](int64_t i) -> const T* {
    return wt + (idx != nullptr ? static_cast<int64_t>(idx[i]) : i) * ld + col0;
  };
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const T* SK_RESTRICT w0 = row(i);
    const T* SK_RESTRICT w1 = row(i + 1);
    const T* SK_RESTRICT w2 = row(i + 2);
    const T* SK_RESTRICT w3 = row(i + 3);
    const float d0 = d[i], d1 = d[i + 1], d2 = d[i + 2], d3 = d[i + 3];
    for (int64_t j = 0; j < n; ++j) {
      float a = acc[j];
      a += d0 * L::load(w0[j]);
      a += d1 * L::load(w1[j]);
      a += d2 * L::load(w2[j]);
      a += d3 * L::load(w3[j]);
      acc[j] = a;
    }
  }
  for (; i < count; ++i) {
    const T* SK_RESTRICT w0 = row(i);
    const float d0 = d[i];
    for (int64_t j = 0; j < n; ++j) acc[j] += d0 * L::load(w0[j]);
  }
}

}  // namespace

SK_CPU_DISPATCH void accumulate_rows_f32(float* SK_RESTRICT acc, int64_t n, const float* wt, int64_t ld,
                                         int64_t col0, const int32_t* idx, const float* d, int64_t count) {
  accumulate_rows<LoadF32>(acc, n, wt, ld, col0, idx, d, count);
}

SK_CPU_DISPATCH void accumulate_rows_f16(float* SK_RESTRICT acc, int64_t n, const uint16_t* wt, int64_t ld,
                                         int64_t col0, const int32_t* idx, const float* d, int64_t count) {
  accumulate_rows<LoadF16>(acc, n, wt, ld, col0, idx, d, count);
}

SK_CPU_DISPATCH void accumulate_rows_bf16(float* SK_RESTRICT acc, int64_t n, const uint16_t* wt, int64_t ld,
                                          int64_t col0, const int32_t* idx, const float* d, int64_t count) {
  accumulate_rows<LoadBF16>(acc, n, wt, ld, col0, idx, d, count);
}

SK_CPU_DISPATCH void convert_f16(float* SK_RESTRICT dst, const uint16_t* SK_RESTRICT src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = LoadF16::load(src[j]);
}

SK_CPU_DISPATCH void convert_bf16(float* SK_RESTRICT dst, const uint16_t* SK_RESTRICT src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = LoadBF16::load(src[j]);
}

}  // namespace sk::cpu::delta
