// Entry points between the dispatcher (spmm.cu) and the instantiation TUs (inst/*.cu). Declarations only:
// the dispatcher compiles no kernel, each inst file compiles a few (parallel builds, small TUs).
#pragma once
#include <cuda_runtime.h>

#include "core/status.h"
#include "cuda/spmm/tile_io.cuh"

namespace sk::cuda::spmm_kernels {

// Tensor-core configurations. kAuto picks kSmallN for n <= 16, else kLargeN. The kTune* variants exist for
// bfloat16 32x32 and 64x64 blocks only (the timing sweep in bench/native/spmm_check.cu); elsewhere they
// return kInvalidArgument.
enum MmaVariant : int { kAuto = 0, kSmallN = 1, kLargeN = 2, kTune1 = 3, kTune2 = 4, kTune3 = 5, kNumVariants = 6 };

template <typename T, int kBM, int kBK>
Status run_bsr_mma(const LinearParams<T, BsrSource<T>>& p, cudaStream_t stream, int variant);

template <typename T>
Status run_dense_mma(const LinearParams<T, DenseSource<T>>& p, cudaStream_t stream);

// SIMT path (any alignment, float32 too): bm in {16, 32, 64} is the output tile height, bk <= 64 the K tile.
template <typename T, class Src>
Status run_simt(LinearParams<T, Src> p, int bm, int bk, cudaStream_t stream);

// GEMV (n == 1). `vec`: 16-byte loads allowed (aligned bases, K and row strides multiples of 16 bytes).
template <typename T>
Status run_bsr_gemv(const LinearParams<T, BsrSource<T>>& p, int bm, int bk, bool vec, cudaStream_t stream);
template <typename T>
Status run_dense_gemv(const LinearParams<T, DenseSource<T>>& p, bool vec, cudaStream_t stream);

}  // namespace sk::cuda::spmm_kernels
