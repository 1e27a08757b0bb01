// Shared pieces of the CPU SpMM and dense-linear drivers: X^T panel packing, the fused epilogue and
// allocation that reports failure as a Status (nothing below the bindings throws).
#pragma once
#include <cstdint>
#include <memory>
#include <new>

#include "core/dtype.h"
#include "ops/common.h"

namespace sk::cpu::spmm_detail {

// float buffer that reports allocation failure instead of throwing (std::bad_alloc must not escape a
// pool worker: it would terminate the process).
inline std::unique_ptr<float[]> try_alloc_floats(int64_t count) {
  if (count < 0) return nullptr;
  return std::unique_ptr<float[]>(new (std::nothrow) float[count > 0 ? static_cast<size_t>(count) : 1]);
}

// Rows [n0, n0 + nt) of X [n, k] (row stride ldx, dtype) -> panel [kp][nt] float32, transposed, with
// zeros for rows >= n and columns >= k (so the micro-kernels have no tails). Fills panel rows
// [k_begin, k_end) only (k_end <= kp), so callers can split one panel across threads. `scratch` holds nt * 64 floats.
void pack_panel(const void* x, int64_t ldx, DType dtype, int64_t n, int64_t k, int64_t n0, int nt,
                int64_t k_begin, int64_t k_end, float* panel, float* scratch);

// Epilogue of one output tile: acc [rows][nt] (row stride nt) holds Y^T for outputs m0 .. m0 + rows and
// tokens n0 .. n0 + n_valid. Writes y[n][m] = act(acc[m - m0][n - n0] + bias[m]) in the dtype.
// `bias` is already offset to m0 (float32, or null). `scratch` holds `rows` floats.
void store_tile(const float* acc, int rows, int nt, int64_t n0, int64_t n_valid, int64_t m0, const float* bias,
                Activation act, DType dtype, void* y, int64_t ldy, float* scratch);

// v[i] = act(v[i] + bias[i]) for i < count (bias may be null). ReLU keeps NaN (as torch does).
void bias_activation(float* v, const float* bias, int64_t count, Activation act);

// Converts `count` elements of `src` (dtype) to float32 with the process pool (large W / bias copies).
void parallel_to_float(DType dtype, const void* src, float* dst, int64_t count);

}  // namespace sk::cpu::spmm_detail
