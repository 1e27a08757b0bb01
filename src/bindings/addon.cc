// Module registration only: per-env state, then every binding registered with SK_REGISTER_BINDING.
#include <napi.h>

#include "bindings/env_data.h"
#include "bindings/registry.h"

namespace {

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  sk::bind::EnvData::Init(env);
  for (auto init : sk::bind::binding_registry()) init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sparse_kernels, InitAll)
