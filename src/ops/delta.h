// DeltaLinear (stateful delta activations for streaming inference): the contract between the bindings
// and the two backends. Spec: specs/delta.md; design and measurements: cuda/delta/NOTES.md.
//
// Per stream s the state keeps x_ref (the last transmitted input) and y_acc = W x_ref + b, both fp32.
// One step with input x (a row of `x`):
//  - stream not initialised, or refresh due (refresh_every > 0 and steps[s] >= refresh_every):
//      x_ref <- q(x); y_acc <- W q(x) + b (dense); n_active = K; steps <- 0; initialised <- 1.
//  - else, per input k: d = q(x_k) - x_ref_k (an fp32 subtraction, the same on both backends);
//      fired = isnan(q(x_k)) || (|d| >= theta_k && d != 0)          (reference mode)
//      fired = isnan(q(x_k)) || d != 0                              (quantised mode, theta ignored)
//      y_acc += sum over fired k of d_k * Wt[k, :];  x_ref_k <- q(x_k) where fired;  steps += 1;
//      n_active = number fired.
//    q(x) = x in reference mode and rintf(x / quant_step) * quant_step (ties to even) in quantised mode.
//    "d != 0" makes theta = 0 lossless (only exact repeats are skipped). A NaN input always fires and
//    poisons y_acc, as the dense product would; a NaN x_ref alone does not fire; reset/refresh clear both.
//  - y = activation(y_acc) cast to x's dtype; y_acc never sees the activation.
// Streams not listed in stream_ids are untouched. Error model: |y - (W x + b)|_i <= sum_k |W[i,k]| theta_k
// plus fp32 rounding drift that refresh_every bounds (specs/delta.md "Guarantees").
//
// Weights are stored transposed: Wt [K, wt_ld] row-major, so column k of W is one contiguous row (a
// coalesced 16-byte gather on the GPU, a streaming AXPY on the CPU). wt_ld >= M pads rows to 16 bytes
// (delta_wt_ld) for the GPU's vector loads; the transpose fills the padding with zeros.
//
// State layout (identical on both backends, so a snapshot taken on one restores on the other; the runtime
// snapshots by copying every buffer except `sync`):
//   x_ref [2, S, K] fp32   two reference buffers; stream s reads buffer parity[s]. The GPU step writes the
//                          other buffer and flips parity (its CTAs still read the current one while others
//                          write, see NOTES.md "ping-pong"); the CPU step updates the current one in place.
//   y_acc [S, M] fp32, initialized [S] u8, steps [S] i32, parity [S] u8,
//   stats [S, 2] i64 (optional): n_active_total, n_steps (every step, initialising ones included),
//   sync [delta_sync_ints(S, M)] i32, CUDA only: split-K arrival counters and per-stream fired counts.
//                          Must be zero before the first step (delta_invalidate does it); every step
//                          leaves it zero again.
// All buffers of a state live on the device of the backend that steps it; one step at a time per state.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/common.h"

