// SIMT and GEMV paths for every dtype, block-CSR and dense weights.
#include "cuda/spmm/spmm_launch.cuh"

namespace sk::cuda::spmm_kernels {
#define SK_SPMM_SIMT_GEMV(T)                                                                     \
  template Status run_simt<T, BsrSource<T>>(LinearParams<T, BsrSource<T>>, int, int, cudaStream_t);     \
  template Status run_simt<T, DenseSource<T>>(LinearParams<T, DenseSource<T>>, int, int, cudaStream_t); \
  template Status run_bsr_gemv<T>(const LinearParams<T, BsrSource<T>>&, int, int, bool, cudaStream_t);   \
  template Status run_dense_gemv<T>(const LinearParams<T, DenseSource<T>>&, bool, cudaStream_t);
SK_SPMM_SIMT_GEMV(float)
SK_SPMM_SIMT_GEMV(__half)
SK_SPMM_SIMT_GEMV(__nv_bfloat16)
#undef SK_SPMM_SIMT_GEMV
}  // namespace sk::cuda::spmm_kernels
