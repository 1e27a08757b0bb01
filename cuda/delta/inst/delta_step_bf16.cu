// One weight dtype of the DeltaLinear step kernel, all four stream tiers (split per dtype so the two
// build cores compile the three TUs in parallel).
#include "cuda/delta/delta_launch.cuh"

namespace sk::cuda::delta {
template Status run_delta_step<__nv_bfloat16, 1>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<__nv_bfloat16, 4>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<__nv_bfloat16, 8>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<__nv_bfloat16, 16>(const DeltaStepParams&, int, cudaStream_t, size_t*);
}  // namespace sk::cuda::delta
