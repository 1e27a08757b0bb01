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
  for (size_t i = 0; i < task_.accesses.size(); ++i) {
    auto& a = task_.accesses[i];
    if (a.storage != s) continue;
    // The same memory under two names is fine when both only read it. When either writes it, the kernels
    // would read what they are overwriting (a permutation overwritten by pooled floats, then used as row
    // indices): refused, whatever the op.
    SK_THROW_TYPE_IF(a.mode != rt::AccessMode::kRead || mode != rt::AccessMode::kRead, env_, "tensors.", name,
                     " is the same memory as tensors.", names_[i], ", and one of them is written by the op");
    return s->data();
  }
  task_.accesses.push_back(rt::Access{s, mode});
  names_.push_back(name);
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
