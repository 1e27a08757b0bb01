// Host-side checks and size helpers of the DeltaLinear contract (src/ops/delta.h). Shared by both
// backends: the entry points call these before touching memory.
#include "ops/delta.h"

#include <cmath>
#include <string>
#include <vector>

namespace sk {

namespace {

Status shape_error(std::string msg) { return Status::Error(ErrorCode::kShape, std::move(msg)); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool is_valid_activation(Activation a) {
  const int v = static_cast<int>(a);
  return v >= static_cast<int>(Activation::kNone) && v <= static_cast<int>(Activation::kSilu);
}

// The CPU reads stream ids on the host: they must be in range, and unique for a step (two rows updating
// one stream's state in the same step have no defined order).
Status check_host_ids(const int32_t* ids, int32_t n, int32_t S, bool unique, const char* what) {
  std::vector<uint8_t> seen(unique ? static_cast<size_t>(S) : 0, 0);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t s = ids[i];
    if (s < 0 || s >= S) {
      return Status::Invalid(std::string(what) + ": stream id " + std::to_string(s) + " at position " +
                             std::to_string(i) + " is outside [0, " + std::to_string(S) + ")");
    }
    if (unique) {
      if (seen[s]) {
        return Status::Invalid(std::string(what) + ": stream id " + std::to_string(s) +
                               " appears twice; ids of one step must be unique");
      }
      seen[s] = 1;
    }
  }
  return Status::Ok();
}

}  // namespace

int64_t delta_wt_ld(int32_t M, DType wt_dtype) {
  const int64_t per16 = 16 / static_cast<int64_t>(dtype_size(wt_dtype));
  return ceil_div(M < 1 ? 1 : M, per16) * per16;
}

int64_t delta_sync_ints(int32_t S, int32_t M) {
  // [0] grid arrival counter, [1, 1+S) fired counts per row of the step, then one arrival counter per
  // (M tile, stream group of up to kDeltaCudaMaxStreamsPerCta rows).
  const int64_t m_tiles = M <= 0 ? 1 : ceil_div(M, kDeltaCudaTileM);
  const int64_t groups = S <= 0 ? 1 : ceil_div(S, kDeltaCudaMaxStreamsPerCta);
  return 1 + static_cast<int64_t>(S < 0 ? 0 : S) + m_tiles * groups;
}

DeltaStateSizes delta_state_sizes(int32_t S, int32_t M, int32_t K) {
  DeltaStateSizes z;
  const size_t s = S < 0 ? 0 : static_cast<size_t>(S);
  z.x_ref = 2 * s * static_cast<size_t>(K < 0 ? 0 : K) * sizeof(float);
  z.y_acc = s * static_cast<size_t>(M < 0 ? 0 : M) * sizeof(float);
  z.initialized = s;
  z.steps = s * sizeof(int32_t);
  z.parity = s;
  z.stats = 2 * s * sizeof(int64_t);
  z.sync = static_cast<size_t>(delta_sync_ints(S, M)) * sizeof(int32_t);
  return z;
}

Status check_delta_weights(const DeltaWeights& w, bool for_cuda) {
  if (w.M < 0 || w.K < 0) {
    return shape_error("delta: M and K must be >= 0, got M=" + std::to_string(w.M) + " K=" + std::to_string(w.K));
  }
  if (!is_valid_dtype(static_cast<int>(w.wt_dtype)) || !is_float_dtype(w.wt_dtype)) {
    return Status::Invalid("delta: weights must be float32, float16 or bfloat16");
  }
  if (w.wt_ld < w.M || w.wt_ld < 1) {
    return shape_error("delta: wt_ld " + std::to_string(w.wt_ld) + " is smaller than M=" + std::to_string(w.M));
  }
  if (w.wt == nullptr && w.M > 0 && w.K > 0) return Status::Invalid("delta: weights pointer is null");
  if (for_cuda) {
    // The kernel reads Wt rows with 16-byte vector copies: every row must start 16-byte aligned.
    const int64_t per16 = 16 / static_cast<int64_t>(dtype_size(w.wt_dtype));
    if (w.wt_ld % per16 != 0) {
      return shape_error("delta: CUDA needs wt_ld to be a multiple of " + std::to_string(per16) +
                         " elements (use delta_wt_ld), got " + std::to_string(w.wt_ld));
    }
    if (reinterpret_cast<uintptr_t>(w.wt) % 16 != 0) {
      return Status::Invalid("delta: CUDA needs the Wt buffer 16-byte aligned");
    }
  }
  if (w.mode != DeltaMode::kReference && w.mode != DeltaMode::kQuantized) {
    return Status::Invalid("delta: mode must be 0 (reference) or 1 (quantized)");
  }
  if (w.mode == DeltaMode::kQuantized && !(w.quant_step > 0.f && std::isfinite(w.quant_step))) {
    return Status::Invalid("delta: quantized mode needs a finite quant_step > 0, got " + std::to_string(w.quant_step));
  }
  // `!(x >= 0)` also rejects NaN.
  if (w.threshold == nullptr && !(w.threshold_scalar >= 0.f)) {
    return Status::Invalid("delta: threshold must be >= 0, got " + std::to_string(w.threshold_scalar));
  }
  if (w.threshold != nullptr && !for_cuda) {
    for (int32_t k = 0; k < w.K; ++k) {
      if (!(w.threshold[k] >= 0.f)) {
        return Status::Invalid("delta: threshold[" + std::to_string(k) + "] must be >= 0, got " +
                               std::to_string(w.threshold[k]));
      }
    }
  }
  if (w.refresh_every < 0) {
    return Status::Invalid("delta: refresh_every must be >= 0, got " + std::to_string(w.refresh_every));
  }
  if (!(w.dense_fallback_density >= 0.f && w.dense_fallback_density <= 1.f)) {
    return Status::Invalid("delta: dense_fallback_density must be in [0, 1], got " +
                           std::to_string(w.dense_fallback_density));
  }
  return Status::Ok();
}

Status check_delta_state(const DeltaState& st, const DeltaWeights& w, bool for_cuda) {
  if (st.num_streams < 0) return shape_error("delta: state has a negative stream count");
  if (st.num_streams == 0) return Status::Ok();
  if ((w.K > 0 && st.x_ref == nullptr) || (w.M > 0 && st.y_acc == nullptr) || st.initialized == nullptr ||
      st.steps == nullptr || st.parity == nullptr) {
    return Status::Invalid("delta: a state buffer is null");
  }
  if (for_cuda && st.sync == nullptr) return Status::Invalid("delta: CUDA state needs its sync buffer");
  return Status::Ok();
}

Status check_delta_step(const DeltaStepParams& p, bool for_cuda) {
  SK_RETURN_IF_ERROR(check_delta_weights(p.w, for_cuda));
  SK_RETURN_IF_ERROR(check_delta_state(p.state, p.w, for_cuda));
  if (!is_valid_dtype(static_cast<int>(p.x_dtype)) || !is_float_dtype(p.x_dtype)) {
    return Status::Invalid("delta: x must be float32, float16 or bfloat16 (y takes the same dtype)");
  }
  if (p.num_rows < 0 || p.num_rows > p.state.num_streams) {
    return shape_error("delta: a step takes 0.." + std::to_string(p.state.num_streams) + " rows, got " +
                       std::to_string(p.num_rows));
  }
  if (!is_valid_activation(p.activation)) return Status::Invalid("delta: unknown activation");
  if (p.num_rows == 0) return Status::Ok();
  if ((p.w.K > 0 && p.x == nullptr) || (p.w.M > 0 && p.y == nullptr) || p.n_active == nullptr) {
    return Status::Invalid("delta: x, y or n_active is null");
  }
  if (!for_cuda && p.stream_ids != nullptr) {
    SK_RETURN_IF_ERROR(check_host_ids(p.stream_ids, p.num_rows, p.state.num_streams, true, "delta step"));
  }
  return Status::Ok();
}

Status check_delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n, bool for_cuda) {
  if (st.num_streams < 0 || n < 0) return shape_error("delta reset: negative count");
  if (n == 0) return Status::Ok();
  if (stream_ids == nullptr || st.initialized == nullptr) return Status::Invalid("delta reset: null pointer");
  if (!for_cuda) SK_RETURN_IF_ERROR(check_host_ids(stream_ids, n, st.num_streams, false, "delta reset"));
  return Status::Ok();
}

}  // namespace sk
