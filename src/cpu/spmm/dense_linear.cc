// CPU dense linear: Y = act(X . W^T + b) with a dense W [m, k] (contract: src/ops/spmm.h). The 'dense'
// backend and the baseline the SpMM auto-dispatch compares against, built from the same pieces as the
// block-sparse path: X^T panels, 4-row x NT register tiles, the same epilogue.
//
// Blocking: one task per (panel, tile of kTileM output rows), panel-major; inside a task the K loop runs
// in chunks of kChunkK so the panel slice (kChunkK x NT floats = 256 KB at NT = 64) stays in L2 while
// the tile's weight rows stream through L1. N == 1 is a row-parallel GEMV (one dot product per row).
#include <algorithm>
#include <atomic>

#include "core/thread_pool.h"
#include "cpu/spmm/convert.h"
#include "cpu/spmm/microkernel.h"
#include "cpu/spmm/panel.h"
#include "ops/spmm.h"

namespace sk::cpu {

namespace {

using namespace spmm_detail;

constexpr int64_t kTileM = 64;
constexpr int64_t kChunkK = 1024;
constexpr int64_t kPanelBudgetBytes = int64_t{16} << 20;
constexpr int64_t kPackColumns = 256;

Status out_of_memory(const char* what) {
  return Status::Error(ErrorCode::kOutOfMemory, std::string("dense_linear (cpu): cannot allocate ") + what);
}

Status run_gemv(const DenseLinearParams& p, const float* bias) {
  auto xf = try_alloc_floats(p.k);
  if (!xf) return out_of_memory("x");
  to_float(p.dtype, p.x, xf.get(), p.k);
  const size_t esize = dtype_size(p.dtype);
  std::atomic<bool> oom{false};
  core::parallel_for(p.m, 16, [&](int64_t begin, int64_t end) {
    auto buf = try_alloc_floats((end - begin) + (p.dtype == DType::kFloat32 ? 0 : p.k));
    if (!buf) {
      oom = true;
      return;
    }
    float* out = buf.get();
    float* wrow = buf.get() + (end - begin);
    for (int64_t m = begin; m < end; ++m) {
      const char* src = static_cast<const char*>(p.w) + m * p.w_row_stride * static_cast<int64_t>(esize);
      const float* wr = reinterpret_cast<const float*>(src);
      if (p.dtype != DType::kFloat32) {
        to_float(p.dtype, src, wrow, p.k);
        wr = wrow;
      }
      out[m - begin] = dot(wr, xf.get(), p.k);
    }
    bias_activation(out, bias ? bias + begin : nullptr, end - begin, p.activation);
    from_float(p.dtype, out, static_cast<char*>(p.y) + begin * static_cast<int64_t>(esize), end - begin);
  });
  return oom ? out_of_memory("gemv scratch") : Status::Ok();
}

Status run_panels(const DenseLinearParams& p, const float* w, int64_t ldw, const float* bias) {
  const int nt = p.n <= 16 ? 16 : (p.n <= 32 ? std::min(32, preferred_panel_width()) : preferred_panel_width());
  const int64_t panel_floats = std::max<int64_t>(1, static_cast<int64_t>(p.k) * nt);
  const int64_t num_panels = (p.n + nt - 1) / nt;
  const int64_t group = std::clamp<int64_t>(kPanelBudgetBytes / (panel_floats * 4), 1, num_panels);
  auto panels = try_alloc_floats(group * panel_floats);
  if (!panels) return out_of_memory("packed x");
  const int64_t pack_tasks_per_panel = std::max<int64_t>(1, (p.k + kPackColumns - 1) / kPackColumns);
  const int64_t m_tiles = (p.m + kTileM - 1) / kTileM;
  std::atomic<bool> oom{false};

  for (int64_t t0 = 0; t0 < num_panels; t0 += group) {
    const int64_t g = std::min(group, num_panels - t0);
    core::parallel_for(g * pack_tasks_per_panel, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float scratch[64 * 64];
      for (int64_t task = begin; task < end; ++task) {
        const int64_t tl = task / pack_tasks_per_panel, kc = task % pack_tasks_per_panel;
        const int64_t k_begin = kc * kPackColumns, k_end = std::min<int64_t>(p.k, k_begin + kPackColumns);
        pack_panel(p.x, p.x_row_stride, p.dtype, p.n, p.k, (t0 + tl) * nt, nt, k_begin, k_end,
                   panels.get() + tl * panel_floats, scratch);
      }
    });
    core::parallel_for(g * m_tiles, 1, [&](int64_t begin, int64_t end) {
      auto tile = try_alloc_floats(kTileM * nt + kTileM);
      if (!tile) {
        oom = true;
        return;
      }
      float* scratch = tile.get() + kTileM * nt;
      for (int64_t task = begin; task < end; ++task) {
        const int64_t tl = task / m_tiles, mt = task % m_tiles;
        const int64_t n0 = (t0 + tl) * nt, m0 = mt * kTileM;
        const int rows = static_cast<int>(std::min<int64_t>(kTileM, p.m - m0));
        const float* panel = panels.get() + tl * panel_floats;
        std::fill(tile.get(), tile.get() + static_cast<int64_t>(rows) * nt, 0.f);
        for (int64_t k0 = 0; k0 < p.k; k0 += kChunkK) {  // fixed k order: deterministic
          const int64_t depth = std::min<int64_t>(kChunkK, p.k - k0);
          int i = 0;
          for (; i + 4 <= rows; i += 4)
            dense_rows(4, nt, tile.get() + static_cast<int64_t>(i) * nt, w + (m0 + i) * ldw + k0, ldw,
                       panel + k0 * nt, depth);
          for (; i < rows; ++i)
            dense_rows(1, nt, tile.get() + static_cast<int64_t>(i) * nt, w + (m0 + i) * ldw + k0, ldw,
                       panel + k0 * nt, depth);
        }
        store_tile(tile.get(), rows, nt, n0, std::min<int64_t>(nt, p.n - n0), m0, bias ? bias + m0 : nullptr,
                   p.activation, p.dtype, p.y, p.y_row_stride, scratch);
      }
    });
    if (oom) return out_of_memory("output tile");
  }
  return Status::Ok();
}

}  // namespace

