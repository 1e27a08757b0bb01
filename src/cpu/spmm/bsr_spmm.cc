// CPU block-sparse SpMM: Y = act(X . W^T + b) with W in block-CSR (contract: src/ops/spmm.h).
//
// Plan (N >= 2): X is packed into X^T panels of NT tokens (panel.h), then the pool runs one task per
// (panel, block row), panel-major so the threads share a panel in cache while the block rows stream by.
// A task accumulates the Y^T tile [bm][NT] with the micro-kernels (four weight rows per panel load),
// walking the row's blocks in col_idx order, then runs the fused epilogue. Padded weight rows (m >= M)
// are never computed. Panels are packed in groups of at most kPanelBudgetBytes so the temporary stays
// bounded for large N.
// N == 1: a row-parallel GEMV (one dot product per weight row and block), no packing.
#include <algorithm>
#include <atomic>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/spmm/convert.h"
#include "cpu/spmm/microkernel.h"
#include "cpu/spmm/panel.h"
#include "ops/spmm.h"

namespace sk::cpu {

namespace {

using namespace spmm_detail;

constexpr int64_t kPanelBudgetBytes = int64_t{16} << 20;  // packed X^T alive at once (L3-sized)
constexpr int64_t kPackColumns = 256;                      // panel rows packed per pack task

Status out_of_memory(const char* what) {
  return Status::Error(ErrorCode::kOutOfMemory, std::string("spmm (cpu): cannot allocate ") + what);
}

// Narrow panels for small N waste less padding; otherwise the widest the CPU keeps in registers.
int choose_panel_width(int64_t n) {
  const int widest = preferred_panel_width();
  if (n <= 16) return 16;
  if (n <= 32) return std::min(widest, 32);
  return widest;
}

Status run_gemv(const SpmmParams& p, const float* bias) {
  const BlockCsrView& w = p.w;
  const int64_t kp = static_cast<int64_t>(w.kb) * w.bk;
  const int64_t block_elems = static_cast<int64_t>(w.bm) * w.bk;
  auto xf = try_alloc_floats(kp);
  if (!xf) return out_of_memory("x");
  to_float(p.dtype, p.x, xf.get(), w.cols);
  std::fill(xf.get() + w.cols, xf.get() + kp, 0.f);
  const size_t esize = dtype_size(p.dtype);
  std::atomic<bool> oom{false};
  core::parallel_for(w.mb, 4, [&](int64_t begin, int64_t end) {
    // Half-precision weights are converted one block row at a time (N == 1 reads each weight once).
    int64_t max_nblk = 0;
    for (int64_t r = begin; r < end; ++r) max_nblk = std::max<int64_t>(max_nblk, w.row_ptr[r + 1] - w.row_ptr[r]);
    auto acc = try_alloc_floats(w.bm);
    std::unique_ptr<float[]> wbuf;
    if (p.dtype != DType::kFloat32) wbuf = try_alloc_floats(max_nblk * block_elems);
    if (!acc || (p.dtype != DType::kFloat32 && !wbuf)) {
      oom = true;
      return;
    }
    for (int64_t r = begin; r < end; ++r) {
      const int64_t j0 = w.row_ptr[r], nblk = w.row_ptr[r + 1] - j0;
      const char* src = static_cast<const char*>(w.values) + j0 * block_elems * static_cast<int64_t>(esize);
      const float* wr = reinterpret_cast<const float*>(src);
      if (p.dtype != DType::kFloat32) {
        to_float(p.dtype, src, wbuf.get(), nblk * block_elems);
        wr = wbuf.get();
      }
      std::fill(acc.get(), acc.get() + w.bm, 0.f);
      bsr_gemv_row(acc.get(), wr, w.bm, w.bk, w.col_idx + j0, nblk, xf.get());
      const int64_t m0 = r * w.bm;
      const int64_t rows = std::min<int64_t>(w.bm, w.rows - m0);
      bias_activation(acc.get(), bias ? bias + m0 : nullptr, rows, p.activation);
      from_float(p.dtype, acc.get(), static_cast<char*>(p.y) + m0 * static_cast<int64_t>(esize), rows);
    }
  });
  return oom ? out_of_memory("gemv scratch") : Status::Ok();
}

Status run_panels(const SpmmParams& p, const float* wv, const float* bias) {
  const BlockCsrView& w = p.w;
  const int nt = choose_panel_width(p.n);
  const int64_t kp = static_cast<int64_t>(w.kb) * w.bk;
  const int64_t panel_floats = std::max<int64_t>(1, kp * nt);
  const int64_t num_panels = (p.n + nt - 1) / nt;
  const int64_t group = std::clamp<int64_t>(kPanelBudgetBytes / (panel_floats * 4), 1, num_panels);
  auto panels = try_alloc_floats(group * panel_floats);
  if (!panels) return out_of_memory("packed x");
  const int64_t block_elems = static_cast<int64_t>(w.bm) * w.bk;
  const int64_t pack_tasks_per_panel = std::max<int64_t>(1, (kp + kPackColumns - 1) / kPackColumns);
  std::atomic<bool> oom{false};

  for (int64_t t0 = 0; t0 < num_panels; t0 += group) {
    const int64_t g = std::min(group, num_panels - t0);
    // Step 1: pack X^T for panels t0 .. t0 + g, split by (panel, column range).
    core::parallel_for(g * pack_tasks_per_panel, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float scratch[64 * 64];
      for (int64_t task = begin; task < end; ++task) {
        const int64_t tl = task / pack_tasks_per_panel, kc = task % pack_tasks_per_panel;
        const int64_t k_begin = kc * kPackColumns, k_end = std::min(kp, k_begin + kPackColumns);
        pack_panel(p.x, p.x_row_stride, p.dtype, p.n, w.cols, (t0 + tl) * nt, nt, k_begin, k_end,
                   panels.get() + tl * panel_floats, scratch);
      }
    });
    // Step 2: one task per (panel, block row), panel-major.
    core::parallel_for(g * w.mb, 1, [&](int64_t begin, int64_t end) {
      auto tile = try_alloc_floats(static_cast<int64_t>(w.bm) * nt + w.bm);
      if (!tile) {
        oom = true;
        return;
      }
      float* scratch = tile.get() + static_cast<int64_t>(w.bm) * nt;
      for (int64_t task = begin; task < end; ++task) {
        const int64_t tl = task / w.mb, r = task % w.mb;
        const int64_t n0 = (t0 + tl) * nt, m0 = r * w.bm;
        const int rows = static_cast<int>(std::min<int64_t>(w.bm, w.rows - m0));  // skip padded rows
        const int64_t j0 = w.row_ptr[r], nblk = w.row_ptr[r + 1] - j0;
        const float* panel = panels.get() + tl * panel_floats;
        const float* wr = wv + j0 * block_elems;
        std::fill(tile.get(), tile.get() + static_cast<int64_t>(rows) * nt, 0.f);
        int i = 0;
        for (; i + 4 <= rows; i += 4)
          bsr_rows(4, nt, tile.get() + static_cast<int64_t>(i) * nt, wr + static_cast<int64_t>(i) * w.bk,
                   block_elems, w.bk, w.col_idx + j0, nblk, w.bk, panel);
        for (; i < rows; ++i)
          bsr_rows(1, nt, tile.get() + static_cast<int64_t>(i) * nt, wr + static_cast<int64_t>(i) * w.bk,
                   block_elems, w.bk, w.col_idx + j0, nblk, w.bk, panel);
        store_tile(tile.get(), rows, nt, n0, std::min<int64_t>(nt, p.n - n0), m0, bias ? bias + m0 : nullptr,
                   p.activation, p.dtype, p.y, p.y_row_stride, scratch);
      }
    });
    if (oom) return out_of_memory("output tile");
  }
  return Status::Ok();
}

}  // namespace

