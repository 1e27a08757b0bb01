// Launch templates (grid, shared-memory opt-in, launch, check) behind the entry points of spmm_launch.h.
// Included by the instantiation TUs only.
#pragma once
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/common/check.cuh"
#include "cuda/spmm/bsr_mma_kernel.cuh"
#include "cuda/spmm/gemv_kernel.cuh"
#include "cuda/spmm/kernel_traits.cuh"
#include "cuda/spmm/simt_kernel.cuh"
#include "cuda/spmm/spmm_launch.h"

namespace sk::cuda::spmm_kernels {

inline Status grid_size(int64_t tiles_m, int64_t n, int64_t tile_n, int* grid) {
  const int64_t g = tiles_m * ((n + tile_n - 1) / tile_n);
  if (g > INT_MAX)
    return Status::Error(ErrorCode::kShape, "spmm: " + std::to_string(g) + " tiles exceed the CUDA grid limit");
  *grid = static_cast<int>(g);
  return Status::Ok();
}

template <class Tr, class Src>
Status launch_mma(const LinearParams<typename Tr::T, Src>& p, cudaStream_t stream) {
  int grid = 0;
  SK_RETURN_IF_ERROR(grid_size(p.num_tiles_m, p.n, Tr::kBN, &grid));
  if (grid == 0) return Status::Ok();
  auto kernel = bsr_mma_kernel<Tr, Src>;
  if (Tr::kSmemBytes > 48 * 1024)  // above 48 KB dynamic shared memory needs the opt-in (per kernel)
    SK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes));
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p);
  SK_CUDA_LAUNCH_CHECK("spmm bsr_mma_kernel");
  return Status::Ok();
}

// Blocks per pipeline stage: 64 columns of K per stage, so a 16- or 32-wide block does not pay a barrier
// and a wait per 1-2 k16 steps.
template <int kBK>
inline constexpr int kBlocksFor64 = kBK >= 64 ? 1 : 64 / kBK;

// Tile choices (why, with figures, in cuda/spmm/NOTES.md).
//  small N (<= 16 tokens): 16-token tiles, warps split the features, 4 stages (bm = 16: 32 tokens, two
//    warps, because the copy plan needs kThreads / 8 to be a multiple of the chunks per row).
//  large N: 128 tokens x bm features. bm = 64: 8 warps (4 along tokens x 2 along features, warp tile
//    32 x 32), 3 stages (H200, 8192^2 bf16, N = 4096, 64x64 at 90%: 0.236 ms vs 0.310 ms for 4 warps of
//    32 x 64). bm <= 32: 4 warps along tokens (warp tile 32 x bm), 64 K columns per stage, 3 stages for
//    32-wide blocks (32x32 at 90%: 0.30 ms vs 0.47 ms for 2 blocks per stage); 32x32 with N >= 1024 takes
//    256-token tiles (halves the weight re-reads through L2: 0.294 vs 0.299 ms at 90%, 1.23 vs 1.30 at 50%).
template <typename T, int kBM, int kBK>
Status run_bsr_mma(const LinearParams<T, BsrSource<T>>& p, cudaStream_t stream, int variant) {
  constexpr int kBps = kBlocksFor64<kBK>;
  if (variant == kAuto) variant = p.n <= 16 ? kSmallN : kLargeN;
  switch (variant) {
    case kSmallN:
      if constexpr (kBM == 16) return launch_mma<MmaTraits<T, 16, kBK, 32, 2, 1, 4, kBps>>(p, stream);
      else return launch_mma<MmaTraits<T, kBM, kBK, 16, 1, (kBM / 16 < 4 ? kBM / 16 : 4), 4, kBps>>(p, stream);
    case kLargeN:
      if constexpr (kBM == 64) return launch_mma<MmaTraits<T, 64, kBK, 128, 4, 2, 3, kBps>>(p, stream);
      else if constexpr (kBM == 32 && kBK == 32) {
        if (p.n >= 1024) return launch_mma<MmaTraits<T, 32, 32, 256, 4, 1, 3, 1>>(p, stream);
        return launch_mma<MmaTraits<T, 32, 32, 128, 4, 1, 3, 1>>(p, stream);
      } else if constexpr (kBK == 32) return launch_mma<MmaTraits<T, kBM, 32, 128, 4, 1, 3, 1>>(p, stream);
      else if constexpr (kBM == 16 && kBK == 16)  // 4 blocks per stage: ptxas spills 4 bytes on sm_90 at 64 regs
        return launch_mma<MmaTraits<T, 16, 16, 128, 4, 1, 4, 2>>(p, stream);
      else return launch_mma<MmaTraits<T, kBM, kBK, 128, 4, 1, 4, kBps>>(p, stream);
    default: break;
  }
  if constexpr (std::is_same_v<T, __nv_bfloat16> && kBM == 32 && kBK == 32) {
    switch (variant) {
      case kTune1: return launch_mma<MmaTraits<T, 32, 32, 128, 4, 1, 3, 1>>(p, stream);  // 128 tokens at any N
      case kTune2: return launch_mma<MmaTraits<T, 32, 32, 256, 4, 1, 4, 1>>(p, stream);  // 4 stages
      case kTune3: return launch_mma<MmaTraits<T, 32, 32, 256, 8, 1, 3, 1>>(p, stream);  // 8 warps of 32 x 32
      default: break;
    }
  }
  if constexpr (std::is_same_v<T, __nv_bfloat16> && kBM == 64 && kBK == 64) {
    switch (variant) {
      case kTune1: return launch_mma<MmaTraits<T, 64, 64, 128, 4, 1, 4, 1>>(p, stream);  // 4 warps of 32 x 64
      case kTune2: return launch_mma<MmaTraits<T, 64, 64, 256, 4, 2, 3, 1>>(p, stream);  // 8 warps of 64 x 32
      case kTune3: return launch_mma<MmaTraits<T, 64, 64, 128, 4, 2, 4, 1>>(p, stream);  // 8 warps, 4 stages
      default: break;
    }
  }
  return Status::Invalid("spmm: tensor-core variant " + std::to_string(variant) + " is not built for this block shape");
}

