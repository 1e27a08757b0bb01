// Block-wide building blocks of the PBS kernels: warp/block reductions, an exclusive scan and a bitonic
// sort in shared memory. Every function is called by all kThreads threads of the block (it syncs).
#pragma once
#include <cstdint>

namespace sk::cuda::pbs {

constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

/// Sum over the block; every thread gets the total. `red` holds kThreads/32 values.
template <int kThreads, typename T>
__device__ __forceinline__ T block_sum(T v, T* red) {
  constexpr int kWarps = kThreads / 32;
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  T total = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) total += red[w];  // fixed order: deterministic
  __syncthreads();                                     // red may be reused right after
  return total;
}

template <int kThreads>
__device__ __forceinline__ float block_max(float v, float* red) {
  constexpr int kWarps = kThreads / 32;
  v = warp_max(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float m = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) m = fmaxf(m, red[w]);
  __syncthreads();
  return m;
}

/// Exclusive prefix sum of v over threads in threadIdx order; *total receives the block sum.
template <int kThreads, typename T>
__device__ __forceinline__ T block_exclusive_scan(T v, T* red, T* total) {
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T x = v;  // inclusive scan within the warp
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T y = __shfl_up_sync(kFullMask, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) red[warp] = x;
  __syncthreads();
  T before = T(0), all = T(0);
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += red[w];
    all += red[w];
  }
  __syncthreads();
  *total = all;
  return before + x - v;
}

/// Sorts keys[0:n) ascending, n a power of two (1 included). Bitonic network: n/2 * log2(n) *
/// (log2(n)+1) / 2 compare-exchanges, one __syncthreads per step; fine for the <= 8192 keys PBS sorts.
template <int kThreads>
__device__ void block_bitonic_sort(uint64_t* keys, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n; i += kThreads) {
        const int ixj = i ^ j;
        if (ixj > i) {
          const uint64_t a = keys[i], b = keys[ixj];
          const bool ascending = (i & k) == 0;
          if ((a > b) == ascending) {
            keys[i] = b;
            keys[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

__host__ __device__ __forceinline__ int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace sk::cuda::pbs
