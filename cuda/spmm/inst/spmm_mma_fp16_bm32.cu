// One instantiation group of the tensor-core SpMM: fp16, block rows of 32, every block width.
#include "cuda/spmm/spmm_launch.cuh"

namespace sk::cuda::spmm_kernels {
template Status run_bsr_mma<__half, 32, 16>(const LinearParams<__half, BsrSource<__half>>&, cudaStream_t, int);
template Status run_bsr_mma<__half, 32, 32>(const LinearParams<__half, BsrSource<__half>>&, cudaStream_t, int);
template Status run_bsr_mma<__half, 32, 64>(const LinearParams<__half, BsrSource<__half>>&, cudaStream_t, int);
}  // namespace sk::cuda::spmm_kernels
