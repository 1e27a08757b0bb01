// NativeStorage: the JS handle of one rt::Storage (what a Tensor owns). [sync] methods run on the JS
// thread; [async] methods enqueue a task on a stream and return a Promise.
//   byteLength: number                                  [sync]
//   dispose(): void                                     [sync] drops this handle's reference
//   upload(stream, typedArray, srcDType, dstDType, n)   [async-enqueue] host data -> storage (converting)
//   download(stream, srcDType, dstDType, n): Promise<ArrayBuffer>   storage -> host (converting)
//   fill(stream, byteValue): void                       [enqueue] memset
//   copyFrom(stream, src, bytes): void                  [enqueue] device copy
//   convertFrom(stream, src, srcDType, dstDType, n)     [enqueue] elementwise dtype conversion
//   errorMessage(): string|undefined                    [sync] error left by a failed producer op
#pragma once
#include <napi.h>

#include <memory>

#include "runtime/storage.h"

namespace sk::bind {

class NativeStorage : public Napi::ObjectWrap<NativeStorage> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static bool IsInstance(Napi::Object o);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<rt::Storage> storage);

  explicit NativeStorage(const Napi::CallbackInfo& info);
  ~NativeStorage() override;

  const std::shared_ptr<rt::Storage>& storage() const { return storage_; }

 private:
  Napi::Value ByteLength(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value ConvertFrom(const Napi::CallbackInfo& info);
  Napi::Value ErrorMessage(const Napi::CallbackInfo& info);
  void Release(Napi::Env env);

  std::shared_ptr<rt::Storage> storage_;
  int64_t external_bytes_ = 0;  // what this handle reported to V8 (AdjustExternalMemory)
};

}  // namespace sk::bind
