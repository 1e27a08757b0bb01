// Per-environment state (the main thread and every worker_thread that loads the addon get their own):
// the dispatcher that runs closures on the JS thread, and the contexts to shut down at teardown.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/context.h"

namespace sk::bind {

class EnvData {
 public:
  using JsClosure = std::function<void(Napi::Env)>;

  static void Init(Napi::Env env);
  static EnvData* Get(Napi::Env env);

  // Any thread: runs fn on the JS thread. Returns false (and drops fn) once the env is shutting down.
  bool Post(JsClosure fn);

  // JS thread: keep the event loop alive while a promise waits for native completion.
  void HoldLoop(Napi::Env env);
  void ReleaseLoop(Napi::Env env);

  void RegisterContext(const std::shared_ptr<rt::Context>& ctx);
  bool shutting_down() const { return shutting_down_; }
  bool is_main_thread = true;

  // Function references of JS-side classes the bindings construct (set once by lib/native).
  Napi::FunctionReference storage_ctor;
  Napi::FunctionReference stream_ctor;
  Napi::FunctionReference mark_ctor;

 private:
  static void CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, JsClosure* fn);
  void Cleanup();

  using Dispatcher = Napi::TypedThreadSafeFunction<std::nullptr_t, JsClosure, &EnvData::CallJs>;
  Dispatcher dispatcher_;
  int holds_ = 0;
  bool shutting_down_ = false;
  std::mutex contexts_mu_;
  std::vector<std::weak_ptr<rt::Context>> contexts_;
};

}  // namespace sk::bind
