// Host-side checks of the SpMM contract (src/ops/spmm.h). Plain C++: shared by the CPU kernels, the CUDA
// launchers and the bindings. Every message names the field, the position and the value at fault.
#include "ops/spmm.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sk {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool gpu_block_side(int32_t s) { return s == 16 || s == 32 || s == 64; }

// Checks of the BlockCsrView header (not its arrays' values).
Status check_bsr_header(const BlockCsrView& w, bool for_cuda, const char* op) {
  const std::string pre = std::string(op) + ": ";
  if (w.rows < 0 || w.cols < 0)
    return Status::Error(ErrorCode::kShape, pre + "weight shape (" + str(w.rows) + ", " + str(w.cols) +
                                                ") must be non-negative");
  if (w.bm < 1 || w.bk < 1)
    return Status::Invalid(pre + "block shape (" + str(w.bm) + ", " + str(w.bk) + ") must be positive");
  if (for_cuda && (!gpu_block_side(w.bm) || !gpu_block_side(w.bk)))
    return Status::Invalid(pre + "block shape (" + str(w.bm) + ", " + str(w.bk) +
                           ") is not supported on CUDA: each side must be 16, 32 or 64");
  if (w.mb != ceil_div(w.rows, w.bm) || w.kb != ceil_div(w.cols, w.bk))
    return Status::Error(ErrorCode::kShape, pre + "block grid (" + str(w.mb) + ", " + str(w.kb) +
                                                ") does not match ceil(shape / block) = (" +
                                                str(ceil_div(w.rows, w.bm)) + ", " + str(ceil_div(w.cols, w.bk)) + ")");
  if (w.nnzb < 0 || w.nnzb > std::numeric_limits<int32_t>::max() ||
      w.nnzb > static_cast<int64_t>(w.mb) * static_cast<int64_t>(w.kb))
    return Status::Invalid(pre + "nnzb " + str(w.nnzb) + " is outside [0, mb * kb = " +
                           str(static_cast<int64_t>(w.mb) * w.kb) + "]");
  if (w.mb > 0 && w.row_ptr == nullptr) return Status::Invalid(pre + "row_ptr is null");
  if (w.nnzb > 0 && (w.col_idx == nullptr || w.values == nullptr))
    return Status::Invalid(pre + "col_idx / values are null with nnzb " + str(w.nnzb));
  return Status::Ok();
}

Status check_float_dtype(DType t, const char* op) {
  if (!is_float_dtype(t))
    return Status::Invalid(std::string(op) + ": dtype " + dtype_name(t) +
                           " is not supported (float32, float16 or bfloat16)");
  return Status::Ok();
}

}  // namespace

Status check_bsr_structure(const BlockCsrView& w) {
  SK_RETURN_IF_ERROR(check_bsr_header(w, /*for_cuda=*/false, "block-CSR"));
  if (w.mb == 0) {
    if (w.nnzb != 0) return Status::Invalid("block-CSR: nnzb " + str(w.nnzb) + " with no block rows");
    if (w.row_ptr != nullptr && w.row_ptr[0] != 0)
      return Status::Invalid("block-CSR: row_ptr[0] is " + str(w.row_ptr[0]) + ", expected 0");
    return Status::Ok();
  }
  const int32_t* rp = w.row_ptr;
  if (rp[0] != 0) return Status::Invalid("block-CSR: row_ptr[0] is " + str(rp[0]) + ", expected 0");
  for (int64_t r = 0; r < w.mb; ++r) {
    if (rp[r + 1] < rp[r])
      return Status::Invalid("block-CSR: row_ptr is not monotone: row_ptr[" + str(r + 1) + "] = " + str(rp[r + 1]) +
                             " < row_ptr[" + str(r) + "] = " + str(rp[r]));
    if (rp[r + 1] > w.nnzb)
      return Status::Invalid("block-CSR: row_ptr[" + str(r + 1) + "] = " + str(rp[r + 1]) + " exceeds nnzb " +
                             str(w.nnzb));
  }
  if (rp[w.mb] != w.nnzb)
    return Status::Invalid("block-CSR: row_ptr[" + str(w.mb) + "] = " + str(rp[w.mb]) + " must equal nnzb " +
                           str(w.nnzb));
  for (int64_t r = 0; r < w.mb; ++r) {
    for (int64_t j = rp[r]; j < rp[r + 1]; ++j) {
      const int32_t c = w.col_idx[j];
      if (c < 0 || c >= w.kb)
        return Status::Invalid("block-CSR: col_idx[" + str(j) + "] = " + str(c) + " (block row " + str(r) +
                               ") is outside [0, " + str(w.kb) + ")");
      if (j > rp[r] && c <= w.col_idx[j - 1])
        return Status::Invalid("block-CSR: col_idx[" + str(j) + "] = " + str(c) + " (block row " + str(r) +
                               ") is not greater than col_idx[" + str(j - 1) + "] = " + str(w.col_idx[j - 1]) +
                               (c == w.col_idx[j - 1] ? " (duplicate block)" : " (not sorted)"));
    }
  }
  if (w.row_order != nullptr) {
    std::vector<uint8_t> seen(static_cast<size_t>(w.mb), 0);
    for (int64_t i = 0; i < w.mb; ++i) {
      const int32_t r = w.row_order[i];
      if (r < 0 || r >= w.mb)
        return Status::Invalid("block-CSR: row_order[" + str(i) + "] = " + str(r) + " is outside [0, " + str(w.mb) +
                               ")");
      if (seen[r]) return Status::Invalid("block-CSR: row_order[" + str(i) + "] = " + str(r) + " repeats a block row");
      seen[r] = 1;
    }
  }
  return Status::Ok();
}

