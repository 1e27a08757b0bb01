// The CUDA runtime calls the C++ runtime needs, behind an interface free of CUDA types, so src/ compiles
// without CUDA headers. Implemented in cuda/runtime/gpu_api.cc when built with CUDA (SK_WITH_CUDA=1);
// without CUDA, src/runtime/gpu_api_none.cc answers "built without CUDA" everywhere.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace sk::gpu {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_bytes = 0, free_bytes = 0;
  int multiprocessors = 0;
  bool has_kernel_image = false;  // our fatbin has code this device can run
};

struct ProbeResult {
  bool built_with_cuda = false;
  bool usable = false;        // at least one device with compute capability >= 7.5 and a kernel image
  std::string reason;         // why not usable, in words (empty when usable)
  std::string reason_code;    // stable id: built-without-cuda | no-driver | driver-too-old | no-device |
                              // no-kernel-image | init-failed
  int driver_version = 0;     // cudaDriverGetVersion (e.g. 13000), 0 when no driver
  int runtime_version = 0;    // cudaRuntimeGetVersion of the linked (static) runtime
  std::vector<DeviceInfo> devices;
  std::string built_architectures;  // e.g. "80;86;89;90;90-virtual"
  // CUDA module loading in effect: "eager" | "lazy" | "unknown" (cuModuleGetLoadingMode), and who chose it:
  // "sparse-kernels" (CUDA_MODULE_LOADING was unset, so the probe set EAGER) | "environment" (the user's) |
  // "cuda-default" (unset and left so: a GPU without SASS in this binary, or NVML not found).
  std::string module_loading = "unknown";
  std::string module_loading_source;
};

// Probes once per process and caches the answer (CUDA init is slow and its failures are final).
const ProbeResult& probe();
bool built_with_cuda();
// Whether probe() has run in this process (device "cpu" must never cause it; tested).
bool probed();

Status set_device(int device);
Status stream_create(int device, void** stream);
void stream_destroy(void* stream);
Status stream_synchronize(void* stream);
Status stream_wait_event(void* stream, void* event);

// Events for ordering and completion: blocking-sync (the completion thread sleeps instead of spinning).
Status event_create(void** event, bool timing);
void event_destroy(void* event);
Status event_record(void* event, void* stream);
Status event_synchronize(void* event);
Status event_query(void* event);  // OK when complete, kCuda cudaErrorNotReady while pending
Status event_elapsed_ms(float* ms, void* start, void* end);

// Stream-ordered allocation from the device's default memory pool.
Status malloc_async(void** ptr, size_t bytes, void* stream);
Status free_async(void* ptr, void* stream);
Status pool_trim(int device);
size_t pool_reserved_bytes(int device);
Status mem_get_info(int device, size_t* free_bytes, size_t* total_bytes);

Status memcpy_h2d(void* dst, const void* src, size_t bytes, void* stream);
Status memcpy_d2h(void* dst, const void* src, size_t bytes, void* stream);  // returns once the copy is done
Status memcpy_d2d(void* dst, const void* src, size_t bytes, void* stream);
Status memset_async(void* dst, int value, size_t bytes, void* stream);

// Element-type conversion on the device (float32 <-> float16 <-> bfloat16), n elements.
Status convert_async(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t n, void* stream);

// A kernel that writes out of bounds on purpose; only for the fault-handling tests.
Status launch_fault_for_testing(void* stream);
// A kernel that spins for about `ms` milliseconds; for ordering/concurrency tests.
Status launch_spin_for_testing(void* stream, double ms);

}  // namespace sk::gpu
