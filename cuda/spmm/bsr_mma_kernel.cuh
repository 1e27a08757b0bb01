// Tensor-core kernel of Y = act(X . W^T + b) for float16 / bfloat16, W from block-CSR or dense
// (Source, tile_io.cuh). One CTA per (output tile along m, kBN tokens); grid order is token-tile major,
// so the CTAs in flight share one X slice in L2 while the weight tiles stream through.
//
// Steps: pick_tile -> prologue (kStages - 1 stages of cp.async) -> main loop over the tile's K blocks
// [wait, barrier, prefetch the stage freed last iteration, mma on this stage] -> epilogue (bias, activation,
// one rounding, masked stores). Products are accumulated block by block in col_idx order, k ascending
// inside a block: deterministic, no atomics.
//
// Costs kept out of the main loop (measured first version: 0.70 ms -> see NOTES.md): each thread's copy
// assignment (row, chunk, swizzled shared offset) is fixed per CTA, so a stage costs one pointer add per
// 16-byte copy; the block-column indices of the next stage are loaded one iteration ahead (a dependent
// global load in front of the cp.async issue stalled every iteration); ldmatrix offsets are hoisted.
#pragma once
#include <cstdint>

#include "cuda/common/convert.cuh"
#include "cuda/common/cp_async.cuh"
#include "cuda/common/ldmatrix.cuh"
#include "cuda/common/mma.cuh"
#include "cuda/spmm/epilogue.cuh"
#include "cuda/spmm/kernel_traits.cuh"
#include "cuda/spmm/tile_io.cuh"

namespace sk::cuda::spmm_kernels {

// This thread's share of one stage's copies. Thread t copies logical chunk c = t % C of rows
// t / C + i * kRowStep (i < kXIters for X, < kWIters for W). With kThreads / 8 a multiple of C, rows
// kRowStep apart share a swizzle, so a thread's copies sit at one shared offset + i * step.
template <class Tr>
struct CopyPlan {
  static constexpr int C = Tr::kChunksPerRow;
  static constexpr int kRowStep = Tr::kThreads / C;
  static constexpr int kXIters = (Tr::kBN + kRowStep - 1) / kRowStep;
  static constexpr int kWIters = (Tr::kBM + kRowStep - 1) / kRowStep;
  static_assert(Tr::kThreads % C == 0 && (Tr::kThreads / 8) % C == 0, "uniform swizzle across a thread's rows");

  int row0;       // first row this thread copies (X and W tiles alike)
  int col;        // element column of its chunk inside the tile (c * 8)
  uint32_t soff;  // swizzled shared offset (elements) of (row0, c)

