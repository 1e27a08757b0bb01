// Argument readers, typed throws and Status -> JS error conversion for the binding files.
// The TS layer validates every argument first (naming the parameter); these re-checks are the last line
// before native work, so a bug in lib/ becomes a TypeError/RangeError instead of a crash.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

#include "core/status.h"
#include "runtime/storage.h"
#include "runtime/stream.h"

namespace sk::bind {

template <typename... Parts>
std::string MakeString(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

#define SK_THROW_TYPE_IF(cond, env, ...) \
  do {                                    \
    if (cond) throw Napi::TypeError::New(env, ::sk::bind::MakeString(__VA_ARGS__)); \
  } while (0)

#define SK_THROW_RANGE_IF(cond, env, ...) \
  do {                                     \
    if (cond) throw Napi::RangeError::New(env, ::sk::bind::MakeString(__VA_ARGS__)); \
  } while (0)

// A plain Error carrying {code, cudaError, cudaErrorCode, op}; lib/errors.ts turns it into the matching
// SparseKernelsError subclass and restores the caller's stack.
Napi::Error StatusToError(Napi::Env env, const Status& s);
[[noreturn]] void ThrowStatus(Napi::Env env, const Status& s);

int64_t GetInt64(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t GetInt32(const Napi::CallbackInfo& info, size_t i, const char* name);
double GetDouble(const Napi::CallbackInfo& info, size_t i, const char* name);
bool GetBool(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Object GetObject(const Napi::CallbackInfo& info, size_t i, const char* name);

// Properties of a plain params object (ops pass their scalars as one object).
int64_t PropInt64(Napi::Object o, const char* key);
int32_t PropInt32(Napi::Object o, const char* key);
double PropDouble(Napi::Object o, const char* key);
bool PropBool(Napi::Object o, const char* key);
bool HasProp(Napi::Object o, const char* key);  // present and not undefined/null

// Native handles.
std::shared_ptr<rt::Storage> GetStorage(const Napi::CallbackInfo& info, size_t i, const char* name);
std::shared_ptr<rt::Storage> GetStorageOrNull(const Napi::CallbackInfo& info, size_t i, const char* name);
std::shared_ptr<rt::Storage> PropStorage(Napi::Object o, const char* key);        // throws if missing
std::shared_ptr<rt::Storage> PropStorageOrNull(Napi::Object o, const char* key);  // null if absent
std::shared_ptr<rt::Stream> GetStream(const Napi::CallbackInfo& info, size_t i, const char* name);

// Throws unless `s` lives on `stream`'s device and holds at least `bytes`.
void RequireStorage(Napi::Env env, const std::shared_ptr<rt::Storage>& s, const rt::Stream& stream, size_t bytes,
                    const char* name);

}  // namespace sk::bind
