// DeltaLinear state maintenance on the GPU: reset(ids) and invalidate().
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/check.cuh"
#include "ops/delta.h"

namespace sk::cuda {

namespace {

// Ids come from device memory the host has not read: out-of-range ones are skipped.
__global__ void reset_kernel(uint8_t* initialized, int32_t S, const int32_t* ids, int32_t n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    const int32_t s = ids[i];
    if (s >= 0 && s < S) initialized[s] = 0;
  }
}

}  // namespace

Status delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n, GpuStream stream) {
  SK_RETURN_IF_ERROR(check_delta_reset(st, stream_ids, n, /*for_cuda=*/true));
  if (n == 0) return Status::Ok();
  reset_kernel<<<(n + 255) / 256, 256, 0, static_cast<cudaStream_t>(stream)>>>(st.initialized, st.num_streams,
                                                                               stream_ids, n);
  SK_CUDA_LAUNCH_CHECK("delta reset_kernel");
  return Status::Ok();
}

Status delta_invalidate(const DeltaState& st, int32_t M, GpuStream stream) {
  if (st.num_streams < 0 || M < 0) return Status::Error(ErrorCode::kShape, "delta invalidate: negative size");
  if (st.sync == nullptr || (st.num_streams > 0 && st.initialized == nullptr)) {
    return Status::Invalid("delta invalidate: null state buffer");
  }
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (st.num_streams > 0) SK_CUDA_TRY(cudaMemsetAsync(st.initialized, 0, static_cast<size_t>(st.num_streams), s));
  // Steps leave the counters at zero; clearing them here covers a fresh allocation (and a state whose
  // last step was cut short by a device fault).
  SK_CUDA_TRY(cudaMemsetAsync(st.sync, 0, static_cast<size_t>(delta_sync_ints(st.num_streams, M)) * sizeof(int32_t), s));
  return Status::Ok();
}

}  // namespace sk::cuda
