// N-API binding of DeltaLinear (contract: src/ops/delta.h). No math here: argument plumbing, storage-size
// checks and the CPU/CUDA switch.
//
//   deltaWtLd(M, dtype) -> number                 row stride of Wt (delta_wt_ld), synchronous
//   deltaStateSizes(S, M, K) -> {xRef, yAcc, initialized, steps, parity, stats, sync}  bytes, synchronous
//   deltaTransposeWeights(stream, {w, wt}, {dtype, M, K, wtLd})
//     enqueues W [M, K] -> Wt [K, wtLd] (padding columns zeroed).
//   deltaStep(stream, {wt, bias?, threshold?, xRef, yAcc, initialized, steps, parity, stats, sync?, x, y,
//                      nActive, streamIds?}, params)
//     enqueues one step. params: wtDtype, wtLd, M, K, thresholdScalar, mode, quantStep, refreshEvery,
//     denseFallbackDensity, numStreams, numRows, xDtype, activation.
//   deltaReset(stream, {initialized, streamIds}, {numStreams, n})
//     marks the listed streams uninitialised.
//   deltaInvalidate(stream, {initialized, xRef, yAcc, steps, parity, stats, sync?}, {numStreams, M, K})
//     marks every stream uninitialised (and zeroes the CUDA sync counters). Every buffer is declared
//     written: after it no stream's x_ref / y_acc / steps / parity is read before that stream
//     re-initialises, so this also clears an error a failed step left on the state's storages (the
//     runtime fails any task that reads a storage a failed task wrote), which is how lib/delta recovers
//     a state from e.g. a bad device-resident stream id.
//
// lib/delta validates every argument first (TypeError / RangeError naming it). The values behind device
// pointers (per-channel thresholds, stream ids) are never read here: on the JS thread they may not have
// been produced yet (uploads are stream-ordered). lib/delta checks host arrays before upload; the CPU
// kernel re-checks the values when its task runs.
#include <cstdint>

#include "bindings/napi_util.h"
#include "bindings/op_args.h"
#include "bindings/registry.h"
#include "ops/delta.h"

namespace sk::bind {
namespace {

size_t Bytes(int64_t elems, size_t elem_size) { return static_cast<size_t>(elems) * elem_size; }

DType FloatDType(const OpArgs& a, const char* key) {
  const int32_t id = a.Int32(key);
  SK_THROW_RANGE_IF(!is_valid_dtype(id) || !is_float_dtype(static_cast<DType>(id)), a.env(), "delta: ", key,
                    " id ", id, " is not float32, float16 or bfloat16");
  return static_cast<DType>(id);
}

Napi::Value WtLd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t M = GetInt32(info, 0, "M");
  const int32_t dtype = GetInt32(info, 1, "dtype");
  SK_THROW_RANGE_IF(M < 0, env, "delta: M must be >= 0");
  SK_THROW_RANGE_IF(!is_valid_dtype(dtype) || !is_float_dtype(static_cast<DType>(dtype)), env,
                    "delta: dtype id ", dtype, " is not a float dtype");
  return Napi::Number::New(env, static_cast<double>(delta_wt_ld(M, static_cast<DType>(dtype))));
}

Napi::Value StateSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t S = GetInt32(info, 0, "S"), M = GetInt32(info, 1, "M"), K = GetInt32(info, 2, "K");
  SK_THROW_RANGE_IF(S < 0 || M < 0 || K < 0, env, "delta: S, M and K must be >= 0");
  const DeltaStateSizes z = delta_state_sizes(S, M, K);
  Napi::Object o = Napi::Object::New(env);
  o.Set("xRef", static_cast<double>(z.x_ref));
  o.Set("yAcc", static_cast<double>(z.y_acc));
  o.Set("initialized", static_cast<double>(z.initialized));
  o.Set("steps", static_cast<double>(z.steps));
  o.Set("parity", static_cast<double>(z.parity));
  o.Set("stats", static_cast<double>(z.stats));
  o.Set("sync", static_cast<double>(z.sync));
  return o;
}

