// Block-CSR construction on the host (contract: src/ops/spmm.h): count / fill from a dense matrix
// (tolerance and block-L2 pruning), the nnz-descending row order, and the inverse (to dense).
//
// The selection is a pure function of the input, computed in full by both passes (the dense matrix is
// read twice; the caller gets exact allocations in exchange). Block statistics are computed per block in
// a fixed order, so the selection does not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/spmm/convert.h"
#include "cpu/spmm/panel.h"
#include "ops/spmm.h"

namespace sk::cpu {

namespace {

using spmm_detail::to_float;
using spmm_detail::try_alloc_floats;

std::string str(int64_t v) { return std::to_string(v); }

Status check_build_params(const BsrBuildParams& p) {
  if (!is_float_dtype(p.dtype))
    return Status::Invalid(std::string("bsr_from_dense: dtype ") + dtype_name(p.dtype) +
                           " is not supported (float32, float16 or bfloat16)");
  if (p.rows < 0 || p.cols < 0)
    return Status::Error(ErrorCode::kShape, "bsr_from_dense: shape (" + str(p.rows) + ", " + str(p.cols) +
                                                ") must be non-negative");
  if (p.bm < 1 || p.bk < 1)
    return Status::Invalid("bsr_from_dense: block shape (" + str(p.bm) + ", " + str(p.bk) + ") must be positive");
  if (p.rows > 0 && p.cols > 0) {
    if (p.dense == nullptr) return Status::Invalid("bsr_from_dense: dense is null");
    if (p.row_stride < p.cols)
      return Status::Invalid("bsr_from_dense: row_stride " + str(p.row_stride) + " must be >= cols " + str(p.cols));
  }
  if (!(p.tolerance >= 0.f) || std::isinf(p.tolerance))
    return Status::Invalid("bsr_from_dense: tolerance must be a finite number >= 0");
  if (std::isnan(p.target_sparsity) || p.target_sparsity > 1.f)
    return Status::Invalid("bsr_from_dense: target_sparsity must be in [0, 1] (or negative for no pruning)");
  return Status::Ok();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// keep[r * kb + c] = 1 for the selected blocks (see BsrBuildParams). Returns the count in *kept.
Status select_blocks(const BsrBuildParams& p, std::vector<uint8_t>* keep, int64_t* kept) {
  SK_RETURN_IF_ERROR(check_build_params(p));
  const int64_t mb = ceil_div(p.rows, p.bm), kb = ceil_div(p.cols, p.bk), total = mb * kb;
  const bool prune = p.target_sparsity >= 0.f;
  std::vector<float> maxabs;
  std::vector<double> norm;
  try {
    keep->assign(static_cast<size_t>(total), 0);
    maxabs.assign(static_cast<size_t>(total), 0.f);
    if (prune) norm.assign(static_cast<size_t>(total), 0.0);
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "bsr_from_dense: cannot allocate block statistics");
  }
  // Per block: max |w| (NaN-propagating: a NaN makes the block kept) and the L2 norm in double,
  // accumulated row by row inside the block: a fixed order whatever the thread split.
  const size_t esize = dtype_size(p.dtype);
  std::atomic<bool> oom{false};
  core::parallel_for(mb, 1, [&](int64_t begin, int64_t end) {
    auto row = try_alloc_floats(p.cols);
    if (!row) {
      oom = true;
      return;
    }
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t i = r * p.bm; i < std::min<int64_t>(p.rows, (r + 1) * p.bm); ++i) {
        to_float(p.dtype, static_cast<const char*>(p.dense) + i * p.row_stride * static_cast<int64_t>(esize),
                 row.get(), p.cols);
        for (int64_t c = 0; c < kb; ++c) {
          float mx = maxabs[r * kb + c];
          double sq = 0.0;
          for (int64_t k = c * p.bk; k < std::min<int64_t>(p.cols, (c + 1) * p.bk); ++k) {
            const float a = std::fabs(row[k]);
            mx = (a > mx || std::isnan(a)) && !std::isnan(mx) ? a : mx;
            sq += static_cast<double>(row[k]) * row[k];
          }
          maxabs[r * kb + c] = mx;
          if (prune) norm[r * kb + c] += sq;
        }
      }
    }
  });
  if (oom) return Status::Error(ErrorCode::kOutOfMemory, "bsr_from_dense: cannot allocate a row buffer");

  for (int64_t b = 0; b < total; ++b) (*keep)[b] = !(maxabs[b] <= p.tolerance);  // NaN: kept
  if (prune && total > 0) {
    // Drop ceil(s * total) blocks (a 1e-7 relative allowance absorbs the float rounding of s, e.g.
    // 0.3f = 0.30000001 must not drop 4 of 10). Order: norm ascending, then block index; NaN ranks last.
    const double want = static_cast<double>(p.target_sparsity) * static_cast<double>(total);
    const int64_t n_drop = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(want - 1e-7 * total)), 0, total);
    if (n_drop > 0) {
      std::vector<int64_t> order;
      try {
        order.resize(static_cast<size_t>(total));
      } catch (const std::bad_alloc&) {
        return Status::Error(ErrorCode::kOutOfMemory, "bsr_from_dense: cannot allocate the pruning order");
      }
      std::iota(order.begin(), order.end(), int64_t{0});
      auto key = [&](int64_t b) { return std::isnan(norm[b]) ? std::numeric_limits<double>::infinity() : norm[b]; };
      auto less = [&](int64_t a, int64_t b) {
        const double ka = key(a), kb2 = key(b);
        return ka < kb2 || (ka == kb2 && a < b);
      };
      if (n_drop < total) std::nth_element(order.begin(), order.begin() + n_drop, order.end(), less);
      for (int64_t i = 0; i < n_drop; ++i) (*keep)[order[i]] = 0;
    }
  }
  int64_t count = 0;
  for (int64_t b = 0; b < total; ++b) count += (*keep)[b];
  if (count > std::numeric_limits<int32_t>::max())
    return Status::Invalid("bsr_from_dense: " + str(count) + " blocks kept; int32 indices allow at most 2^31 - 1");
  *kept = count;
  return Status::Ok();
}

}  // namespace