Status spmm(const SpmmParams& p) {
  SK_RETURN_IF_ERROR(check_spmm_params(p, /*for_cuda=*/false));
  SK_RETURN_IF_ERROR(check_bsr_structure(p.w));
  if (p.n == 0 || p.w.rows == 0) return Status::Ok();
  const BlockCsrView& w = p.w;

  // Bias (and, for the panel path, the weights) as float32 once per call.
  std::unique_ptr<float[]> bias32;
  const float* bias = static_cast<const float*>(p.bias);
  if (p.bias != nullptr && p.dtype != DType::kFloat32) {
    bias32 = try_alloc_floats(w.rows);
    if (!bias32) return out_of_memory("bias");
    to_float(p.dtype, p.bias, bias32.get(), w.rows);
    bias = bias32.get();
  }
  if (p.n == 1) return run_gemv(p, bias);

  const float* wv = static_cast<const float*>(w.values);
  std::unique_ptr<float[]> w32;
  if (p.dtype != DType::kFloat32 && w.nnzb > 0) {
    const int64_t count = w.nnzb * w.bm * w.bk;
    w32 = try_alloc_floats(count);
    if (!w32) return out_of_memory("float32 weights");
    parallel_to_float(p.dtype, w.values, w32.get(), count);
    wv = w32.get();
  }
  return run_panels(p, wv, bias);
}

}  // namespace sk::cpu