Napi::Value TransposeWeights(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const DType dtype = FloatDType(a, "dtype");
  const int32_t M = a.Int32("M"), K = a.Int32("K");
  const int64_t ld = a.Int64("wtLd");
  SK_THROW_RANGE_IF(M < 0 || K < 0 || ld < M || ld < 1, env, "delta transpose: bad M, K or wtLd");
  const size_t es = dtype_size(dtype);
  const void* w = a.In("w", Bytes(static_cast<int64_t>(M) * K, es));
  void* wt = a.Out("wt", Bytes(static_cast<int64_t>(K) * ld, es));
  return a.Enqueue("DeltaLinear.transposeWeights", [=, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::delta_transpose_weights(w, dtype, M, K, wt, ld, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("delta: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::delta_transpose_weights(w, dtype, M, K, wt, ld);
  });
}

// The state pointers, size-checked; `write_only`: declare every buffer as written (deltaInvalidate).
DeltaState StateArgs(OpArgs& a, int32_t S, int32_t M, int32_t K, bool write_only) {
  const DeltaStateSizes z = delta_state_sizes(S, M, K);
  auto buf = [&](const char* name, size_t bytes) { return write_only ? a.Out(name, bytes) : a.InOut(name, bytes); };
  DeltaState st;
  st.num_streams = S;
  st.x_ref = static_cast<float*>(buf("xRef", z.x_ref));
  st.y_acc = static_cast<float*>(buf("yAcc", z.y_acc));
  st.initialized = static_cast<uint8_t*>(buf("initialized", z.initialized));
  st.steps = static_cast<int32_t*>(buf("steps", z.steps));
  st.parity = static_cast<uint8_t*>(buf("parity", z.parity));
  st.stats = static_cast<int64_t*>(buf("stats", z.stats));
  if (a.cuda()) {
    SK_THROW_TYPE_IF(!a.HasTensor("sync"), a.env(), "delta: a CUDA state needs its sync buffer");
    st.sync = static_cast<int32_t*>(buf("sync", z.sync));
  }
  return st;
}

Napi::Value Step(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  DeltaStepParams p;
  DeltaWeights& w = p.w;
  w.wt_dtype = FloatDType(a, "wtDtype");
  w.wt_ld = a.Int64("wtLd");
  w.M = a.Int32("M");
  w.K = a.Int32("K");
  w.threshold_scalar = static_cast<float>(a.Double("thresholdScalar"));
  const int32_t mode = a.Int32("mode");
  SK_THROW_RANGE_IF(mode != 0 && mode != 1, env, "delta: mode must be 0 (reference) or 1 (quantized)");
  w.mode = static_cast<DeltaMode>(mode);
  w.quant_step = static_cast<float>(a.Double("quantStep"));
  w.refresh_every = a.Int32("refreshEvery");
  w.dense_fallback_density = static_cast<float>(a.Double("denseFallbackDensity"));
  const int32_t S = a.Int32("numStreams");
  p.num_rows = a.Int32("numRows");
  p.x_dtype = FloatDType(a, "xDtype");
  const int32_t act = a.Int32("activation");
  SK_THROW_RANGE_IF(act < 0 || act > static_cast<int32_t>(Activation::kSilu), env, "delta: activation id ", act,
                    " is not one of none/relu/gelu/silu");
  p.activation = static_cast<Activation>(act);
  SK_THROW_RANGE_IF(w.M < 0 || w.K < 0 || S < 0 || p.num_rows < 0 || p.num_rows > S || w.wt_ld < w.M || w.wt_ld < 1,
                    env, "delta: bad sizes (M, K, numStreams, numRows or wtLd)");

  const int64_t M = w.M, K = w.K, rows = p.num_rows;
  w.wt = a.In("wt", Bytes(K * w.wt_ld, dtype_size(w.wt_dtype)));
  w.bias = static_cast<const float*>(a.OptIn("bias", Bytes(M, 4)));
  w.threshold = static_cast<const float*>(a.OptIn("threshold", Bytes(K, 4)));
  p.state = StateArgs(a, S, w.M, w.K, /*write_only=*/false);
  const size_t xes = dtype_size(p.x_dtype);
  p.x = a.In("x", Bytes(rows * K, xes));
  p.y = a.Out("y", Bytes(rows * M, xes));
  p.n_active = static_cast<int32_t*>(a.Out("nActive", Bytes(rows, 4)));
  p.stream_ids = static_cast<const int32_t*>(a.OptIn("streamIds", Bytes(rows, 4)));

  // Structural checks only: a copy without the device-resident values (thresholds, ids), which the
  // JS thread must not read (see the header). The kernels' own entry checks run again in the task.
  DeltaStepParams shape = p;
  shape.stream_ids = nullptr;
  shape.w.threshold = nullptr;
  shape.w.threshold_scalar = 0.f;
  a.Check(check_delta_step(shape, a.cuda()));
  return a.Enqueue("DeltaLinear.step", [p, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::delta_step(p, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("delta: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::delta_step(p);
  });
}

Napi::Value Reset(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const int32_t S = a.Int32("numStreams"), n = a.Int32("n");
  SK_THROW_RANGE_IF(S < 0 || n < 0, env, "delta reset: numStreams and n must be >= 0");
  DeltaState st;
  st.num_streams = S;
  st.initialized = static_cast<uint8_t*>(a.InOut("initialized", Bytes(S, 1)));
  const int32_t* ids = static_cast<const int32_t*>(a.In("streamIds", Bytes(n, 4)));
  // Structural check (ids are device values, see the header); the CPU task checks them again.
  a.Check(check_delta_reset(st, ids, n, /*for_cuda=*/true));
  return a.Enqueue("DeltaState.reset", [st, ids, n, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::delta_reset(st, ids, n, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("delta: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::delta_reset(st, ids, n);
  });
}

Napi::Value Invalidate(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const int32_t S = a.Int32("numStreams"), M = a.Int32("M"), K = a.Int32("K");
  SK_THROW_RANGE_IF(S < 0 || M < 0 || K < 0, env, "delta invalidate: sizes must be >= 0");
  const DeltaState st = StateArgs(a, S, M, K, /*write_only=*/true);
  return a.Enqueue("DeltaState.invalidate", [st, M, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::delta_invalidate(st, M, cs);
#else
    (void)cs;
    (void)M;
    if (cuda) return Status::Internal("delta: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::delta_invalidate(st);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("deltaWtLd", Napi::Function::New(env, WtLd, "deltaWtLd"));
  exports.Set("deltaStateSizes", Napi::Function::New(env, StateSizes, "deltaStateSizes"));
  exports.Set("deltaTransposeWeights", Napi::Function::New(env, TransposeWeights, "deltaTransposeWeights"));
  exports.Set("deltaStep", Napi::Function::New(env, Step, "deltaStep"));
  exports.Set("deltaReset", Napi::Function::New(env, Reset, "deltaReset"));
  exports.Set("deltaInvalidate", Napi::Function::New(env, Invalidate, "deltaInvalidate"));
}

}  // namespace

SK_REGISTER_BINDING(delta, Init);

}  // namespace sk::bind