Status bsr_count(const BsrBuildParams& p, int64_t* nnzb) {
  if (nnzb == nullptr) return Status::Invalid("bsr_count: nnzb is null");
  std::vector<uint8_t> keep;
  return select_blocks(p, &keep, nnzb);
}

Status bsr_fill(const BsrBuildParams& p, const BsrBuildOutput& out) {
  std::vector<uint8_t> keep;
  int64_t nnzb = 0;
  SK_RETURN_IF_ERROR(select_blocks(p, &keep, &nnzb));
  if (nnzb != out.nnzb)
    return Status::Invalid("bsr_fill: the selection has " + str(nnzb) + " blocks but the output holds " +
                           str(out.nnzb) + " (call bsr_count with the same parameters)");
  const int64_t mb = ceil_div(p.rows, p.bm), kb = ceil_div(p.cols, p.bk);
  if (out.row_ptr == nullptr || (nnzb > 0 && (out.col_idx == nullptr || out.values == nullptr)))
    return Status::Invalid("bsr_fill: row_ptr / col_idx / values is null");

  out.row_ptr[0] = 0;
  for (int64_t r = 0; r < mb; ++r) {
    int32_t n = 0;
    for (int64_t c = 0; c < kb; ++c) n += keep[r * kb + c];
    out.row_ptr[r + 1] = out.row_ptr[r] + n;
  }
  // Values are copied bit for bit (no dtype round trip); padding entries are +0 in every dtype.
  const size_t esize = dtype_size(p.dtype);
  const int64_t block_bytes = static_cast<int64_t>(p.bm) * p.bk * static_cast<int64_t>(esize);
  core::parallel_for(mb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t j = out.row_ptr[r];
      for (int64_t c = 0; c < kb; ++c) {
        if (!keep[r * kb + c]) continue;
        out.col_idx[j] = static_cast<int32_t>(c);
        char* dst = static_cast<char*>(out.values) + j * block_bytes;
        std::memset(dst, 0, static_cast<size_t>(block_bytes));
        const int64_t ncols = std::min<int64_t>(p.bk, p.cols - c * p.bk);
        for (int64_t i = 0; i < p.bm && r * p.bm + i < p.rows; ++i) {
          const char* src = static_cast<const char*>(p.dense) +
                            ((r * p.bm + i) * p.row_stride + c * p.bk) * static_cast<int64_t>(esize);
          std::memcpy(dst + i * p.bk * static_cast<int64_t>(esize), src, static_cast<size_t>(ncols) * esize);
        }
        ++j;
      }
    }
  });
  if (out.row_order != nullptr) return bsr_row_order(static_cast<int32_t>(mb), out.row_ptr, out.row_order);
  return Status::Ok();
}

Status bsr_row_order(int32_t mb, const int32_t* row_ptr, int32_t* row_order) {
  if (mb < 0) return Status::Invalid("bsr_row_order: mb " + str(mb) + " must be >= 0");
  if (mb > 0 && (row_ptr == nullptr || row_order == nullptr))
    return Status::Invalid("bsr_row_order: row_ptr / row_order is null");
  std::iota(row_order, row_order + mb, 0);
  // Longest rows first (the GPU's last wave then holds the shortest rows); stable: ties keep row order.
  std::stable_sort(row_order, row_order + mb, [&](int32_t a, int32_t b) {
    return row_ptr[a + 1] - row_ptr[a] > row_ptr[b + 1] - row_ptr[b];
  });
  return Status::Ok();
}

Status bsr_to_dense(const BlockCsrView& w, DType dtype, void* dense, int64_t row_stride) {
  if (!is_float_dtype(dtype))
    return Status::Invalid(std::string("bsr_to_dense: dtype ") + dtype_name(dtype) + " is not supported");
  SK_RETURN_IF_ERROR(check_bsr_structure(w));
  if (w.rows == 0 || w.cols == 0) return Status::Ok();
  if (dense == nullptr) return Status::Invalid("bsr_to_dense: dense is null");
  if (row_stride < w.cols)
    return Status::Invalid("bsr_to_dense: row_stride " + str(row_stride) + " must be >= cols " + str(w.cols));
  const int64_t esize = static_cast<int64_t>(dtype_size(dtype));
  const int64_t block_elems = static_cast<int64_t>(w.bm) * w.bk;
  core::parallel_for(w.mb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t row_end = std::min<int64_t>(w.rows, (r + 1) * w.bm);
      for (int64_t i = r * w.bm; i < row_end; ++i)
        std::memset(static_cast<char*>(dense) + i * row_stride * esize, 0, static_cast<size_t>(w.cols * esize));
      for (int64_t j = w.row_ptr[r]; j < w.row_ptr[r + 1]; ++j) {
        const int64_t c = w.col_idx[j];
        const int64_t ncols = std::min<int64_t>(w.bk, w.cols - c * w.bk);
        const char* src = static_cast<const char*>(w.values) + j * block_elems * esize;
        for (int64_t i = r * w.bm; i < row_end; ++i)
          std::memcpy(static_cast<char*>(dense) + (i * row_stride + c * w.bk) * esize,
                      src + (i - r * w.bm) * w.bk * esize, static_cast<size_t>(ncols * esize));
      }
    }
  });
  return Status::Ok();
}

}  // namespace sk::cpu
