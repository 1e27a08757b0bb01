// NativeStream: the JS handle of one rt::Stream.
//   synchronize(): Promise<void>   [async] settles when everything enqueued so far is done; rejects with
//                                  the first error of a task since the last synchronize (or a device fault)
//   mark(): NativeMark             [enqueue] a timestamp in stream order (CUDA event / host clock)
//   dispose(): void                [sync] queued work finishes, then the stream's threads end
//   isCuda: boolean, pending: number
//   spinForTesting(ms), faultForTesting()   [enqueue] test-only work (a busy kernel / a device fault)
// NativeMark.elapsedSince(other): number   [sync] ms between two completed marks of one stream
#pragma once
#include <napi.h>

#include <chrono>
#include <memory>

#include "runtime/stream.h"

namespace sk::bind {

class NativeStream : public Napi::ObjectWrap<NativeStream> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static bool IsInstance(Napi::Object o);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<rt::Stream> stream);

  explicit NativeStream(const Napi::CallbackInfo& info);
  ~NativeStream() override;
  const std::shared_ptr<rt::Stream>& stream() const { return stream_; }

 private:
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  Napi::Value Mark(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsCuda(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  Napi::Value SpinForTesting(const Napi::CallbackInfo& info);
  Napi::Value FaultForTesting(const Napi::CallbackInfo& info);

  std::shared_ptr<rt::Stream> stream_;
  bool owns_stream_ = false;  // non-default streams stop when their handle is disposed or collected
  friend class NativeContext;
};

class NativeMark : public Napi::ObjectWrap<NativeMark> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit NativeMark(const Napi::CallbackInfo& info);
  ~NativeMark() override;

  struct State {
    std::shared_ptr<rt::Stream> stream;
    uint64_t seq = 0;
    void* event = nullptr;  // CUDA timing event
    std::chrono::steady_clock::time_point host_time;
  };
  std::shared_ptr<State> state;

 private:
  Napi::Value ElapsedSince(const Napi::CallbackInfo& info);
  Napi::Value Done(const Napi::CallbackInfo& info);
};

}  // namespace sk::bind
