// Host-side helpers of the PBS launchers: stream-ordered scratch, the dynamic shared-memory opt-in and
// the device's SM count. Everything returns sk::Status.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "cuda/common/check.cuh"

namespace sk::cuda::pbs {

/// One cudaMallocAsync allocation on `stream`, released with cudaFreeAsync on the same stream when the
/// object goes out of scope: later kernels enqueued before the free still see valid memory (stream
/// order), and every error path releases it. A failing cudaFreeAsync cannot be reported from a
/// destructor; it leaves a sticky error that the stream's next check reports.
class StreamScratch {
 public:
  explicit StreamScratch(cudaStream_t stream) : stream_(stream) {}
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  ~StreamScratch() {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
  }
  /// Allocates `bytes` (rounded up to 256 per carve) and hands out 256-byte aligned sub-buffers.
  Status alloc(size_t bytes) {
    SK_CUDA_TRY(cudaMallocAsync(&ptr_, bytes == 0 ? 256 : bytes, stream_));
    return Status::Ok();
  }
  template <typename T>
  T* carve(size_t count) {
    T* p = reinterpret_cast<T*>(static_cast<char*>(ptr_) + used_);
    used_ += round_up(count * sizeof(T));
    return p;
  }
  static size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

 private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
  size_t used_ = 0;
};

/// Raises the kernel's dynamic shared-memory limit to `bytes` (needed above 48 KB) after checking the
/// device can give that much to one block.
template <typename Kernel>
Status set_dynamic_smem(Kernel kernel, int bytes, const char* name) {
  int dev = 0, optin = 0;
  SK_CUDA_TRY(cudaGetDevice(&dev));
  SK_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (bytes > optin)
    return Status::Invalid(std::string(name) + ": needs " + std::to_string(bytes) + " bytes of shared memory per block, device allows " +
                           std::to_string(optin));
  if (bytes > 48 * 1024) SK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  return Status::Ok();
}

inline Status device_sm_count(int* sms) {
  int dev = 0;
  SK_CUDA_TRY(cudaGetDevice(&dev));
  SK_CUDA_TRY(cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev));
  return Status::Ok();
}

}  // namespace sk::cuda::pbs