  __device__ explicit CopyPlan(int tid) {
    const int c = tid % C;
    row0 = tid / C;
    col = c * 8;
    soff = static_cast<uint32_t>(tile_offset<C>(row0, c));
  }
};

// Issues the cp.async copies of the blocks `cols[0 .. nb)` (K tiles j .. j + nb) into one stage.
// X rows beyond n and columns beyond k (k % 8 == 0, so whole chunks) are zero-filled.
template <class Tr, class Src>
__device__ __forceinline__ void load_stage(const LinearParams<typename Tr::T, Src>& p, const CopyPlan<Tr>& plan,
                                           typename Tr::T* stage, int r, int j, const int (&cols)[Tr::kBlocksPerStage],
                                           int nb, int n0) {
  using T = typename Tr::T;
  using Plan = CopyPlan<Tr>;
  const T* x_row = p.x + static_cast<int64_t>(n0 + plan.row0) * p.ldx + plan.col;  // row0's chunk
#pragma unroll
  for (int b = 0; b < Tr::kBlocksPerStage; ++b) {
    if (b >= nb) break;  // uniform across the CTA
    const int k = cols[b] * Tr::kBK + plan.col;
    T* sx = stage + b * Tr::kXTileElems;
    T* sw = stage + Tr::kBlocksPerStage * Tr::kXTileElems + b * Tr::kWTileElems;
#pragma unroll
    for (int i = 0; i < Plan::kXIters; ++i) {
      const int row = plan.row0 + i * Plan::kRowStep;
      if (Tr::kBN % Plan::kRowStep != 0 && row >= Tr::kBN) break;
      const bool valid = n0 + row < p.n && k < p.k;
      const T* src = valid ? x_row + static_cast<int64_t>(i) * Plan::kRowStep * p.ldx + cols[b] * Tr::kBK : p.x;
      cp_async_16(smem_u32(sx + plan.soff + i * Plan::kRowStep * Tr::kBK), src, valid);
    }
#pragma unroll
    for (int i = 0; i < Plan::kWIters; ++i) {
      const int row = plan.row0 + i * Plan::kRowStep;
      if (Tr::kBM % Plan::kRowStep != 0 && row >= Tr::kBM) break;
      bool valid;
      const T* src = p.src.tile_ptr(r, j + b, row, plan.col, Tr::kBM, Tr::kBK, &valid);
      cp_async_16(smem_u32(sw + plan.soff + i * Plan::kRowStep * Tr::kBK), src, valid);
    }
  }
}

// Loads the block-column indices of K tiles [j, j + kBlocksPerStage) clipped to j_end.
template <class Tr, class Src>
__device__ __forceinline__ void load_cols(const Src& src, int j, int j_end, int (&cols)[Tr::kBlocksPerStage]) {
#pragma unroll
  for (int b = 0; b < Tr::kBlocksPerStage; ++b) cols[b] = j + b < j_end ? src.col(j + b) : 0;
}

// Per-lane ldmatrix offsets (elements) for k-step 0; k-step ks XORs (2 * ks) into the chunk bits.
// A (tokens): matrices {rows 0-7, 8-15} x {k 0-7, 8-15}, lanes 8i..8i+7 address matrix i.
// B (features): matrices {rows 0-7} x {k 0-7, 8-15} then rows 8-15: r[0..1], r[2..3] are two n8 tiles.
// Rows 16 apart share a swizzle (16 / (8 / C) is a multiple of C), so one XOR term serves all m16 / n16.
template <class Tr>
struct FragPlan {
  static constexpr int C = Tr::kChunksPerRow;
  int a_row_off, a_x, b_row_off, b_x;
  __device__ FragPlan(int warp_m, int warp_n, int lane) {
    const int a_row = warp_m * Tr::kWarpTokens + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int b_row = warp_n * Tr::kWarpOut + (lane & 7) + (lane >> 4) * 8;
    a_row_off = a_row * C * 8;
    b_row_off = b_row * C * 8;
    a_x = (lane >> 4) ^ ((a_row / (8 / C)) % C);
    b_x = ((lane >> 3) & 1) ^ ((b_row / (8 / C)) % C);
  }
};

// acc += X tile . W tile^T for the first `nb` blocks of a stage (warp tile kWarpTokens x kWarpOut).
template <class Tr>
__device__ __forceinline__ void mma_stage(float (&acc)[Tr::kMT][Tr::kNT][4], const typename Tr::T* stage, int nb,
                                          const FragPlan<Tr>& fp) {
  using T = typename Tr::T;
  using Kind = typename Half16<T>::MmaKind;
  constexpr int C = Tr::kChunksPerRow;
#pragma unroll
  for (int b = 0; b < Tr::kBlocksPerStage; ++b) {
    if (b >= nb) break;  // uniform
    const uint32_t sx = smem_u32(stage + b * Tr::kXTileElems) + fp.a_row_off * 2;
    const uint32_t sw = smem_u32(stage + Tr::kBlocksPerStage * Tr::kXTileElems + b * Tr::kWTileElems) + fp.b_row_off * 2;
#pragma unroll
    for (int ks = 0; ks < Tr::kKSteps; ++ks) {
      uint32_t a[Tr::kMT][4];
      uint32_t w[Tr::kNT][2];
#pragma unroll
      for (int mt = 0; mt < Tr::kMT; ++mt)
        ldmatrix_x4(a[mt], sx + (mt * 16 * C * 8 + (((2 * ks) ^ fp.a_x) * 8)) * 2);
#pragma unroll
      for (int np = 0; np < Tr::kNT / 2; ++np) {
        uint32_t r4[4];
        ldmatrix_x4(r4, sw + (np * 16 * C * 8 + (((2 * ks) ^ fp.b_x) * 8)) * 2);
        w[2 * np][0] = r4[0], w[2 * np][1] = r4[1], w[2 * np + 1][0] = r4[2], w[2 * np + 1][1] = r4[3];
      }
#pragma unroll
      for (int mt = 0; mt < Tr::kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tr::kNT; ++nt) mma_16x8x16_acc(acc[mt][nt], a[mt], w[nt], Kind{});
    }
  }
}

// C fragment (row g / g + 8, cols 2t, 2t + 1) -> y[token][feature] pairs, + bias, activation, rounding.
template <class Tr, class Src>
__device__ __forceinline__ void store_tile(const LinearParams<typename Tr::T, Src>& p,
                                           const float (&acc)[Tr::kMT][Tr::kNT][4], int n0, int m0, int warp_m,
                                           int warp_n, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < Tr::kNT; ++nt) {
    const int m = m0 + warp_n * Tr::kWarpOut + nt * 8 + 2 * t;
    const float b0 = load_bias(p.bias, m, p.m), b1 = load_bias(p.bias, m + 1, p.m);
#pragma unroll
    for (int mt = 0; mt < Tr::kMT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int n = n0 + warp_m * Tr::kWarpTokens + mt * 16 + g + 8 * h;
        if (n >= p.n) continue;
        store_pair(p.y + static_cast<int64_t>(n) * p.ldy, m, p.m, activate(acc[mt][nt][2 * h] + b0, p.activation),
                   activate(acc[mt][nt][2 * h + 1] + b1, p.activation), p.y_pairs);
      }
  }
}

