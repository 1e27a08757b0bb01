#include "bindings/storage.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "bindings/async.h"
#include "bindings/env_data.h"
#include "bindings/napi_util.h"
#include "bindings/registry.h"
#include "core/dtype.h"
#include "runtime/convert.h"
#include "runtime/gpu_api.h"

namespace sk::bind {

namespace {

// V8 is told about external memory in chunks of at most 512 MiB (one call must fit in an int64 and
// huge single adjustments trigger needless full GCs), symmetric on release.
void AdjustExternal(Napi::Env env, int64_t delta) {
  constexpr int64_t kChunk = int64_t{512} << 20;
  while (delta != 0) {
    const int64_t step = delta > kChunk ? kChunk : (delta < -kChunk ? -kChunk : delta);
    Napi::MemoryManagement::AdjustExternalMemory(env, step);
    delta -= step;
  }
}

DType DTypeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const int32_t v = GetInt32(info, i, name);
  SK_THROW_RANGE_IF(!is_valid_dtype(v), info.Env(), name, " is not a dtype id: ", v);
  return static_cast<DType>(v);
}

// Bytes at the typed array's view (offset applied).
struct HostView {
  const void* data;
  size_t bytes;
};
HostView ViewOf(Napi::Env env, Napi::Value v, const char* name) {
  SK_THROW_TYPE_IF(!v.IsTypedArray(), env, name, " must be a typed array");
  auto ta = v.As<Napi::TypedArray>();
  auto ab = ta.ArrayBuffer();
  return HostView{static_cast<const char*>(ab.Data()) + ta.ByteOffset(), ta.ByteLength()};
}

constexpr size_t kCopyOnCallBytes = size_t{1} << 20;  // below this, copying at the call is cheaper than a ref

}  // namespace

void NativeStorage::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeStorage",
                                    {
                                        InstanceAccessor<&NativeStorage::ByteLength>("byteLength"),
                                        InstanceMethod<&NativeStorage::Dispose>("dispose"),
                                        InstanceMethod<&NativeStorage::Upload>("upload"),
                                        InstanceMethod<&NativeStorage::Download>("download"),
                                        InstanceMethod<&NativeStorage::Fill>("fill"),
                                        InstanceMethod<&NativeStorage::CopyFrom>("copyFrom"),
                                        InstanceMethod<&NativeStorage::ConvertFrom>("convertFrom"),
                                        InstanceMethod<&NativeStorage::ErrorMessage>("errorMessage"),
                                    });
  EnvData::Get(env)->storage_ctor = Napi::Persistent(ctor);
  exports.Set("NativeStorage", ctor);
}

bool NativeStorage::IsInstance(Napi::Object o) {
  Napi::Env env = o.Env();
  return o.InstanceOf(EnvData::Get(env)->storage_ctor.Value());
}

Napi::Object NativeStorage::Wrap(Napi::Env env, std::shared_ptr<rt::Storage> storage) {
  auto* holder = new std::shared_ptr<rt::Storage>(std::move(storage));
  return EnvData::Get(env)->storage_ctor.New({Napi::External<std::shared_ptr<rt::Storage>>::New(env, holder)});
}

NativeStorage::NativeStorage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeStorage>(info) {
  SK_THROW_TYPE_IF(info.Length() != 1 || !info[0].IsExternal(), info.Env(),
                   "NativeStorage is created by NativeContext.allocate()");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<rt::Storage>>>().Data();
  storage_ = std::move(*holder);
  delete holder;
  external_bytes_ = static_cast<int64_t>(storage_->bytes());
  AdjustExternal(info.Env(), external_bytes_);
}

NativeStorage::~NativeStorage() {
  // Finalizer: only drops the reference; a CUDA free is *enqueued* (cudaFreeAsync) by the last owner.
  if (storage_ && external_bytes_ != 0) AdjustExternal(Env(), -external_bytes_);
  storage_.reset();
}

void NativeStorage::Release(Napi::Env env) {
  if (!storage_) return;
  AdjustExternal(env, -external_bytes_);
  external_bytes_ = 0;
  storage_.reset();
}

Napi::Value NativeStorage::ByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), storage_ ? static_cast<double>(storage_->bytes()) : 0.0);
}

Napi::Value NativeStorage::Dispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

Napi::Value NativeStorage::ErrorMessage(const Napi::CallbackInfo& info) {
  if (!storage_) return info.Env().Undefined();
  auto err = storage_->error();
  if (!err) return info.Env().Undefined();
  return StatusToError(info.Env(), *err).Value();
}

