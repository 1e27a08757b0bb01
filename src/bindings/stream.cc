#include "bindings/stream.h"

#include <thread>

#include "bindings/async.h"
#include "bindings/env_data.h"
#include "bindings/napi_util.h"
#include "bindings/registry.h"
#include "runtime/gpu_api.h"

namespace sk::bind {

void NativeStream::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeStream",
                                    {
                                        InstanceMethod<&NativeStream::Synchronize>("synchronize"),
                                        InstanceMethod<&NativeStream::Mark>("mark"),
                                        InstanceMethod<&NativeStream::Dispose>("dispose"),
                                        InstanceAccessor<&NativeStream::IsCuda>("isCuda"),
                                        InstanceAccessor<&NativeStream::Pending>("pending"),
                                        InstanceMethod<&NativeStream::SpinForTesting>("spinForTesting"),
                                        InstanceMethod<&NativeStream::FaultForTesting>("faultForTesting"),
                                    });
  EnvData::Get(env)->stream_ctor = Napi::Persistent(ctor);
  exports.Set("NativeStream", ctor);
}

bool NativeStream::IsInstance(Napi::Object o) {
  return o.InstanceOf(EnvData::Get(o.Env())->stream_ctor.Value());
}

Napi::Object NativeStream::Wrap(Napi::Env env, std::shared_ptr<rt::Stream> stream) {
  auto* holder = new std::shared_ptr<rt::Stream>(std::move(stream));
  return EnvData::Get(env)->stream_ctor.New({Napi::External<std::shared_ptr<rt::Stream>>::New(env, holder)});
}

NativeStream::NativeStream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeStream>(info) {
  SK_THROW_TYPE_IF(info.Length() < 1 || !info[0].IsExternal(), info.Env(),
                   "NativeStream is created by NativeContext");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<rt::Stream>>>().Data();
  stream_ = std::move(*holder);
  delete holder;
}

NativeStream::~NativeStream() {
  // A collected, never-disposed extra stream finishes its queue and ends its threads (non-blocking).
  if (stream_ && owns_stream_) stream_->RequestStop();
}

Napi::Value NativeStream::Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!stream_, env, "stream was disposed");
  PendingPromise pending = MakePendingPromise(env);
  rt::Task task;
  task.op = "synchronize";
  auto stream = stream_;
  auto done = std::move(pending.done);
  // The fence reports the first failure of any task since the previous synchronize().
  task.done = [stream, done](const Status& st) {
    if (!st.ok()) {
      stream->TakeError();
      done(st);
      return;
    }
    if (auto err = stream->TakeError()) {
      done(*err);
    } else {
      done(Status::Ok());
    }
  };
  stream_->Enqueue(std::move(task));
  return pending.promise;
}

Napi::Value NativeStream::Mark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!stream_, env, "stream was disposed");
  auto state = std::make_shared<NativeMark::State>();
  state->stream = stream_;
  if (stream_->is_cuda()) {
    Status s = gpu::event_create(&state->event, true);
    if (!s.ok()) ThrowStatus(env, s);
  }
  rt::Task task;
  task.op = "mark";
  void* cs = stream_->cuda_stream();
  task.run = [state, cs]() -> Status {
    if (state->event) return gpu::event_record(state->event, cs);
    state->host_time = std::chrono::steady_clock::now();
    return Status::Ok();
  };
  state->seq = stream_->Enqueue(std::move(task));
  auto* holder = new std::shared_ptr<NativeMark::State>(std::move(state));
  return EnvData::Get(env)->mark_ctor.New({Napi::External<std::shared_ptr<NativeMark::State>>::New(env, holder)});
}

Napi::Value NativeStream::Dispose(const Napi::CallbackInfo& info) {
  if (stream_ && owns_stream_) stream_->RequestStop();
  stream_.reset();
  return info.Env().Undefined();
}

Napi::Value NativeStream::IsCuda(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), stream_ && stream_->is_cuda());
}

Napi::Value NativeStream::Pending(const Napi::CallbackInfo& info) {
  if (!stream_) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), static_cast<double>(stream_->submitted() - stream_->completed()));
}

Napi::Value NativeStream::SpinForTesting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!stream_, env, "stream was disposed");
  const double ms = GetDouble(info, 0, "ms");
  SK_THROW_RANGE_IF(ms < 0 || ms > 60000, env, "ms must be in [0, 60000]");
  rt::Task task;
  task.op = "spin";
  void* cs = stream_->cuda_stream();
  task.run = [ms, cs]() -> Status {
    if (cs) return gpu::launch_spin_for_testing(cs, ms);
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
    return Status::Ok();
  };
  stream_->Enqueue(std::move(task));
  return env.Undefined();
}

Napi::Value NativeStream::FaultForTesting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(!stream_ || !stream_->is_cuda(), env, "faultForTesting needs a CUDA stream");
  rt::Task task;
  task.op = "fault";
  void* cs = stream_->cuda_stream();
  task.run = [cs]() -> Status { return gpu::launch_fault_for_testing(cs); };
  stream_->Enqueue(std::move(task));
  return env.Undefined();
}

void NativeMark::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeMark",
                                    {
                                        InstanceMethod<&NativeMark::ElapsedSince>("elapsedSince"),
                                        InstanceAccessor<&NativeMark::Done>("done"),
                                    });
  EnvData::Get(env)->mark_ctor = Napi::Persistent(ctor);
  exports.Set("NativeMark", ctor);
}

NativeMark::NativeMark(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMark>(info) {
  SK_THROW_TYPE_IF(info.Length() < 1 || !info[0].IsExternal(), info.Env(), "NativeMark is created by stream.mark()");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<State>>>().Data();
  state = std::move(*holder);
  delete holder;
}

NativeMark::~NativeMark() {
  // The event may still be pending in the stream: destroying a recorded event is allowed by CUDA.
  if (state && state->event) gpu::event_destroy(state->event);
}

Napi::Value NativeMark::Done(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state->stream->completed() >= state->seq);
}

// elapsedSince(earlier): milliseconds from `earlier` to this mark; both must be complete.
Napi::Value NativeMark::ElapsedSince(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(info.Length() < 1 || !info[0].IsObject() ||
                       !info[0].As<Napi::Object>().InstanceOf(EnvData::Get(env)->mark_ctor.Value()),
                   env, "elapsedSince expects a mark");
  NativeMark* other = NativeMark::Unwrap(info[0].As<Napi::Object>());
  SK_THROW_TYPE_IF(other->state->stream != state->stream, env, "marks come from different streams");
  SK_THROW_TYPE_IF(state->stream->completed() < state->seq || other->state->stream->completed() < other->state->seq,
                   env, "marks are not complete yet: await stream.synchronize() first");
  if (state->event) {
    float ms = 0.f;
    Status s = gpu::event_elapsed_ms(&ms, other->state->event, state->event);
    if (!s.ok()) ThrowStatus(env, s);
    return Napi::Number::New(env, ms);
  }
  const double ms = std::chrono::duration<double, std::milli>(state->host_time - other->state->host_time).count();
  return Napi::Number::New(env, ms);
}

namespace {
void InitStream(Napi::Env env, Napi::Object exports) {
  NativeStream::Init(env, exports);
  NativeMark::Init(env, exports);
}
}  // namespace
SK_REGISTER_BINDING(stream, InitStream);

}  // namespace sk::bind
