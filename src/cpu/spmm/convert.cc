#include "cpu/spmm/convert.h"

#include <cstring>

#include "cpu/common/simd.h"

namespace sk::cpu::spmm_detail {

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

// float16 -> float32 without branches: shifting exponent+mantissa into float position and scaling by
// 2^112 re-biases normals and turns subnormals (exponent 0) into the exact float value as well; only
// Inf/NaN (exponent 31) need a select.
SK_CPU_DISPATCH void f16_to_f32(const uint16_t* SK_RESTRICT src, float* SK_RESTRICT dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t h = src[i];
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    const uint32_t finite = as_bits(as_float(em << 13) * 0x1p112f);
    const uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13);
    dst[i] = as_float(sign | (em >= 0x7c00u ? special : finite));
  }
}

SK_CPU_DISPATCH void bf16_to_f32(const uint16_t* SK_RESTRICT src, float* SK_RESTRICT dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = as_float(static_cast<uint32_t>(src[i]) << 16);
}

// float32 -> float16, round to nearest even, without branches (the FP16 library's method: let the FPU
// round the mantissa by adding a power of two that puts the half's last mantissa bit at the float's last
// one; scaling by 2^112 then 2^-110 first makes overflow saturate to Inf and keeps subnormals exact).
SK_CPU_DISPATCH void f32_to_f16(const float* SK_RESTRICT src, uint16_t* SK_RESTRICT dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float f = src[i];
    const uint32_t w = as_bits(f);
    const uint32_t shl1 = w + w;
    const uint32_t sign = (w & 0x80000000u) >> 16;
    float base = (__builtin_fabsf(f) * 0x1p112f) * 0x1p-110f;
    uint32_t bias = shl1 & 0xff000000u;
    bias = bias < 0x71000000u ? 0x71000000u : bias;
    base = as_float((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = as_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu);
    const uint32_t nan = 0x7e00u | ((w >> 13) & 0x3ffu);  // quiet NaN keeping the payload's top bits
    dst[i] = static_cast<uint16_t>(sign | (shl1 > 0xff000000u ? nan : nonsign));
  }
}

SK_CPU_DISPATCH void f32_to_bf16(const float* SK_RESTRICT src, uint16_t* SK_RESTRICT dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t u = as_bits(src[i]);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x0040u;
    dst[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

}  // namespace

void to_float(DType dtype, const void* src, float* dst, int64_t count) {
  switch (dtype) {
    case DType::kFloat16: f16_to_f32(static_cast<const uint16_t*>(src), dst, count); break;
    case DType::kBFloat16: bf16_to_f32(static_cast<const uint16_t*>(src), dst, count); break;
    default: std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float)); break;
  }
}

void from_float(DType dtype, const float* src, void* dst, int64_t count) {
  switch (dtype) {
    case DType::kFloat16: f32_to_f16(src, static_cast<uint16_t*>(dst), count); break;
    case DType::kBFloat16: f32_to_bf16(src, static_cast<uint16_t*>(dst), count); break;
    default: std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float)); break;
  }
}

}  // namespace sk::cpu::spmm_detail