// upload(stream, typedArray, srcDType, dstDType, n)
Napi::Value NativeStorage::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!storage_, env, "tensor was disposed");
  auto stream = GetStream(info, 0, "stream");
  const DType src_t = DTypeArg(info, 2, "srcDType");
  const DType dst_t = DTypeArg(info, 3, "dstDType");
  const int64_t n = GetInt64(info, 4, "n");
  SK_THROW_RANGE_IF(n < 0, env, "n must be >= 0");
  SK_THROW_RANGE_IF(!rt::can_convert(dst_t, src_t), env, "cannot convert ", dtype_name(src_t), " to ",
                    dtype_name(dst_t));
  HostView view = ViewOf(env, info[1], "data");
  const size_t src_bytes = static_cast<size_t>(n) * dtype_size(src_t);
  const size_t dst_bytes = static_cast<size_t>(n) * dtype_size(dst_t);
  SK_THROW_RANGE_IF(view.bytes < src_bytes, env, "data holds ", view.bytes, " bytes, ", src_bytes, " needed");
  RequireStorage(env, storage_, *stream, dst_bytes, "tensor");

  rt::Task task;
  task.op = "upload";
  task.accesses.push_back({storage_, rt::AccessMode::kWrite});
  std::shared_ptr<std::vector<char>> copy;
  const void* src = view.data;
  if (src_bytes <= kCopyOnCallBytes) {
    copy = std::make_shared<std::vector<char>>(static_cast<const char*>(view.data),
                                               static_cast<const char*>(view.data) + src_bytes);
    src = copy->data();
  } else {
    task.done = ReleaseOnJsThread(env, info[1]);  // keep the JS array alive until the copy has run
  }
  auto dst = storage_;
  const bool cuda = stream->is_cuda();
  void* cs = stream->cuda_stream();
  task.run = [dst, src, copy, src_t, dst_t, n, dst_bytes, cuda, cs]() -> Status {
    if (!cuda) return rt::convert_host(dst->data(), dst_t, src, src_t, n);
    if (src_t == dst_t) return gpu::memcpy_h2d(dst->data(), src, dst_bytes, cs);
    std::vector<char> tmp(dst_bytes);
    SK_RETURN_IF_ERROR(rt::convert_host(tmp.data(), dst_t, src, src_t, n));
    // A pageable source is staged by the driver before cudaMemcpyAsync returns: tmp may go right after.
    return gpu::memcpy_h2d(dst->data(), tmp.data(), dst_bytes, cs);
  };
  stream->Enqueue(std::move(task));
  return env.Undefined();
}

// download(stream, srcDType, dstDType, n) -> Promise<ArrayBuffer>
Napi::Value NativeStorage::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!storage_, env, "tensor was disposed");
  auto stream = GetStream(info, 0, "stream");
  const DType src_t = DTypeArg(info, 1, "srcDType");
  const DType dst_t = DTypeArg(info, 2, "dstDType");
  const int64_t n = GetInt64(info, 3, "n");
  SK_THROW_RANGE_IF(n < 0, env, "n must be >= 0");
  SK_THROW_RANGE_IF(!rt::can_convert(dst_t, src_t), env, "cannot convert ", dtype_name(src_t), " to ",
                    dtype_name(dst_t));
  const size_t src_bytes = static_cast<size_t>(n) * dtype_size(src_t);
  const size_t dst_bytes = static_cast<size_t>(n) * dtype_size(dst_t);
  RequireStorage(env, storage_, *stream, src_bytes, "tensor");

  struct HostBuffer {
    void* data = nullptr;
    size_t bytes = 0;
    ~HostBuffer() { std::free(data); }
  };
  auto out = std::make_shared<HostBuffer>();
  out->bytes = dst_bytes;
  PendingPromise pending = MakePendingPromise(env, [out](Napi::Env env) -> Napi::Value {
    if (out->bytes == 0) return Napi::ArrayBuffer::New(env, 0);
    void* data = out->data;
    const size_t bytes = out->bytes;
    out->data = nullptr;  // ownership moves to the ArrayBuffer
    napi_value ab;
    const napi_status st = napi_create_external_arraybuffer(
        env, data, bytes, [](napi_env, void* d, void*) { std::free(d); }, nullptr, &ab);
    if (st == napi_ok) return Napi::Value(env, ab);
    // Runtimes that forbid external buffers (V8 sandbox): copy instead.
    Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, bytes);
    std::memcpy(copy.Data(), data, bytes);
    std::free(data);
    return copy;
  });

  rt::Task task;
  task.op = "download";
  task.accesses.push_back({storage_, rt::AccessMode::kRead});
  task.run_on_input_error = true;
  auto src = storage_;
  const bool cuda = stream->is_cuda();
  void* cs = stream->cuda_stream();
  task.run = [src, out, src_t, dst_t, n, src_bytes, dst_bytes, cuda, cs]() -> Status {
    if (auto err = src->error()) return *err;  // the tensor's producer failed: report that, not garbage
    if (dst_bytes == 0) return Status::Ok();
    out->data = std::malloc(dst_bytes);
    if (!out->data) return Status::Error(ErrorCode::kOutOfMemory, "could not allocate host memory for download");
    if (!cuda) return rt::convert_host(out->data, dst_t, src->data(), src_t, n);
    if (src_t == dst_t) return gpu::memcpy_d2h(out->data, src->data(), src_bytes, cs);
    std::vector<char> tmp(src_bytes);
    SK_RETURN_IF_ERROR(gpu::memcpy_d2h(tmp.data(), src->data(), src_bytes, cs));
    return rt::convert_host(out->data, dst_t, tmp.data(), src_t, n);
  };
  task.done = std::move(pending.done);
  stream->Enqueue(std::move(task));
  return pending.promise;
}

