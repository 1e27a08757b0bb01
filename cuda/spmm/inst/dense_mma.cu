// Tensor-core dense linear (the 'dense' backend), float16 and bfloat16.
#include "cuda/spmm/spmm_launch.cuh"

namespace sk::cuda::spmm_kernels {
template Status run_dense_mma<__half>(const LinearParams<__half, DenseSource<__half>>&, cudaStream_t);
template Status run_dense_mma<__nv_bfloat16>(const LinearParams<__nv_bfloat16, DenseSource<__nv_bfloat16>>&,
                                             cudaStream_t);
}  // namespace sk::cuda::spmm_kernels