namespace sk {

enum class DeltaMode : int32_t {
  kReference = 0,  // DeltaRNN / EdgeDRNN: threshold against the stored reference
  kQuantized = 1,  // DAL: quantise to quant_step, every level change fires
};

// What a DeltaLinear operator holds constant between steps (built once by delta_transpose_weights).
struct DeltaWeights {
  const void* wt = nullptr;  // Wt [K, wt_ld] row-major, dtype wt_dtype (float32 / float16 / bfloat16)
  DType wt_dtype = DType::kFloat32;
  int64_t wt_ld = 0;                  // row stride of Wt in elements, >= M (CUDA: == delta_wt_ld(M, dtype))
  const float* bias = nullptr;        // optional [M] fp32 (the accumulator dtype)
  const float* threshold = nullptr;   // optional per-input [K] fp32 >= 0; null: threshold_scalar for all k
  float threshold_scalar = 0.1f;      // >= 0
  DeltaMode mode = DeltaMode::kReference;
  float quant_step = 0.f;             // > 0 and finite in quantised mode; ignored otherwise
  int32_t refresh_every = 0;          // >= 0; 0 = never re-synchronise y_acc densely
  float dense_fallback_density = 0.35f;  // in [0, 1]: above this fired fraction use a dense masked pass
  int32_t M = 0;                      // outputs
  int32_t K = 0;                      // inputs
};

// Pointers into the state buffers described above. S = num_streams may be 0.
struct DeltaState {
  float* x_ref = nullptr;          // [2, S, K]
  float* y_acc = nullptr;          // [S, M]
  uint8_t* initialized = nullptr;  // [S]
  int32_t* steps = nullptr;        // [S] steps since the last (re)initialisation
  uint8_t* parity = nullptr;       // [S] which x_ref buffer is current (0 or 1)
  int64_t* stats = nullptr;        // optional [S, 2]
  int32_t* sync = nullptr;         // CUDA only, [delta_sync_ints(S, M)]
  int32_t num_streams = 0;         // S
};

struct DeltaStepParams {
  DeltaWeights w;
  DeltaState state;
  const void* x = nullptr;  // [num_rows, K] contiguous, dtype x_dtype (float32 / float16 / bfloat16)
  DType x_dtype = DType::kFloat32;
  int32_t num_rows = 0;                  // s: streams stepped by this call, 0 <= s <= S
  const int32_t* stream_ids = nullptr;   // optional [s], unique values in [0, S); null: rows 0..s-1
  void* y = nullptr;                     // [num_rows, M] contiguous, dtype x_dtype
  int32_t* n_active = nullptr;           // [num_rows] inputs that fired (K on an initialising step)
  Activation activation = Activation::kNone;
  // CUDA only. Scratch for split-K partial sums; null: the op takes it from the stream-ordered pool
  // (cudaMallocAsync/cudaFreeAsync on the op's stream). delta_workspace_bytes gives the size.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int32_t k_splits = 0;  // CUDA tuning/testing override of the K-chunk count; 0 = automatic (recommended)
};

// Tile shape of the CUDA kernel that the `sync` buffer size depends on (cuda/delta/kernel_traits.cuh
// static_asserts that it agrees): output columns per CTA and stream slots per CTA.
inline constexpr int32_t kDeltaCudaTileM = 256;
inline constexpr int32_t kDeltaCudaMaxStreamsPerCta = 16;

// Byte sizes of each state buffer for S streams (what the runtime allocates for init_state(S)).
struct DeltaStateSizes {
  size_t x_ref = 0, y_acc = 0, initialized = 0, steps = 0, parity = 0, stats = 0, sync = 0;
};

// Row stride for Wt: M rounded up to 16 bytes of wt_dtype (4 fp32 or 8 16-bit elements).
int64_t delta_wt_ld(int32_t M, DType wt_dtype);
// Number of int32 in the CUDA `sync` buffer (the CPU backend never touches it).
int64_t delta_sync_ints(int32_t S, int32_t M);
DeltaStateSizes delta_state_sizes(int32_t S, int32_t M, int32_t K);

// Host checks of what memory safety and the semantics depend on. `for_cuda`: pointers are device
// pointers, so values behind them (per-channel thresholds, stream ids) are not read here: lib/delta.ts
// validates them on the host before upload, and the kernel skips out-of-range stream ids (y row NaN,
// n_active -1). For the CPU the values are checked too (thresholds >= 0, ids in range and unique).
Status check_delta_weights(const DeltaWeights& w, bool for_cuda);
Status check_delta_state(const DeltaState& st, const DeltaWeights& w, bool for_cuda);
Status check_delta_step(const DeltaStepParams& p, bool for_cuda);
// ids may be null only when n == 0.
Status check_delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n, bool for_cuda);

namespace cpu {
// Wt[k, m] = W[m, k] for W [M, K] row-major; columns M..wt_ld-1 of Wt are zeroed. Same dtype in and out.
Status delta_transpose_weights(const void* w, DType dtype, int32_t M, int32_t K, void* wt, int64_t wt_ld);
Status delta_step(const DeltaStepParams& p);
// Marks the listed streams uninitialised (their next step re-initialises them densely).
Status delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n);
// Marks every stream uninitialised (weights or bias changed; also the state's constructor).
Status delta_invalidate(const DeltaState& st);
}  // namespace cpu

namespace cuda {
// All enqueue on `stream` and return launch errors; device faults surface at the stream's completion.
Status delta_transpose_weights(const void* w, DType dtype, int32_t M, int32_t K, void* wt, int64_t wt_ld,
                               GpuStream stream);
// ONE kernel launch per step (plus an optional stream-ordered workspace allocation): delta, threshold,
// compaction, accumulation of the fired Wt rows, x_ref / y_acc / counters update, activation and cast.
Status delta_step(const DeltaStepParams& p, GpuStream stream);
// Split-K scratch the step needs with this device and these shapes (0 when none).
Status delta_workspace_bytes(const DeltaStepParams& p, size_t* bytes);
Status delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n, GpuStream stream);
// Also zeroes `sync` (delta_sync_ints(S, M) ints, M = the operator's outputs): call it once on a fresh
// state before its first step.
Status delta_invalidate(const DeltaState& st, int32_t M, GpuStream stream);
}  // namespace cuda

}  // namespace sk
