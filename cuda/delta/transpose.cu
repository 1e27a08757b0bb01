// W [M, K] -> Wt [K, wt_ld] on the GPU, run once when a DeltaLinear is built. Classic 32 x 32 shared-memory
// tile transpose (both the reads of W rows and the writes of Wt rows are coalesced); the grid covers the
// padded width wt_ld so the padding columns are written as zeros in the same pass.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/check.cuh"
#include "ops/delta.h"

namespace sk::cuda {

namespace {

constexpr int kTile = 32;
constexpr int kRowsPerPass = 8;  // block (32, 8): each thread moves 4 elements

template <typename T>
__global__ void transpose_kernel(const T* __restrict__ w, int32_t M, int32_t K, T* __restrict__ wt, int64_t ld) {
  __shared__ T tile[kTile][kTile + 1];  // +1: column reads hit 32 different banks
  const int64_t k_base = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t m_base = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {  // read W rows m, columns k
    const int64_t m = m_base + r, k = k_base + threadIdx.x;
    tile[r][threadIdx.x] = (m < M && k < K) ? w[m * K + k] : T(0);
  }
  __syncthreads();
  for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {  // write Wt rows k, columns m (padding: 0)
    const int64_t k = k_base + r, m = m_base + threadIdx.x;
    if (k < K && m < ld) wt[k * ld + m] = tile[threadIdx.x][r];
  }
}

}  // namespace

Status delta_transpose_weights(const void* w, DType dtype, int32_t M, int32_t K, void* wt, int64_t wt_ld,
                               GpuStream stream) {
  if (!is_valid_dtype(static_cast<int>(dtype)) || !is_float_dtype(dtype)) {
    return Status::Invalid("delta transpose: weights must be float32, float16 or bfloat16");
  }
  if (M < 0 || K < 0 || wt_ld < M) return Status::Error(ErrorCode::kShape, "delta transpose: bad M, K or wt_ld");
  if (K == 0) return Status::Ok();
  if (wt == nullptr || (M > 0 && w == nullptr)) return Status::Invalid("delta transpose: null pointer");
  const dim3 grid(static_cast<unsigned>((wt_ld + kTile - 1) / kTile), static_cast<unsigned>((K + kTile - 1) / kTile));
  if (grid.x > 2147483647u || grid.y > 65535u) return Status::Error(ErrorCode::kShape, "delta transpose: too large");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::kFloat32) {
    transpose_kernel<uint32_t><<<grid, dim3(kTile, kRowsPerPass), 0, s>>>(static_cast<const uint32_t*>(w), M, K,
                                                                         static_cast<uint32_t*>(wt), wt_ld);
  } else {
    transpose_kernel<uint16_t><<<grid, dim3(kTile, kRowsPerPass), 0, s>>>(static_cast<const uint16_t*>(w), M, K,
                                                                         static_cast<uint16_t*>(wt), wt_ld);
  }
  SK_CUDA_LAUNCH_CHECK("delta transpose_kernel");
  return Status::Ok();
}

}  // namespace sk::cuda
