// SIMT kernel of Y = act(X . W^T + b): the float32 path, and the float16 / bfloat16 fallback when X rows
// are not 16-byte aligned (cp.async needs it). Element-wise coalesced loads, so any alignment and any K.
//
// One CTA (256 threads) per (output tile of kBM features, 64 tokens). Thread (tx, ty) owns tokens
// ty * 4 .. + 3 and features tx + 16 * i (strided, so a warp reads 16 consecutive features of a shared row:
// no bank conflicts). Per K tile: stage X^T [bk][64] and W^T [bk][kBM] in shared memory (+1 padding on
// the transposing writes), barrier, rank-1 updates in float32.
#pragma once
#include <cstdint>

#include "cuda/spmm/epilogue.cuh"
#include "cuda/spmm/tile_io.cuh"

namespace sk::cuda::spmm_kernels {

constexpr int kSimtTokens = 64;
constexpr int kSimtThreads = 256;
constexpr int kSimtMaxBK = 64;

template <typename T, int kBM, class Src>
__global__ void __launch_bounds__(kSimtThreads) simt_kernel(const LinearParams<T, Src> p, int bk) {
  static_assert(kBM % 16 == 0 && kBM <= 64, "kBM in {16, 32, 64}");
  constexpr int kPerThread = kBM / 16;
  __shared__ float xs[kSimtMaxBK][kSimtTokens + 1];  // X^T tile
  __shared__ float ws[kSimtMaxBK][kBM + 1];          // W^T tile
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  // Step 1: pick the tile (token-tile major, as the tensor-core kernel).
  const int slot = blockIdx.x % p.num_tiles_m;
  const int n0 = (blockIdx.x / p.num_tiles_m) * kSimtTokens;
  const int r = p.src.tile_row(slot);
  int j_begin, j_end;
  p.src.range(r, &j_begin, &j_end);

  float acc[4][kPerThread] = {};
  for (int j = j_begin; j < j_end; ++j) {
    const int k0 = p.src.col(j) * bk;
    // Step 2: stage the tiles (consecutive threads read consecutive k: coalesced).
    __syncthreads();
    for (int idx = threadIdx.x; idx < kSimtTokens * bk; idx += kSimtThreads) {
      const int row = idx / bk, kk = idx % bk;
      const int n = n0 + row, k = k0 + kk;
      xs[kk][row] = (n < p.n && k < p.k) ? to_f32(p.x[static_cast<int64_t>(n) * p.ldx + k]) : 0.f;
    }
    for (int idx = threadIdx.x; idx < kBM * bk; idx += kSimtThreads) {
      const int row = idx / bk, kk = idx % bk;
      bool valid;
      const T* e = p.src.tile_ptr(r, j, row, kk, kBM, bk, &valid);
      ws[kk][row] = valid ? to_f32(*e) : 0.f;
    }
    __syncthreads();
    // Step 3: rank-1 updates over the tile's K.
    for (int kk = 0; kk < bk; ++kk) {
      float xv[4], wv[kPerThread];
#pragma unroll
      for (int t = 0; t < 4; ++t) xv[t] = xs[kk][ty * 4 + t];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) wv[i] = ws[kk][tx + 16 * i];
#pragma unroll
      for (int t = 0; t < 4; ++t)
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) acc[t][i] = fmaf(xv[t], wv[i], acc[t][i]);
    }
  }

  // Step 4: epilogue.
  const int m_base = r * kBM;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int m = m_base + tx + 16 * i;
    if (m >= p.m) continue;
    const float b = load_bias(p.bias, m, p.m);
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const int n = n0 + ty * 4 + t;
      if (n < p.n) p.y[static_cast<int64_t>(n) * p.ldy + m] = from_f32<T>(activate(acc[t][i] + b, p.activation));
    }
  }
}

}  // namespace sk::cuda::spmm_kernels
