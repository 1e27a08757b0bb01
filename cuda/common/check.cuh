// CUDA return codes -> sk::Status. Every runtime call and every launch in cuda/ goes through these:
// nothing below the bindings prints, throws or exits.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/status.h"

namespace sk::cuda {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  Status s;
  s.code = (err == cudaErrorMemoryAllocation) ? ErrorCode::kOutOfMemory : ErrorCode::kCuda;
  s.cuda_error = cudaGetErrorName(err);
  s.cuda_error_code = static_cast<int>(err);
  s.message = std::string(what) + ": " + cudaGetErrorString(err);
  return s;
}

// Checks the launch that just happened (configuration errors, missing kernel image). Device faults
// surface later, at the stream's completion, as sticky errors.
inline Status launch_status(const char* kernel) { return cuda_status(cudaGetLastError(), kernel); }

}  // namespace sk::cuda

#define SK_CUDA_TRY(expr)                                                        \
  do {                                                                           \
    const cudaError_t sk_err_ = (expr);                                          \
    if (sk_err_ != cudaSuccess) return ::sk::cuda::cuda_status(sk_err_, #expr);  \
  } while (0)

#define SK_CUDA_LAUNCH_CHECK(name)                                   \
  do {                                                               \
    ::sk::Status sk_launch_ = ::sk::cuda::launch_status(name);       \
    if (!sk_launch_.ok()) return sk_launch_;                         \
  } while (0)
