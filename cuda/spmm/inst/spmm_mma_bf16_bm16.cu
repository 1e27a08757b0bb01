// One instantiation group of the tensor-core SpMM: bf16, block rows of 16, every block width.
#include "cuda/spmm/spmm_launch.cuh"

namespace sk::cuda::spmm_kernels {
template Status run_bsr_mma<__nv_bfloat16, 16, 16>(const LinearParams<__nv_bfloat16, BsrSource<__nv_bfloat16>>&, cudaStream_t, int);
template Status run_bsr_mma<__nv_bfloat16, 16, 32>(const LinearParams<__nv_bfloat16, BsrSource<__nv_bfloat16>>&, cudaStream_t, int);
template Status run_bsr_mma<__nv_bfloat16, 16, 64>(const LinearParams<__nv_bfloat16, BsrSource<__nv_bfloat16>>&, cudaStream_t, int);
}  // namespace sk::cuda::spmm_kernels
