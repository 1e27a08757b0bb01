// Stage 2 on CUDA: segmented key permutation (spec 6.3 step 3). One CTA per (b, hp, segment) sorts the
// segment's S (score, index) keys in shared memory with a bitonic network (S <= 8192: 64 KB of keys),
// then writes perm[gS + j] = gS + order[j] and inv_perm[perm[x]] = x. The extra CTA per head
// (segment == P/S) writes the identity tail [P, N). Keys are unique, so the bitonic order is exactly the
// stable argsort of -s that the CPU produces (sort_key.cuh).
#pragma once
#include <cstdint>

#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/sort_key.cuh"

namespace sk::cuda::pbs {

struct PermuteArgs {
  const float* scores;  // [BH, P]
  int32_t* perm;        // [BH, N]
  int32_t* inv_perm;    // [BH, N]
  int N, P, S, num_segments, npad;  // npad = next power of two >= S
};

template <int kThreads>
__global__ void __launch_bounds__(kThreads) permute_kernel(const PermuteArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint64_t* keys = reinterpret_cast<uint64_t*>(smem);  // [npad]
  const int per_head = a.num_segments + 1;
  const int64_t bh = blockIdx.x / per_head;
  const int g = blockIdx.x % per_head;
  int32_t* perm = a.perm + bh * a.N;
  int32_t* inv = a.inv_perm + bh * a.N;
  if (g == a.num_segments) {  // identity tail
    for (int x = a.P + threadIdx.x; x < a.N; x += kThreads) perm[x] = inv[x] = x;
    return;
  }
  // Step 1: keys of this segment, padded to a power of two with keys that sort last.
  const float* s = a.scores + bh * a.P + static_cast<int64_t>(g) * a.S;
  for (int j = threadIdx.x; j < a.npad; j += kThreads)
    keys[j] = j < a.S ? desc_key(s[j], static_cast<uint32_t>(j)) : kPadKey;
  __syncthreads();
  // Step 2: sort.
  block_bitonic_sort<kThreads>(keys, a.npad);
  // Step 3: scatter the permutation and its inverse.
  const int base = g * a.S;
  for (int j = threadIdx.x; j < a.S; j += kThreads) {
    const int src = base + static_cast<int>(desc_key_index(keys[j]));
    perm[base + j] = src;
    inv[src] = base + j;
  }
}

}  // namespace sk::cuda::pbs
