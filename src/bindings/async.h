// Promise plumbing: a native task reports completion on a worker/completion thread; the result is
// delivered on the JS thread through the env's dispatcher, never by blocking the event loop.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <utility>

#include "core/status.h"

namespace sk::bind {

struct PendingPromise {
  Napi::Promise promise;
  // Give this to Task::done. Called once, from any thread.
  std::function<void(const Status&)> done;
};

// JS thread. on_ok (optional) builds the resolution value on the JS thread; a throw there rejects.
// The event loop stays alive until the promise settles.
PendingPromise MakePendingPromise(Napi::Env env, std::function<Napi::Value(Napi::Env)> on_ok = nullptr);

// Releases a JS object (kept alive for an in-flight copy) on the JS thread once the task is done.
std::function<void(const Status&)> ReleaseOnJsThread(Napi::Env env, Napi::Value keep_alive);

}  // namespace sk::bind
