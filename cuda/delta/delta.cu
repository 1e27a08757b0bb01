// sk::cuda::delta_step / delta_workspace_bytes: host checks, then the weight dtype x stream tier switch
// into run_delta_step (instantiated in inst/delta_step_*.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>

#include "cuda/common/check.cuh"
#include "ops/delta.h"

namespace sk::cuda {

namespace delta {
template <typename TW, int kStreams>
Status run_delta_step(const DeltaStepParams& p, int num_sms, cudaStream_t stream, size_t* workspace_bytes);
}  // namespace delta

namespace {

// Stream slots per CTA: the smallest tier that holds every row of the step, 16 beyond (then each group
// of 16 rows is its own slice of the grid and re-reads the fired rows of Wt).
template <typename TW>
Status dispatch_tier(const DeltaStepParams& p, int num_sms, cudaStream_t stream, size_t* workspace_bytes) {
  if (p.num_rows <= 1) return delta::run_delta_step<TW, 1>(p, num_sms, stream, workspace_bytes);
  if (p.num_rows <= 4) return delta::run_delta_step<TW, 4>(p, num_sms, stream, workspace_bytes);
  if (p.num_rows <= 8) return delta::run_delta_step<TW, 8>(p, num_sms, stream, workspace_bytes);
  return delta::run_delta_step<TW, 16>(p, num_sms, stream, workspace_bytes);
}

Status dispatch(const DeltaStepParams& p, cudaStream_t stream, size_t* workspace_bytes) {
  int device = 0;
  SK_CUDA_TRY(cudaGetDevice(&device));
  // SM count per device, cached: the grid shape depends on it and the query is not free on every step.
  static std::atomic<int> sm_cache[64];
  int num_sms = device < 64 ? sm_cache[device].load(std::memory_order_relaxed) : 0;
  if (num_sms == 0) {
    SK_CUDA_TRY(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
    if (device < 64) sm_cache[device].store(num_sms, std::memory_order_relaxed);
  }
  switch (p.w.wt_dtype) {
    case DType::kFloat16: return dispatch_tier<__half>(p, num_sms, stream, workspace_bytes);
    case DType::kBFloat16: return dispatch_tier<__nv_bfloat16>(p, num_sms, stream, workspace_bytes);
    default: return dispatch_tier<float>(p, num_sms, stream, workspace_bytes);
  }
}

}  // namespace

Status delta_step(const DeltaStepParams& p, GpuStream stream) {
  SK_RETURN_IF_ERROR(check_delta_step(p, /*for_cuda=*/true));
  if (p.num_rows == 0) return Status::Ok();
  return dispatch(p, static_cast<cudaStream_t>(stream), nullptr);
}

Status delta_workspace_bytes(const DeltaStepParams& p, size_t* bytes) {
  if (bytes == nullptr) return Status::Invalid("delta_workspace_bytes: null output");
  *bytes = 0;
  SK_RETURN_IF_ERROR(check_delta_step(p, /*for_cuda=*/true));
  if (p.num_rows == 0) return Status::Ok();
  return dispatch(p, nullptr, bytes);
}

}  // namespace sk::cuda