Status check_spmm_params(const SpmmParams& p, bool for_cuda) {
  SK_RETURN_IF_ERROR(check_float_dtype(p.dtype, "spmm"));
  SK_RETURN_IF_ERROR(check_bsr_header(p.w, for_cuda, "spmm"));
  if (p.n < 0) return Status::Error(ErrorCode::kShape, "spmm: n " + str(p.n) + " must be >= 0");
  const int32_t activation = static_cast<int32_t>(p.activation);
  if (activation < 0 || activation > static_cast<int32_t>(Activation::kSilu))
    return Status::Invalid("spmm: activation " + str(activation) + " is not one of none/relu/gelu/silu");
  if (p.n == 0 || p.w.rows == 0) return Status::Ok();  // nothing is read or written
  if (p.y == nullptr) return Status::Invalid("spmm: y is null");
  if (p.y_row_stride < p.w.rows)
    return Status::Invalid("spmm: y_row_stride " + str(p.y_row_stride) + " must be >= M = " + str(p.w.rows));
  if (p.w.cols > 0) {
    if (p.x == nullptr) return Status::Invalid("spmm: x is null");
    if (p.x_row_stride < p.w.cols)
      return Status::Invalid("spmm: x_row_stride " + str(p.x_row_stride) + " must be >= K = " + str(p.w.cols));
  }
  return Status::Ok();
}

Status check_dense_linear_params(const DenseLinearParams& p, bool for_cuda) {
  (void)for_cuda;  // the CUDA dense path takes every shape
  SK_RETURN_IF_ERROR(check_float_dtype(p.dtype, "dense_linear"));
  if (p.n < 0 || p.m < 0 || p.k < 0)
    return Status::Error(ErrorCode::kShape, "dense_linear: n, m, k (" + str(p.n) + ", " + str(p.m) + ", " + str(p.k) +
                                                ") must be non-negative");
  const int32_t activation = static_cast<int32_t>(p.activation);
  if (activation < 0 || activation > static_cast<int32_t>(Activation::kSilu))
    return Status::Invalid("dense_linear: activation " + str(activation) + " is not one of none/relu/gelu/silu");
  if (p.n == 0 || p.m == 0) return Status::Ok();
  if (p.y == nullptr) return Status::Invalid("dense_linear: y is null");
  if (p.y_row_stride < p.m)
    return Status::Invalid("dense_linear: y_row_stride " + str(p.y_row_stride) + " must be >= m = " + str(p.m));
  if (p.k > 0) {
    if (p.x == nullptr || p.w == nullptr) return Status::Invalid("dense_linear: x or w is null");
    if (p.x_row_stride < p.k)
      return Status::Invalid("dense_linear: x_row_stride " + str(p.x_row_stride) + " must be >= k = " + str(p.k));
    if (p.w_row_stride < p.k)
      return Status::Invalid("dense_linear: w_row_stride " + str(p.w_row_stride) + " must be >= k = " + str(p.k));
  }
  return Status::Ok();
}

}  // namespace sk