template <typename T>
Status run_dense_mma(const LinearParams<T, DenseSource<T>>& p_in, cudaStream_t stream) {
  LinearParams<T, DenseSource<T>> p = p_in;
  if (p.n <= 16) {
    using Tr = MmaTraits<T, 64, 64, 16, 1, 4, 4, 1>;
    p.num_tiles_m = (p.m + Tr::kBM - 1) / Tr::kBM;
    p.src.k_tiles = (p.k + Tr::kBK - 1) / Tr::kBK;
    return launch_mma<Tr>(p, stream);
  }
  using Tr = MmaTraits<T, 128, 32, 128, 2, 2, 4, 1>;  // warp tile 64 x 64
  p.num_tiles_m = (p.m + Tr::kBM - 1) / Tr::kBM;
  p.src.k_tiles = (p.k + Tr::kBK - 1) / Tr::kBK;
  return launch_mma<Tr>(p, stream);
}

template <typename T, class Src>
Status run_simt(LinearParams<T, Src> p, int bm, int bk, cudaStream_t stream) {
  int grid = 0;
  SK_RETURN_IF_ERROR(grid_size(p.num_tiles_m, p.n, kSimtTokens, &grid));
  if (grid == 0) return Status::Ok();
  switch (bm) {
    case 16: simt_kernel<T, 16, Src><<<grid, kSimtThreads, 0, stream>>>(p, bk); break;
    case 32: simt_kernel<T, 32, Src><<<grid, kSimtThreads, 0, stream>>>(p, bk); break;
    case 64: simt_kernel<T, 64, Src><<<grid, kSimtThreads, 0, stream>>>(p, bk); break;
    default: return Status::Internal("spmm: SIMT tile height " + std::to_string(bm));
  }
  SK_CUDA_LAUNCH_CHECK("spmm simt_kernel");
  return Status::Ok();
}

template <typename T>
Status run_bsr_gemv(const LinearParams<T, BsrSource<T>>& p, int bm, int bk, bool vec, cudaStream_t stream) {
  if (p.num_tiles_m == 0) return Status::Ok();
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kWarps = kGemvThreads / 32;
  const int64_t grid = (static_cast<int64_t>(p.num_tiles_m) * bm + kWarps - 1) / kWarps;  // one warp per row
  if (grid > INT_MAX) return Status::Error(ErrorCode::kShape, "spmm: too many rows for one GEMV grid");
  const int cpr = vec ? bk / kVec : bk;  // power of two: bk in {16, 32, 64}
  int log2_cpr = 0;
  while ((1 << log2_cpr) < cpr) ++log2_cpr;
  if (vec)
    bsr_gemv_kernel<T, kVec><<<static_cast<int>(grid), kGemvThreads, 0, stream>>>(p, bm, bk, log2_cpr);
  else
    bsr_gemv_kernel<T, 1><<<static_cast<int>(grid), kGemvThreads, 0, stream>>>(p, bm, bk, log2_cpr);
  SK_CUDA_LAUNCH_CHECK("spmm bsr_gemv_kernel");
  return Status::Ok();
}

template <typename T>
Status run_dense_gemv(const LinearParams<T, DenseSource<T>>& p, bool vec, cudaStream_t stream) {
  constexpr int kRowsPerCta = kGemvThreads / 32;
  const int grid = (p.m + kRowsPerCta - 1) / kRowsPerCta;
  if (grid == 0) return Status::Ok();
  if (vec)
    dense_gemv_kernel<T, 16 / sizeof(T)><<<grid, kGemvThreads, 0, stream>>>(p);
  else
    dense_gemv_kernel<T, 1><<<grid, kGemvThreads, 0, stream>>>(p);
  SK_CUDA_LAUNCH_CHECK("spmm dense_gemv_kernel");
  return Status::Ok();
}

}  // namespace sk::cuda::spmm_kernels
