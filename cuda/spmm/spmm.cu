// sk::cuda::spmm and sk::cuda::dense_linear (contract: src/ops/spmm.h): checks, then the path choice
//   n == 1                                   -> GEMV (no tensor cores, 16-byte loads when aligned)
//   float32                                  -> SIMT kernel
//   float16 / bfloat16, X rows 16-byte aligned -> tensor cores (mma.sync m16n8k16, cp.async pipeline)
//   float16 / bfloat16 otherwise             -> SIMT kernel
// and the dtype x block-shape switch into the instantiations of inst/*.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/common/check.cuh"
#include "cuda/spmm/spmm_launch.h"
#include "cuda/spmm/spmm_variants.h"
#include "ops/spmm.h"

namespace sk::cuda {

namespace {

using spmm_kernels::BsrSource;
using spmm_kernels::DenseSource;
using spmm_kernels::LinearParams;

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename T>
bool pair_stores(const void* y, int64_t ldy) {
  return ldy % 2 == 0 && (reinterpret_cast<uintptr_t>(y) % (2 * sizeof(T))) == 0;
}

template <typename T>
LinearParams<T, BsrSource<T>> bsr_params(const SpmmParams& p) {
  LinearParams<T, BsrSource<T>> lp;
  lp.x = static_cast<const T*>(p.x);
  lp.y = static_cast<T*>(p.y);
  lp.bias = static_cast<const T*>(p.bias);
  lp.ldx = p.x_row_stride, lp.ldy = p.y_row_stride;
  lp.n = p.n, lp.m = p.w.rows, lp.k = p.w.cols;
  lp.activation = static_cast<int32_t>(p.activation);
  lp.num_tiles_m = p.w.mb;
  lp.y_pairs = pair_stores<T>(p.y, p.y_row_stride);
  lp.src.values = static_cast<const T*>(p.w.values);
  lp.src.row_ptr = p.w.row_ptr, lp.src.col_idx = p.w.col_idx, lp.src.row_order = p.w.row_order;
  lp.src.mb = p.w.mb, lp.src.kb = p.w.kb, lp.src.nnzb = static_cast<int32_t>(p.w.nnzb);
  return lp;
}

template <typename T>
Status run_bsr_tensor_cores(const LinearParams<T, BsrSource<T>>& lp, int bm, int bk, cudaStream_t s, int variant) {
  switch (bm * 100 + bk) {
    case 1616: return spmm_kernels::run_bsr_mma<T, 16, 16>(lp, s, variant);
    case 1632: return spmm_kernels::run_bsr_mma<T, 16, 32>(lp, s, variant);
    case 1664: return spmm_kernels::run_bsr_mma<T, 16, 64>(lp, s, variant);
    case 3216: return spmm_kernels::run_bsr_mma<T, 32, 16>(lp, s, variant);
    case 3232: return spmm_kernels::run_bsr_mma<T, 32, 32>(lp, s, variant);
    case 3264: return spmm_kernels::run_bsr_mma<T, 32, 64>(lp, s, variant);
    case 6416: return spmm_kernels::run_bsr_mma<T, 64, 16>(lp, s, variant);
    case 6432: return spmm_kernels::run_bsr_mma<T, 64, 32>(lp, s, variant);
    case 6464: return spmm_kernels::run_bsr_mma<T, 64, 64>(lp, s, variant);
    default: return Status::Internal("spmm: block shape " + std::to_string(bm) + "x" + std::to_string(bk));
  }
}

template <typename T>
Status dispatch_bsr(const SpmmParams& p, cudaStream_t s, int variant) {
  const LinearParams<T, BsrSource<T>> lp = bsr_params<T>(p);
  const BlockCsrView& w = p.w;
  constexpr int kVec = 16 / sizeof(T);
  if (p.n == 1 && variant == spmm_kernels::kAuto) {
    const bool vec = aligned16(p.x) && aligned16(w.values) && w.cols % kVec == 0;
    return spmm_kernels::run_bsr_gemv<T>(lp, w.bm, w.bk, vec, s);
  }
  if constexpr (std::is_same_v<T, float>) {
    if (variant != spmm_kernels::kAuto) return Status::Invalid("spmm: tensor-core variants need float16 or bfloat16");
    return spmm_kernels::run_simt(lp, w.bm, w.bk, s);
  } else {
    // cp.async moves 16-byte chunks: X rows must start on 16 bytes and K must cover whole chunks.
    const bool tensor_cores =
        w.cols % 8 == 0 && p.x_row_stride % 8 == 0 && aligned16(p.x) && (w.nnzb == 0 || aligned16(w.values));
    if (!tensor_cores) {
      if (variant != spmm_kernels::kAuto) return Status::Invalid("spmm: tensor-core variants need 16-byte aligned X rows");
      return spmm_kernels::run_simt(lp, w.bm, w.bk, s);
    }
    return run_bsr_tensor_cores<T>(lp, w.bm, w.bk, s, variant);
  }
}

template <typename T>
Status dispatch_dense(const DenseLinearParams& p, cudaStream_t s) {
  LinearParams<T, DenseSource<T>> lp;
  lp.x = static_cast<const T*>(p.x);
  lp.y = static_cast<T*>(p.y);
  lp.bias = static_cast<const T*>(p.bias);
  lp.ldx = p.x_row_stride, lp.ldy = p.y_row_stride;
  lp.n = p.n, lp.m = p.m, lp.k = p.k;
  lp.activation = static_cast<int32_t>(p.activation);
  lp.y_pairs = pair_stores<T>(p.y, p.y_row_stride);
  lp.src.w = static_cast<const T*>(p.w);
  lp.src.ldw = p.w_row_stride, lp.src.m = p.m, lp.src.k = p.k;
  constexpr int kVec = 16 / sizeof(T);
  if (p.n == 1) {
    const bool vec = aligned16(p.x) && aligned16(p.w) && p.k % kVec == 0 && p.w_row_stride % kVec == 0;
    return spmm_kernels::run_dense_gemv<T>(lp, vec, s);
  }
  const bool tensor_cores = !std::is_same_v<T, float> && p.k % 8 == 0 && p.x_row_stride % 8 == 0 &&
                            p.w_row_stride % 8 == 0 && aligned16(p.x) && aligned16(p.w);
  if (tensor_cores) {
    if constexpr (!std::is_same_v<T, float>) return spmm_kernels::run_dense_mma<T>(lp, s);
  }
  // SIMT: 64-row output tiles, K tiles of 32 columns.
  lp.num_tiles_m = (p.m + 63) / 64;
  lp.src.k_tiles = (p.k + 31) / 32;
  return spmm_kernels::run_simt(lp, 64, 32, s);
}

}  // namespace

Status spmm_variant(const SpmmParams& p, GpuStream stream, int variant) {
  SK_RETURN_IF_ERROR(check_spmm_params(p, /*for_cuda=*/true));
  if (variant < 0 || variant >= spmm_kernels::kNumVariants)
    return Status::Invalid("spmm: variant " + std::to_string(variant) + " is out of range");
  if (p.n == 0 || p.w.rows == 0) return Status::Ok();
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::kFloat32: return dispatch_bsr<float>(p, s, variant);
    case DType::kFloat16: return dispatch_bsr<__half>(p, s, variant);
    case DType::kBFloat16: return dispatch_bsr<__nv_bfloat16>(p, s, variant);
    default: return Status::Invalid("spmm: unsupported dtype");
  }
}

Status spmm(const SpmmParams& p, GpuStream stream) { return spmm_variant(p, stream, spmm_kernels::kAuto); }

Status dense_linear(const DenseLinearParams& p, GpuStream stream) {
  SK_RETURN_IF_ERROR(check_dense_linear_params(p, /*for_cuda=*/true));
  if (p.n == 0 || p.m == 0) return Status::Ok();
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::kFloat32: return dispatch_dense<float>(p, s);
    case DType::kFloat16: return dispatch_dense<__half>(p, s);
    case DType::kBFloat16: return dispatch_dense<__nv_bfloat16>(p, s);
    default: return Status::Invalid("dense_linear: unsupported dtype");
  }
}

}  // namespace sk::cuda
