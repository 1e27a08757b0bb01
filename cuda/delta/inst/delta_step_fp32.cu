// One weight dtype of the DeltaLinear step kernel, all four stream tiers (split per dtype so the two
// build cores compile the three TUs in parallel).
#include "cuda/delta/delta_launch.cuh"

namespace sk::cuda::delta {
template Status run_delta_step<float, 1>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<float, 4>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<float, 8>(const DeltaStepParams&, int, cudaStream_t, size_t*);
template Status run_delta_step<float, 16>(const DeltaStepParams&, int, cudaStream_t, size_t*);
}  // namespace sk::cuda::delta
