// sk::gpu over the CUDA runtime (static cudart). Loading the addon never touches CUDA: the first probe()
// does, so `device: "cpu"` users never see CUDA initialisation (or its failure).
#include "runtime/gpu_api.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include "cuda/common/check.cuh"
#include "cuda/runtime/runtime_kernels.h"

#ifndef SK_CUDA_ARCHS
#define SK_CUDA_ARCHS "unknown"
#endif

namespace sk::gpu {

using sk::cuda::cuda_status;

namespace {

std::string version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// Keep freed blocks cached in the pool (allocation is then a pointer bump on the stream); memory goes
// back to the device on ReleaseCachedMemory() and when an allocation fails.
void configure_pool_once(int device) {
  static std::mutex mu;
  static bool configured[64] = {};
  std::lock_guard<std::mutex> lock(mu);
  if (device < 0 || device >= 64 || configured[device]) return;
  configured[device] = true;
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t threshold = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  }
}

// Lazy module loading (CUDA's default since 12.2) loads a kernel at its first launch, and loading may
// need the whole context to be idle: the first launch of each of our ~450 kernels while the GPU is busy
// then blocks the launching thread (the event loop) until the running work ends. Eager loading does it
// all at CUDA initialisation instead (tens of milliseconds, once). The driver reads the variable at
// cuInit, so it only takes effect when this probe is the process's first CUDA call, and a value the user
// set (CUDA_MODULE_LOADING=LAZY to keep lazy loading) is left alone.
//
// Only where every GPU has machine code (SASS) in this binary: a GPU that would run our PTX (a newer
// architecture) would JIT-compile every kernel at initialisation, minutes instead of milliseconds.
// NVML answers the compute capabilities without initialising CUDA (which would fix the loading mode).

bool built_with_sass_for(int cc) {
  const std::string archs = SK_CUDA_ARCHS;  // "80-real,86-real,89-real,90-real,90-virtual" or "90"
  size_t start = 0;
  while (start <= archs.size()) {
    size_t end = archs.find_first_of(",;", start);
    if (end == std::string::npos) end = archs.size();
    const std::string tok = archs.substr(start, end - start);
    start = end + 1;
    if (tok.empty() || tok.find("virtual") != std::string::npos) continue;
    if (std::atoi(tok.c_str()) == cc) return true;  // "90", "90-real", "90a-real"
  }
  return false;
}

bool every_gpu_has_sass() {
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (nvml == nullptr) return false;
  // nvmlReturn_t is an int enum (0 = NVML_SUCCESS); nvmlDevice_t an opaque pointer.
  using InitFn = int (*)();
  using CountFn = int (*)(unsigned*);
  using HandleFn = int (*)(unsigned, void**);
  using CcFn = int (*)(void*, int*, int*);
  auto init = reinterpret_cast<InitFn>(dlsym(nvml, "nvmlInit_v2"));
  auto count = reinterpret_cast<CountFn>(dlsym(nvml, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<HandleFn>(dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2"));
  auto cc = reinterpret_cast<CcFn>(dlsym(nvml, "nvmlDeviceGetCudaComputeCapability"));
  auto shutdown = reinterpret_cast<InitFn>(dlsym(nvml, "nvmlShutdown"));
  bool all = false;
  if (init && count && handle && cc && shutdown && init() == 0) {
    unsigned n = 0;
    all = count(&n) == 0 && n > 0;
    for (unsigned i = 0; all && i < n; ++i) {
      void* dev = nullptr;
      int major = 0, minor = 0;
      all = handle(i, &dev) == 0 && cc(dev, &major, &minor) == 0 && built_with_sass_for(major * 10 + minor);
    }
    shutdown();
  }
  dlclose(nvml);
  return all;
}

void default_to_eager_module_loading(ProbeResult* r) {
  if (std::getenv("CUDA_MODULE_LOADING") != nullptr) {
    r->module_loading_source = "environment";
    return;
  }
  if (!every_gpu_has_sass()) {
    r->module_loading_source = "cuda-default";  // PTX JIT (or no NVML to ask): CUDA's lazy default
    return;
  }
  setenv("CUDA_MODULE_LOADING", "EAGER", 0);
  r->module_loading_source = "sparse-kernels";
}

std::string query_module_loading() {
  using GetLoadingMode = int (*)(int*);  // CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode*)
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  if (cudaGetDriverEntryPointByVersion("cuModuleGetLoadingMode", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess || fn == nullptr) {
    cudaGetLastError();
    return "unknown";
  }
  int mode = 0;
  if (reinterpret_cast<GetLoadingMode>(fn)(&mode) != 0) return "unknown";
  return mode == 0x1 ? "eager" : mode == 0x2 ? "lazy" : "unknown";  // CU_MODULE_EAGER_LOADING / _LAZY_
}

ProbeResult run_probe() {
  ProbeResult r;
  r.built_with_cuda = true;
  default_to_eager_module_loading(&r);
  r.built_architectures = SK_CUDA_ARCHS;
  cudaRuntimeGetVersion(&r.runtime_version);
  cudaDriverGetVersion(&r.driver_version);
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky error so it does not leak into later calls
    if (err == cudaErrorInsufficientDriver) {
      if (r.driver_version == 0) {
        r.reason_code = "no-driver";
        r.reason = "no NVIDIA driver was found (libcuda.so.1 could not be loaded)";
      } else {
        r.reason_code = "driver-too-old";
        r.reason = "the NVIDIA driver supports CUDA " + version_string(r.driver_version) +
                   " but this binary needs CUDA " + version_string(r.runtime_version) +
                   " (driver >= 580 for CUDA 13); update the driver";
      }
    } else if (err == cudaErrorNoDevice) {
      r.reason_code = "no-device";
      r.reason = "the NVIDIA driver is installed but reports no CUDA device";
    } else {
      r.reason_code = "init-failed";
      r.reason = std::string("CUDA initialisation failed: ") + cudaGetErrorName(err) + " (" +
                 cudaGetErrorString(err) + ")";
    }
    return r;
  }
  if (count == 0) {
    r.reason_code = "no-device";
    r.reason = "the NVIDIA driver is installed but reports no CUDA device";
    return r;
  }
  for (int i = 0; i < count; ++i) {
    DeviceInfo d;
    d.index = i;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    d.name = prop.name;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    d.total_bytes = prop.totalGlobalMem;
    if (cudaSetDevice(i) == cudaSuccess) {
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_bytes = free_b;
      d.has_kernel_image = sk::cuda::probe_kernel_image();
    }
    cudaGetLastError();
    r.devices.push_back(d);
  }
  r.module_loading = query_module_loading();
  for (const auto& d : r.devices) {
    if (d.has_kernel_image) {
      r.usable = true;
      break;
    }
  }
  if (!r.usable) {
    r.reason_code = "no-kernel-image";
    const auto& d = r.devices.empty() ? DeviceInfo{} : r.devices.front();
    r.reason = "this binary has no kernels for " + d.name + " (compute capability " + std::to_string(d.cc_major) +
               "." + std::to_string(d.cc_minor) + "); it was built for " + r.built_architectures +
               ". Rebuild from source with SPARSE_KERNELS_CUDA_ARCHS set for this GPU";
  }
  return r;
}

}  // namespace

std::atomic<bool> g_probed{false};

const ProbeResult& probe() {
  static const ProbeResult r = [] {
    g_probed = true;
    return run_probe();
  }();
  return r;
}

bool probed() { return g_probed.load(); }

bool built_with_cuda() { return true; }

Status set_device(int device) {
  SK_CUDA_TRY(cudaSetDevice(device));
  return Status::Ok();
}

Status stream_create(int device, void** stream) {
  SK_CUDA_TRY(cudaSetDevice(device));
  configure_pool_once(device);
  cudaStream_t s;
  SK_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return Status::Ok();
}

void stream_destroy(void* stream) { cudaStreamDestroy(static_cast<cudaStream_t>(stream)); }

Status stream_synchronize(void* stream) {
  SK_CUDA_TRY(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status stream_wait_event(void* stream, void* event) {
  SK_CUDA_TRY(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0));
  return Status::Ok();
}

Status event_create(void** event, bool timing) {
  cudaEvent_t e;
  const unsigned flags = cudaEventBlockingSync | (timing ? 0u : static_cast<unsigned>(cudaEventDisableTiming));
  SK_CUDA_TRY(cudaEventCreateWithFlags(&e, flags));
  *event = e;
  return Status::Ok();
}

void event_destroy(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

Status event_record(void* event, void* stream) {
  SK_CUDA_TRY(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status event_synchronize(void* event) {
  SK_CUDA_TRY(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  return Status::Ok();
}

Status event_query(void* event) {
  SK_CUDA_TRY(cudaEventQuery(static_cast<cudaEvent_t>(event)));
  return Status::Ok();
}

Status event_elapsed_ms(float* ms, void* start, void* end) {
  SK_CUDA_TRY(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return Status::Ok();
}

Status malloc_async(void** ptr, size_t bytes, void* stream) {
  const cudaError_t err = cudaMallocAsync(ptr, bytes, static_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky; keep it out of the next launch check
    return cuda_status(err, "cudaMallocAsync");
  }
  return Status::Ok();
}

Status free_async(void* ptr, void* stream) {
  SK_CUDA_TRY(cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status pool_trim(int device) {
  cudaMemPool_t pool;
  SK_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
  SK_CUDA_TRY(cudaMemPoolTrimTo(pool, 0));
  return Status::Ok();
}

size_t pool_reserved_bytes(int device) {
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess) return 0;
  uint64_t v = 0;
  if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &v) != cudaSuccess) return 0;
  return static_cast<size_t>(v);
}

Status mem_get_info(int device, size_t* free_bytes, size_t* total_bytes) {
  SK_CUDA_TRY(cudaSetDevice(device));
  SK_CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
  return Status::Ok();
}

Status memcpy_h2d(void* dst, const void* src, size_t bytes, void* stream) {
  SK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status memcpy_d2h(void* dst, const void* src, size_t bytes, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  SK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  // Pageable destination: make the host copy complete (and surface faults) before the caller reads it.
  SK_CUDA_TRY(cudaStreamSynchronize(s));
  return Status::Ok();
}

Status memcpy_d2d(void* dst, const void* src, size_t bytes, void* stream) {
  SK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status memset_async(void* dst, int value, size_t bytes, void* stream) {
  SK_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream)));
  return Status::Ok();
}

Status convert_async(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t n, void* stream) {
  return sk::cuda::convert_elements(dst, dst_dtype, src, src_dtype, n, static_cast<cudaStream_t>(stream));
}

Status launch_fault_for_testing(void* stream) {
  return sk::cuda::launch_fault(static_cast<cudaStream_t>(stream));
}

Status launch_spin_for_testing(void* stream, double ms) {
  return sk::cuda::launch_spin(static_cast<cudaStream_t>(stream), ms);
}

}  // namespace sk::gpu