Status dense_linear(const DenseLinearParams& p) {
  SK_RETURN_IF_ERROR(check_dense_linear_params(p, /*for_cuda=*/false));
  if (p.n == 0 || p.m == 0) return Status::Ok();

  std::unique_ptr<float[]> bias32;
  const float* bias = static_cast<const float*>(p.bias);
  if (p.bias != nullptr && p.dtype != DType::kFloat32) {
    bias32 = try_alloc_floats(p.m);
    if (!bias32) return out_of_memory("bias");
    to_float(p.dtype, p.bias, bias32.get(), p.m);
    bias = bias32.get();
  }
  if (p.n == 1) return run_gemv(p, bias);

  // Half-precision W is widened once (row stride k); float32 W is used in place.
  const float* w = static_cast<const float*>(p.w);
  int64_t ldw = p.w_row_stride;
  std::unique_ptr<float[]> w32;
  if (p.dtype != DType::kFloat32 && p.k > 0) {
    w32 = try_alloc_floats(static_cast<int64_t>(p.m) * p.k);
    if (!w32) return out_of_memory("float32 weights");
    const size_t esize = dtype_size(p.dtype);
    core::parallel_for(p.m, 64, [&](int64_t b, int64_t e) {
      for (int64_t m = b; m < e; ++m)
        to_float(p.dtype, static_cast<const char*>(p.w) + m * p.w_row_stride * static_cast<int64_t>(esize),
                 w32.get() + m * p.k, p.k);
    });
    w = w32.get();
    ldw = p.k;
  }
  return run_panels(p, w, ldw, bias);
}

}  // namespace sk::cpu
