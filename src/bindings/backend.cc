// Process-level functions:
//   probeCuda(): {builtWithCuda, usable, reason, reasonCode, driverVersion, runtimeVersion,
//                 builtArchitectures, moduleLoading, moduleLoadingSource, devices: [{index, name,
//                 computeCapability, totalBytes, freeBytes, multiprocessors, hasKernelImage}]}
//                                                           [sync] initialises CUDA on first call
//   builtWithCuda(): boolean                                [sync] never touches CUDA
//   cudaProbed(): boolean                                   [sync] whether CUDA was initialised by a probe
//   cpuInfo(): {threads, features: string[]}                [sync]
//   setNumThreads(n): void                                  [sync] resizes the CPU pool
//   init({isMainThread}): void                              [sync] called once by lib/native/load
#include <napi.h>

#include <string>
#include <vector>

#include "bindings/env_data.h"
#include "bindings/napi_util.h"
#include "bindings/registry.h"
#include "core/thread_pool.h"
#include "runtime/gpu_api.h"

namespace sk::bind {

namespace {

Napi::Value ProbeCuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const gpu::ProbeResult& p = gpu::probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("builtWithCuda", p.built_with_cuda);
  o.Set("usable", p.usable);
  o.Set("reason", p.reason);
  o.Set("reasonCode", p.reason_code);
  o.Set("driverVersion", p.driver_version);
  o.Set("runtimeVersion", p.runtime_version);
  o.Set("builtArchitectures", p.built_architectures);
  o.Set("moduleLoading", p.module_loading);
  o.Set("moduleLoadingSource", p.module_loading_source);
  Napi::Array devices = Napi::Array::New(env, p.devices.size());
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const auto& d = p.devices[i];
    Napi::Object od = Napi::Object::New(env);
    od.Set("index", d.index);
    od.Set("name", d.name);
    od.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
    od.Set("totalBytes", static_cast<double>(d.total_bytes));
    od.Set("freeBytes", static_cast<double>(d.free_bytes));
    od.Set("multiprocessors", d.multiprocessors);
    od.Set("hasKernelImage", d.has_kernel_image);
    devices.Set(i, od);
  }
  o.Set("devices", devices);
  return o;
}

Napi::Value CudaProbed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gpu::probed()); }

Napi::Value BuiltWithCuda(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), gpu::built_with_cuda());
}

bool cpu_supports(const char* feature) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  const std::string f(feature);
  if (f == "avx2") return __builtin_cpu_supports("avx2");
  if (f == "fma") return __builtin_cpu_supports("fma");
  if (f == "avx512f") return __builtin_cpu_supports("avx512f");
  if (f == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (f == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (f == "f16c") return __builtin_cpu_supports("f16c");
#endif
  (void)feature;
  return false;
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", core::ThreadPool::global().num_threads());
  std::vector<std::string> found;
  for (const char* f : {"fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl"}) {
    if (cpu_supports(f)) found.emplace_back(f);
  }
  Napi::Array a = Napi::Array::New(env, found.size());
  for (size_t i = 0; i < found.size(); ++i) a.Set(i, found[i]);
  o.Set("features", a);
  // The code path the multiversioned kernels take on this CPU (SK_CPU_DISPATCH).
  const char* level = cpu_supports("avx512f") && cpu_supports("avx512bw") && cpu_supports("avx512vl")
                          ? "x86-64-v4"
                          : (cpu_supports("avx2") && cpu_supports("fma") ? "x86-64-v3" : "baseline");
#if !defined(__x86_64__)
  level = "baseline";
#endif
  o.Set("dispatch", level);
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int32_t n = GetInt32(info, 0, "threads");
  SK_THROW_RANGE_IF(n < 1 || n > 1024, info.Env(), "threads must be in [1, 1024], got ", n);
  core::ThreadPool::global().resize(n);
  return info.Env().Undefined();
}

Napi::Value InitEnv(const Napi::CallbackInfo& info) {
  Napi::Object o = GetObject(info, 0, "options");
  EnvData::Get(info.Env())->is_main_thread = PropBool(o, "isMainThread");
  return info.Env().Undefined();
}

void InitBackend(Napi::Env env, Napi::Object exports) {
  exports.Set("probeCuda", Napi::Function::New<ProbeCuda>(env, "probeCuda"));
  exports.Set("builtWithCuda", Napi::Function::New<BuiltWithCuda>(env, "builtWithCuda"));
  exports.Set("cudaProbed", Napi::Function::New<CudaProbed>(env, "cudaProbed"));
  exports.Set("cpuInfo", Napi::Function::New<CpuInfo>(env, "cpuInfo"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("init", Napi::Function::New<InitEnv>(env, "init"));
  exports.Set("napiVersion", NAPI_VERSION);
}

}  // namespace

SK_REGISTER_BINDING(backend, InitBackend);

}  // namespace sk::bind
