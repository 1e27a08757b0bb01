#include "bindings/env_data.h"

#include "core/thread_pool.h"

namespace sk::bind {

void EnvData::CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, JsClosure* fn) {
  std::unique_ptr<JsClosure> owned(fn);
  if (env != nullptr && owned && *owned) (*owned)(env);
}

void EnvData::Init(Napi::Env env) {
  auto* data = new EnvData();
  env.SetInstanceData<EnvData>(data);  // deleted by node at env teardown
  data->dispatcher_ = Dispatcher::New(env, "sparse-kernels", 0, 1, nullptr);
  data->dispatcher_.Unref(env);  // only pending promises keep the loop alive (HoldLoop)
  // Registered after the dispatcher: cleanup hooks run last-in first-out, so the stream threads are
  // stopped before the dispatcher they post to is torn down.
  env.AddCleanupHook([data] { data->Cleanup(); });
}

EnvData* EnvData::Get(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

bool EnvData::Post(JsClosure fn) {
  auto* heap = new JsClosure(std::move(fn));
  const napi_status st = dispatcher_.NonBlockingCall(heap);
  if (st != napi_ok) {
    delete heap;
    return false;
  }
  return true;
}

void EnvData::HoldLoop(Napi::Env env) {
  if (holds_++ == 0) dispatcher_.Ref(env);
}

void EnvData::ReleaseLoop(Napi::Env env) {
  if (holds_ > 0 && --holds_ == 0) dispatcher_.Unref(env);
}

void EnvData::RegisterContext(const std::shared_ptr<rt::Context>& ctx) {
  std::lock_guard<std::mutex> lock(contexts_mu_);
  std::vector<std::weak_ptr<rt::Context>> live;
  for (auto& w : contexts_) {
    if (!w.expired()) live.push_back(std::move(w));
  }
  live.push_back(ctx);
  contexts_.swap(live);
}

void EnvData::Cleanup() {
  shutting_down_ = true;
  // At process exit, running CPU kernels skip their remaining chunks so exit never waits on a long op.
  if (is_main_thread) core::ThreadPool::global().shutdown();
  std::vector<std::shared_ptr<rt::Context>> ctxs;
  {
    std::lock_guard<std::mutex> lock(contexts_mu_);
    for (auto& w : contexts_) {
      if (auto c = w.lock()) ctxs.push_back(std::move(c));
    }
  }
  for (auto& c : ctxs) c->Shutdown();
  dispatcher_.Release();
}

}  // namespace sk::bind
