// NativeContext: the JS handle of one rt::Context (a device, its accounting and its default stream).
//   new NativeContext(kind: 0 cpu | 1 cuda, device: number, maxDeviceBytes: number)   [sync]
//   allocate(bytes, stream): NativeStorage      [sync] throws {code: ERR_OUT_OF_MEMORY} when it cannot
//   defaultStream: NativeStream, createStream(): NativeStream
//   memory(): {tensors, deviceBytes, hostBytes, poolReservedBytes}
//   deviceMemoryInfo(): {freeBytes, totalBytes} (CUDA; cudaMemGetInfo)
//   releaseCachedMemory(): void                  returns the pool's cached blocks to the device
//   dispose(): void                              streams finish their queues, then stop
#include <napi.h>

#include "bindings/env_data.h"
#include "bindings/napi_util.h"
#include "bindings/registry.h"
#include "bindings/storage.h"
#include "bindings/stream.h"
#include "runtime/context.h"
#include "runtime/gpu_api.h"
#include "runtime/stream.h"

namespace sk::bind {

class NativeContext : public Napi::ObjectWrap<NativeContext> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NativeContext",
                                      {
                                          InstanceMethod<&NativeContext::Allocate>("allocate"),
                                          InstanceAccessor<&NativeContext::DefaultStream>("defaultStream"),
                                          InstanceMethod<&NativeContext::CreateStream>("createStream"),
                                          InstanceMethod<&NativeContext::Memory>("memory"),
                                          InstanceMethod<&NativeContext::DeviceMemoryInfo>("deviceMemoryInfo"),
                                          InstanceMethod<&NativeContext::ReleaseCachedMemory>("releaseCachedMemory"),
                                          InstanceMethod<&NativeContext::Dispose>("dispose"),
                                      });
    exports.Set("NativeContext", ctor);
  }

  explicit NativeContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeContext>(info) {
    Napi::Env env = info.Env();
    const int32_t kind = GetInt32(info, 0, "kind");
    const int32_t device = GetInt32(info, 1, "device");
    const int64_t max_bytes = GetInt64(info, 2, "maxDeviceBytes");
    SK_THROW_RANGE_IF(kind != 0 && kind != 1, env, "kind must be 0 (cpu) or 1 (cuda)");
    SK_THROW_RANGE_IF(device < 0, env, "device must be >= 0");
    if (kind == 1) {
      const auto& probe = gpu::probe();
      if (!probe.usable) {
        ThrowStatus(env, Status::Error(ErrorCode::kCudaUnavailable, "CUDA is not available: " + probe.reason));
      }
      SK_THROW_RANGE_IF(device >= static_cast<int>(probe.devices.size()), env, "CUDA device ", device,
                        " does not exist (", probe.devices.size(), " found)");
    }
    Status s = rt::Context::Create(kind == 1 ? rt::DeviceKind::kCuda : rt::DeviceKind::kCpu, device, max_bytes, &ctx_);
    if (!s.ok()) ThrowStatus(env, s);
    EnvData::Get(env)->RegisterContext(ctx_);
    default_stream_ = Napi::Persistent(NativeStream::Wrap(env, ctx_->default_stream()));
  }

 private:
  void RequireLive(Napi::Env env) {
    if (!ctx_) throw StatusToError(env, Status::Error(ErrorCode::kDisposed, "context was disposed"));
  }

  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLive(env);
    const int64_t bytes = GetInt64(info, 0, "bytes");
    SK_THROW_RANGE_IF(bytes < 0, env, "bytes must be >= 0");
    auto stream = GetStream(info, 1, "stream");
    SK_THROW_TYPE_IF(stream->context() != ctx_.get(), env, "stream belongs to another context");
    std::shared_ptr<rt::Storage> storage;
    Status s = ctx_->Allocate(static_cast<size_t>(bytes), stream, &storage);
    if (!s.ok()) throw StatusToError(env, s);
    return NativeStorage::Wrap(env, std::move(storage));
  }

  Napi::Value DefaultStream(const Napi::CallbackInfo& info) {
    RequireLive(info.Env());
    return default_stream_.Value();
  }

  Napi::Value CreateStream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLive(env);
    std::shared_ptr<rt::Stream> stream;
    Status s = ctx_->CreateStream(&stream);
    if (!s.ok()) ThrowStatus(env, s);
    Napi::Object obj = NativeStream::Wrap(env, std::move(stream));
    NativeStream::Unwrap(obj)->owns_stream_ = true;
    return obj;
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const rt::MemoryStats m = ctx_ ? ctx_->memory() : rt::MemoryStats{};
    o.Set("tensors", static_cast<double>(m.tensors));
    o.Set("deviceBytes", static_cast<double>(m.device_bytes));
    o.Set("hostBytes", static_cast<double>(m.host_bytes));
    o.Set("poolReservedBytes", static_cast<double>(m.pool_reserved_bytes));
    return o;
  }

  Napi::Value DeviceMemoryInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLive(env);
    SK_THROW_TYPE_IF(!ctx_->is_cuda(), env, "deviceMemoryInfo() needs a CUDA context");
    size_t free_b = 0, total_b = 0;
    Status s = gpu::mem_get_info(ctx_->device(), &free_b, &total_b);
    if (!s.ok()) ThrowStatus(env, s);
    Napi::Object o = Napi::Object::New(env);
    o.Set("freeBytes", static_cast<double>(free_b));
    o.Set("totalBytes", static_cast<double>(total_b));
    return o;
  }

  Napi::Value ReleaseCachedMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLive(env);
    Status s = ctx_->ReleaseCachedMemory();
    if (!s.ok()) ThrowStatus(env, s);
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (ctx_) ctx_->default_stream()->RequestStop();
    ctx_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<rt::Context> ctx_;
  Napi::ObjectReference default_stream_;
};

namespace {
void InitContext(Napi::Env env, Napi::Object exports) { NativeContext::Init(env, exports); }
}  // namespace
SK_REGISTER_BINDING(context, InitContext);

}  // namespace sk::bind
