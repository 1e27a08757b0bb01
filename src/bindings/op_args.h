// The shape of every op binding (sharp's "baton" idea, sized for N-API):
//
//   Napi::Value MyOp(const Napi::CallbackInfo& info) {      // native.myOp(stream, tensors, params)
//     OpArgs a(info);                                        // reads (stream, {tensors}, {params})
//     sk::MyParams p;
//     p.n = a.Int32("n");
//     p.x = a.In("x", bytes_of_x);                           // read access, size-checked
//     p.y = a.Out("y", bytes_of_y);                          // write access
//     SK_RETURN_JS_IF_ERROR(a, sk::check_my_params(p));      // defence in depth, before enqueueing
//     return a.Enqueue("myOp", [p, cs = a.cuda_stream()](bool cuda) {
//       return cuda ? sk::cuda::my_op(p, cs) : sk::cpu::my_op(p);
//     });
//   }
//
// Storages named here are held by the task until it has run (CPU) or been issued (CUDA), so disposing a
// tensor while the op is queued is safe; cross-stream ordering follows from the declared accesses.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bindings/napi_util.h"
#include "core/status.h"
#include "runtime/stream.h"

namespace sk::bind {

class OpArgs {
 public:
  explicit OpArgs(const Napi::CallbackInfo& info);

  Napi::Env env() const { return env_; }
  bool cuda() const { return stream_->is_cuda(); }
  void* cuda_stream() const { return stream_->cuda_stream(); }
  const std::shared_ptr<rt::Stream>& stream() const { return stream_; }

  // Tensor arguments (from the `tensors` object), returning their data pointers. `bytes` is the size the
  // op will touch; a smaller storage is a RangeError. Optional variants return nullptr when absent.
  void* In(const char* name, size_t bytes) { return Add(name, bytes, rt::AccessMode::kRead, false); }
  void* Out(const char* name, size_t bytes) { return Add(name, bytes, rt::AccessMode::kWrite, false); }
  void* InOut(const char* name, size_t bytes) { return Add(name, bytes, rt::AccessMode::kReadWrite, false); }
  void* OptIn(const char* name, size_t bytes) { return Add(name, bytes, rt::AccessMode::kRead, true); }
  void* OptOut(const char* name, size_t bytes) { return Add(name, bytes, rt::AccessMode::kWrite, true); }
  bool HasTensor(const char* name) const { return HasProp(tensors_, name); }

  // Scalar parameters (from the `params` object).
  int32_t Int32(const char* key) const { return PropInt32(params_, key); }
  int64_t Int64(const char* key) const { return PropInt64(params_, key); }
  double Double(const char* key) const { return PropDouble(params_, key); }
  bool Bool(const char* key) const { return PropBool(params_, key); }
  bool Has(const char* key) const { return HasProp(params_, key); }
  Napi::Object params() const { return params_; }

  // Throws the status as a JS error (RangeError for kInvalidArgument) when it is not OK.
  void Check(const Status& s) const;

  // Enqueues run(is_cuda) on the stream. Returns undefined.
  Napi::Value Enqueue(const char* op, std::function<Status(bool cuda)> run);
  // Same, with a Promise that settles when the work has completed (for ops that report back).
  Napi::Value EnqueueWithPromise(const char* op, std::function<Status(bool cuda)> run,
                                 std::function<Napi::Value(Napi::Env)> on_ok);

 private:
  void* Add(const char* name, size_t bytes, rt::AccessMode mode, bool optional);

  Napi::Env env_;
  std::shared_ptr<rt::Stream> stream_;
  Napi::Object tensors_;
  Napi::Object params_;
  rt::Task task_;
  std::vector<std::string> names_;  // the tensors' names, parallel to task_.accesses (for error messages)
};

}  // namespace sk::bind
