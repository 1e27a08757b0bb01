#include "bindings/op_args.h"

#include "bindings/async.h"

namespace sk::bind {

OpArgs::OpArgs(const Napi::CallbackInfo& info)
    : env_(info.Env()),
      stream_(GetStream(info, 0, "stream")),
      tensors_(GetObject(info, 1, "tensors")),
      params_(info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(info.Env())) {}

void* OpArgs::Add(const char* name, size_t bytes, rt::AccessMode mode, bool optional) {
  std::shared_ptr<rt::Storage> s = optional ? PropStorageOrNull(tensors_, name) : PropStorage(tensors_, name);
  if (!s) return nullptr;
  RequireStorage(env_, s, *stream_, bytes, name);
  for (auto& a : task_.accesses) {
    if (a.storage == s) {
      // The same storage passed twice (e.g. in-place): the strongest access wins.
      if (a.mode != mode) a.mode = rt::AccessMode::kReadWrite;
      return s->data();
    }
  }
  task_.accesses.push_back(rt::Access{s, mode});
  return s->data();
}

void OpArgs::Check(const Status& s) const {
  if (!s.ok()) ThrowStatus(env_, s);
}

Napi::Value OpArgs::Enqueue(const char* op, std::function<Status(bool cuda)> run) {
  task_.op = op;
  const bool cuda = stream_->is_cuda();
  task_.run = [run = std::move(run), cuda]() { return run(cuda); };
  stream_->Enqueue(std::move(task_));
  return env_.Undefined();
}

Napi::Value OpArgs::EnqueueWithPromise(const char* op, std::function<Status(bool cuda)> run,
                                       std::function<Napi::Value(Napi::Env)> on_ok) {
  PendingPromise pending = MakePendingPromise(env_, std::move(on_ok));
  task_.op = op;
  const bool cuda = stream_->is_cuda();
  task_.run = [run = std::move(run), cuda]() { return run(cuda); };
  task_.done = std::move(pending.done);
  stream_->Enqueue(std::move(task_));
  return pending.promise;
}

}  // namespace sk::bind
