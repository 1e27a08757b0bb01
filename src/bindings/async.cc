#include "bindings/async.h"

#include "bindings/env_data.h"
#include "bindings/napi_util.h"

namespace sk::bind {

PendingPromise MakePendingPromise(Napi::Env env, std::function<Napi::Value(Napi::Env)> on_ok) {
  EnvData* data = EnvData::Get(env);
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  data->HoldLoop(env);
  PendingPromise p{deferred->Promise(), nullptr};
  p.done = [data, deferred, on_ok = std::move(on_ok)](const Status& st) mutable {
    data->Post([deferred, on_ok = std::move(on_ok), st](Napi::Env env) {
      EnvData::Get(env)->ReleaseLoop(env);
      Napi::HandleScope scope(env);
      if (!st.ok()) {
        deferred->Reject(StatusToError(env, st).Value());
        return;
      }
      try {
        deferred->Resolve(on_ok ? on_ok(env) : env.Undefined());
      } catch (const Napi::Error& e) {
        deferred->Reject(e.Value());
      }
    });
  };
  return p;
}

std::function<void(const Status&)> ReleaseOnJsThread(Napi::Env env, Napi::Value keep_alive) {
  EnvData* data = EnvData::Get(env);
  auto ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Reference<Napi::Value>::New(keep_alive, 1));
  return [data, ref](const Status&) mutable {
    // The reference must be deleted on the JS thread; if the env is already gone it is leaked on purpose.
    auto* holder = new std::shared_ptr<Napi::Reference<Napi::Value>>(std::move(ref));
    if (!data->Post([holder](Napi::Env) { delete holder; })) {
      // env shutting down: never touch the reference off-thread
    }
  };
}

}  // namespace sk::bind
