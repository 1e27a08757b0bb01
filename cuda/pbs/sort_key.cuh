// The (score, index) sort key shared by the permutation and the selection kernels.
// One ascending uint64 order = descending score, then ascending index: sorting unique keys with any
// algorithm (bitonic here) gives exactly a stable argsort of -score, so ties keep the lower index first.
// NaN sorts as -inf and -0 ties with +0. src/cpu/pbs/common.h builds the identical key, which is why the
// CPU and CUDA permutations agree bit for bit on identical scores.
#pragma once
#include <cstdint>

namespace sk::cuda::pbs {

/// Monotone map float -> uint32 (ascending), with NaN -> -inf and -0 -> +0.
__device__ __forceinline__ uint32_t float_order_asc(float v) {
  uint32_t u = __float_as_uint(v);
  if (v != v) u = 0xff800000u;
  if (v == 0.f) u = 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/// Key of (score v, index idx): ascending key order = descending v, then ascending idx.
__device__ __forceinline__ uint64_t desc_key(float v, uint32_t idx) {
  return (static_cast<uint64_t>(~float_order_asc(v)) << 32) | idx;
}

/// The score of a key (NaN comes back as -inf).
__device__ __forceinline__ float desc_key_value(uint64_t key) {
  const uint32_t o = ~static_cast<uint32_t>(key >> 32);
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

__device__ __forceinline__ uint32_t desc_key_index(uint64_t key) { return static_cast<uint32_t>(key); }

/// Padding key: sorts after every real key.
constexpr uint64_t kPadKey = ~0ull;

}  // namespace sk::cuda::pbs