// fill(stream, byteValue)
Napi::Value NativeStorage::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!storage_, env, "tensor was disposed");
  auto stream = GetStream(info, 0, "stream");
  const int32_t value = GetInt32(info, 1, "byteValue");
  SK_THROW_RANGE_IF(value < 0 || value > 255, env, "byteValue must be in [0, 255]");
  RequireStorage(env, storage_, *stream, 0, "tensor");
  rt::Task task;
  task.op = "fill";
  task.accesses.push_back({storage_, rt::AccessMode::kWrite});
  auto dst = storage_;
  const bool cuda = stream->is_cuda();
  void* cs = stream->cuda_stream();
  task.run = [dst, value, cuda, cs]() -> Status {
    if (dst->bytes() == 0) return Status::Ok();
    if (cuda) return gpu::memset_async(dst->data(), value, dst->bytes(), cs);
    std::memset(dst->data(), value, dst->bytes());
    return Status::Ok();
  };
  stream->Enqueue(std::move(task));
  return env.Undefined();
}

// copyFrom(stream, src, bytes)
Napi::Value NativeStorage::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!storage_, env, "tensor was disposed");
  auto stream = GetStream(info, 0, "stream");
  auto src = GetStorage(info, 1, "src");
  const int64_t bytes = GetInt64(info, 2, "bytes");
  SK_THROW_RANGE_IF(bytes < 0, env, "bytes must be >= 0");
  RequireStorage(env, storage_, *stream, static_cast<size_t>(bytes), "tensor");
  RequireStorage(env, src, *stream, static_cast<size_t>(bytes), "src");
  rt::Task task;
  task.op = "copy";
  task.accesses.push_back({src, rt::AccessMode::kRead});
  task.accesses.push_back({storage_, rt::AccessMode::kWrite});
  auto dst = storage_;
  const bool cuda = stream->is_cuda();
  void* cs = stream->cuda_stream();
  task.run = [dst, src, bytes, cuda, cs]() -> Status {
    if (bytes == 0) return Status::Ok();
    if (cuda) return gpu::memcpy_d2d(dst->data(), src->data(), static_cast<size_t>(bytes), cs);
    return rt::convert_host(dst->data(), DType::kUInt8, src->data(), DType::kUInt8, bytes);
  };
  stream->Enqueue(std::move(task));
  return env.Undefined();
}

// convertFrom(stream, src, srcDType, dstDType, n)
Napi::Value NativeStorage::ConvertFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!storage_, env, "tensor was disposed");
  auto stream = GetStream(info, 0, "stream");
  auto src = GetStorage(info, 1, "src");
  const DType src_t = DTypeArg(info, 2, "srcDType");
  const DType dst_t = DTypeArg(info, 3, "dstDType");
  const int64_t n = GetInt64(info, 4, "n");
  SK_THROW_RANGE_IF(n < 0, env, "n must be >= 0");
  SK_THROW_RANGE_IF(!rt::can_convert(dst_t, src_t), env, "cannot convert ", dtype_name(src_t), " to ",
                    dtype_name(dst_t));
  RequireStorage(env, storage_, *stream, static_cast<size_t>(n) * dtype_size(dst_t), "tensor");
  RequireStorage(env, src, *stream, static_cast<size_t>(n) * dtype_size(src_t), "src");
  rt::Task task;
  task.op = "convert";
  task.accesses.push_back({src, rt::AccessMode::kRead});
  task.accesses.push_back({storage_, rt::AccessMode::kWrite});
  auto dst = storage_;
  const bool cuda = stream->is_cuda();
  void* cs = stream->cuda_stream();
  task.run = [dst, src, src_t, dst_t, n, cuda, cs]() -> Status {
    if (cuda) {
      if (src_t == dst_t) return gpu::memcpy_d2d(dst->data(), src->data(), n * dtype_size(src_t), cs);
      return gpu::convert_async(dst->data(), static_cast<int>(dst_t), src->data(), static_cast<int>(src_t), n, cs);
    }
    return rt::convert_host(dst->data(), dst_t, src->data(), src_t, n);
  };
  stream->Enqueue(std::move(task));
  return env.Undefined();
}

namespace {
void InitStorage(Napi::Env env, Napi::Object exports) { NativeStorage::Init(env, exports); }
}  // namespace
SK_REGISTER_BINDING(storage, InitStorage);

}  // namespace sk::bind
