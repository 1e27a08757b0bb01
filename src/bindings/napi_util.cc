#include "bindings/napi_util.h"

#include <cmath>

#include "bindings/storage.h"
#include "bindings/stream.h"

namespace sk::bind {

Napi::Error StatusToError(Napi::Env env, const Status& s) {
  Napi::Error err = Napi::Error::New(env, s.message.empty() ? error_code_string(s.code) : s.message);
  Napi::Object o = err.Value();
  o.Set("code", error_code_string(s.code));
  if (!s.cuda_error.empty()) {
    o.Set("cudaError", s.cuda_error);
    o.Set("cudaErrorCode", s.cuda_error_code);
  }
  if (!s.op.empty()) o.Set("op", s.op);
  return err;
}

void ThrowStatus(Napi::Env env, const Status& s) {
  if (s.code == ErrorCode::kInvalidArgument) throw Napi::RangeError::New(env, s.message);
  throw StatusToError(env, s);
}

namespace {
Napi::Value Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  SK_THROW_TYPE_IF(i >= info.Length(), info.Env(), "missing argument ", name);
  return info[i];
}
double NumberOf(Napi::Env env, Napi::Value v, const char* name) {
  SK_THROW_TYPE_IF(!v.IsNumber(), env, name, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  SK_THROW_RANGE_IF(!std::isfinite(d), env, name, " must be finite, got ", d);
  return d;
}
int64_t IntegerOf(Napi::Env env, Napi::Value v, const char* name) {
  const double d = NumberOf(env, v, name);
  SK_THROW_RANGE_IF(d != std::floor(d) || std::fabs(d) > 9007199254740991.0, env, name,
                    " must be a safe integer, got ", d);
  return static_cast<int64_t>(d);
}
}  // namespace

int64_t GetInt64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return IntegerOf(info.Env(), Arg(info, i, name), name);
}
int32_t GetInt32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const int64_t v = GetInt64(info, i, name);
  SK_THROW_RANGE_IF(v < INT32_MIN || v > INT32_MAX, info.Env(), name, " is out of the int32 range: ", v);
  return static_cast<int32_t>(v);
}
double GetDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return NumberOf(info.Env(), Arg(info, i, name), name);
}
bool GetBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = Arg(info, i, name);
  SK_THROW_TYPE_IF(!v.IsBoolean(), info.Env(), name, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
Napi::Object GetObject(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = Arg(info, i, name);
  SK_THROW_TYPE_IF(!v.IsObject(), info.Env(), name, " must be an object");
  return v.As<Napi::Object>();
}

bool HasProp(Napi::Object o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}
int64_t PropInt64(Napi::Object o, const char* key) {
  SK_THROW_TYPE_IF(!HasProp(o, key), o.Env(), "missing parameter ", key);
  return IntegerOf(o.Env(), o.Get(key), key);
}
int32_t PropInt32(Napi::Object o, const char* key) {
  const int64_t v = PropInt64(o, key);
  SK_THROW_RANGE_IF(v < INT32_MIN || v > INT32_MAX, o.Env(), key, " is out of the int32 range: ", v);
  return static_cast<int32_t>(v);
}
double PropDouble(Napi::Object o, const char* key) {
  SK_THROW_TYPE_IF(!HasProp(o, key), o.Env(), "missing parameter ", key);
  return NumberOf(o.Env(), o.Get(key), key);
}
bool PropBool(Napi::Object o, const char* key) {
  if (!HasProp(o, key)) return false;
  Napi::Value v = o.Get(key);
  SK_THROW_TYPE_IF(!v.IsBoolean(), o.Env(), key, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

namespace {
std::shared_ptr<rt::Storage> StorageOf(Napi::Env env, Napi::Value v, const char* name, bool allow_null) {
  if (allow_null && (v.IsUndefined() || v.IsNull())) return nullptr;
  SK_THROW_TYPE_IF(!v.IsObject(), env, name, " must be a tensor storage handle");
  Napi::Object o = v.As<Napi::Object>();
  SK_THROW_TYPE_IF(!NativeStorage::IsInstance(o), env, name, " must be a tensor storage handle");
  auto s = NativeStorage::Unwrap(o)->storage();
  if (!s) {
    Status st = Status::Error(ErrorCode::kDisposed, MakeString(name, " was disposed"));
    throw StatusToError(env, st);
  }
  return s;
}
}  // namespace

std::shared_ptr<rt::Storage> GetStorage(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return StorageOf(info.Env(), Arg(info, i, name), name, false);
}
std::shared_ptr<rt::Storage> GetStorageOrNull(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length()) return nullptr;
  return StorageOf(info.Env(), info[i], name, true);
}
std::shared_ptr<rt::Storage> PropStorage(Napi::Object o, const char* key) {
  SK_THROW_TYPE_IF(!HasProp(o, key), o.Env(), "missing tensor ", key);
  return StorageOf(o.Env(), o.Get(key), key, false);
}
std::shared_ptr<rt::Storage> PropStorageOrNull(Napi::Object o, const char* key) {
  if (!HasProp(o, key)) return nullptr;
  return StorageOf(o.Env(), o.Get(key), key, true);
}

std::shared_ptr<rt::Stream> GetStream(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = Arg(info, i, name);
  SK_THROW_TYPE_IF(!v.IsObject() || !NativeStream::IsInstance(v.As<Napi::Object>()), info.Env(), name,
                   " must be a stream handle");
  auto s = NativeStream::Unwrap(v.As<Napi::Object>())->stream();
  if (!s) throw StatusToError(info.Env(), Status::Error(ErrorCode::kDisposed, MakeString(name, " was disposed")));
  return s;
}

void RequireStorage(Napi::Env env, const std::shared_ptr<rt::Storage>& s, const rt::Stream& stream, size_t bytes,
                    const char* name) {
  SK_THROW_TYPE_IF(s->context() != nullptr && s->context().get() != stream.context(), env, name,
                   " belongs to another context than the stream");
  SK_THROW_RANGE_IF(s->bytes() < bytes, env, name, " holds ", s->bytes(), " bytes but ", bytes, " are needed");
}

}  // namespace sk::bind