template <class Tr, class Src>
__global__ void __launch_bounds__(Tr::kThreads) bsr_mma_kernel(const LinearParams<typename Tr::T, Src> p) {
  using T = typename Tr::T;
  constexpr int S = Tr::kStages, B = Tr::kBlocksPerStage;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warp_m = warp % Tr::kWarpsM, warp_n = warp / Tr::kWarpsM;

  // Step 1: pick the tile. Token-tile major: consecutive CTAs share the X slice [n0, n0 + kBN).
  const int slot = blockIdx.x % p.num_tiles_m;
  const int n0 = (blockIdx.x / p.num_tiles_m) * Tr::kBN;
  const int r = p.src.tile_row(slot);
  const int m0 = r * Tr::kBM;
  int j_begin, j_end;
  p.src.range(r, &j_begin, &j_end);
  const int nblk = j_end - j_begin;
  const int iters = (nblk + B - 1) / B;
  const CopyPlan<Tr> plan(threadIdx.x);
  const FragPlan<Tr> frag(warp_m, warp_n, lane);

  float acc[Tr::kMT][Tr::kNT][4];
#pragma unroll
  for (int mt = 0; mt < Tr::kMT; ++mt)
#pragma unroll
    for (int nt = 0; nt < Tr::kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;

  // Step 2: prologue, S - 1 stages in flight (empty commits keep the group count uniform).
  int cols[B];
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < iters) {
      const int j = j_begin + s * B;
      load_cols<Tr>(p.src, j, j_end, cols);
      load_stage<Tr>(p, plan, smem + s * Tr::kStageElems, r, j, cols, min(B, j_end - j), n0);
    }
    cp_async_commit();
  }
  load_cols<Tr>(p.src, j_begin + (S - 1) * B, j_end, cols);  // for the first prefetch of the loop

  // Step 3: main loop. After the barrier every warp is done with stage (it - 1) % S: refill it with the
  // blocks of iteration it + S - 1, whose columns were loaded one iteration ago.
  for (int it = 0; it < iters; ++it) {
    cp_async_wait<S - 2>();
    __syncthreads();
    const int pre = it + S - 1;
    if (pre < iters) {
      const int j = j_begin + pre * B;
      load_stage<Tr>(p, plan, smem + (pre % S) * Tr::kStageElems, r, j, cols, min(B, j_end - j), n0);
      load_cols<Tr>(p.src, j + B, j_end, cols);  // lands while this iteration's mma runs
    }
    cp_async_commit();
    mma_stage<Tr>(acc, smem + (it % S) * Tr::kStageElems, min(B, nblk - it * B), frag);
  }
  cp_async_wait<0>();  // nothing may still target shared memory when the CTA retires

  // Step 4: epilogue straight from the accumulators (empty block rows store bias + activation).
  store_tile<Tr>(p, acc, n0, m0, warp_m, warp_n, lane);
}

}  // namespace sk::cuda::spmm_kernels
