// Each binding file registers its exports with SK_REGISTER_BINDING, so adding an op never edits a shared
// file: addon.cc calls every registered initialiser. (All objects are linked into the one .node, so the
// static registrars are never dropped.)
#pragma once
#include <napi.h>

#include <vector>

namespace sk::bind {

using BindingInit = void (*)(Napi::Env env, Napi::Object exports);

inline std::vector<BindingInit>& binding_registry() {
  static std::vector<BindingInit> registry;
  return registry;
}

struct BindingRegistrar {
  explicit BindingRegistrar(BindingInit fn) { binding_registry().push_back(fn); }
};

}  // namespace sk::bind

#define SK_REGISTER_BINDING(name, fn) \
  static ::sk::bind::BindingRegistrar sk_binding_registrar_##name(fn)
